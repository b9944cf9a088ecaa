"""Measure stage: fit pytest-benchmark's pedantic settings between a time floor and a cap.

An untuned CPU build under TVM 0.27 can take seconds per inference (ResNet-50
about 4 s on 2 cores), so a fixed 10 x 10 would take minutes per item. One
probe call estimates the cost; iterations drop first (rounds are what the
statistics are computed over), then rounds, never below ``min_rounds``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.suite.schema import TimingSpec


@dataclass(frozen=True)
class TimingPlan:
    rounds: int
    iterations: int
    warmup_rounds: int
    probe_s: float
    #: Fewer rounds, iterations or warm-ups than asked, to fit ``max_time``.
    capped: bool
    #: More iterations than asked, to fill ``min_time``.
    stretched: bool = False
    #: Groups the rounds are timed in, ``slice_gap`` seconds apart (TimingSpec says why).
    slices: int = 1
    slice_gap: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Upper bound on calls per round when ``min_time`` stretches a very fast model.
MAX_ITERATIONS = 100_000


def plan_timing(spec: TimingSpec, probe_s: float, max_time: float | None = None) -> TimingPlan:
    """Choose rounds/iterations so the timed part stays near ``max_time`` seconds."""
    cap = spec.max_time if max_time is None else max_time
    per_call = max(probe_s, 1e-9)
    rounds, iterations = spec.rounds, spec.iterations
    floor = min(spec.min_time, cap)
    if rounds * iterations * per_call < floor:
        iterations = min(MAX_ITERATIONS, math.ceil(floor / (rounds * per_call)))
    if rounds * iterations * per_call > cap:
        iterations = max(1, min(iterations, math.floor(cap / (rounds * per_call))))
        if rounds * iterations * per_call > cap:
            rounds = max(spec.min_rounds, min(rounds, math.floor(cap / per_call)))
    warmup = spec.warmup_rounds if per_call * iterations * spec.warmup_rounds <= cap / 4 else min(1, spec.warmup_rounds)
    stretched = iterations > spec.iterations
    capped = not stretched and (rounds, iterations, warmup) != (spec.rounds, spec.iterations, spec.warmup_rounds)
    slices = min(spec.slices, rounds)
    if per_call * iterations >= spec.slice_gap:
        slices = 1  # each round already spans the gap: the rounds are spread over time as they are
    return TimingPlan(rounds, iterations, warmup, probe_s, capped, stretched, slices,
                      spec.slice_gap if slices > 1 else 0.0)


def slice_sizes(plan: TimingPlan) -> list[int]:
    """Rounds per slice, as even as they divide: 10 rounds in 3 slices are 4, 3, 3."""
    base, extra = divmod(plan.rounds, plan.slices)
    return [base + (i < extra) for i in range(plan.slices)]


def time_rounds(run: Callable[[], Any], plan: TimingPlan,
                timer: Callable[[int, int], list[float]] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> list[float]:
    """Seconds per call for each round, timed like pytest-benchmark's pedantic mode.

    Timing happens where the build lives (the worker process); the samples are
    then handed to pytest-benchmark, which computes and stores the statistics.
    With a device ``timer`` (a remote build), the device times the same plan
    on its own clock. Warm-up rounds come first; the rounds are then timed in
    ``plan.slices`` groups, ``plan.slice_gap`` seconds apart, and each later
    group starts with one untimed call. (A whole warm-up round there was
    measured: it cost 4 s a smoke run and did not make the later groups
    faster; docs/studies/README.md#where-the-run-to-run-noise-comes-from.)
    """
    samples: list[float] = []
    for index, size in enumerate(slice_sizes(plan)):
        if index:
            sleep(plan.slice_gap)
        if timer is not None:
            if index == 0 and plan.warmup_rounds:
                timer(plan.iterations, plan.warmup_rounds)
            elif index:
                timer(1, 1)
            samples.extend(timer(plan.iterations, size))
            continue
        for _ in range(plan.warmup_rounds * plan.iterations if index == 0 else 1):
            run()
        for _ in range(size):
            start = time.perf_counter()
            for _ in range(plan.iterations):
                run()
            samples.append((time.perf_counter() - start) / plan.iterations)
    return samples


def side_by_side(contenders: Mapping[str, tuple[Callable[[], Any], TimingPlan]], turns: int,
                 turn_s: float = 0.0) -> dict[str, list[float]]:
    """Each contender's median seconds per call in each of ``turns`` turns, the contenders timed in turn.

    Two items are timed minutes apart, and this VM's speed drifts 10-25% over such a gap
    (docs/studies/README.md#where-the-run-to-run-noise-comes-from); builds timed in turn drift together, so
    their ratio holds. In a turn each
    contender times rounds of its own plan's iterations, at least one slice of them and for at least ``turn_s``
    seconds (slow periods here last 0.2-2.5 s: a shorter turn's median falls in one whole), the order reversed
    every turn so that neither always goes second. Each contender's turn starts with an untimed call: a TVM
    call right after ONNX Runtime's took 45.6 ms against 8.1 (MobileNetV2 tuned, this VM), while ONNX
    Runtime's threads still spun; the second call did not.
    """
    import statistics

    names = list(contenders)
    medians: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(turns):
        for name in names if turn % 2 == 0 else names[::-1]:
            run, plan = contenders[name]
            rounds = slice_sizes(plan)[0]
            run()
            samples: list[float] = []
            began = time.perf_counter()
            while len(samples) < rounds or time.perf_counter() - began < turn_s:
                start = time.perf_counter()
                for _ in range(plan.iterations):
                    run()
                samples.append((time.perf_counter() - start) / plan.iterations)
            medians[name].append(statistics.median(samples))
    return medians


def interleaved_pairs(current: Callable[[], Any], baseline: Callable[[], Any], block_calls: int, *, min_pairs: int,
                      max_pairs: int, max_time: float, settled: Callable[[list[float]], bool],
                      seed: int = 0) -> tuple[list[tuple[float, float]], bool]:
    """Seconds per call of each build in each pair of blocks, and whether a cap ended them: two builds in this
    process (``interleaved_blocks`` with each block timed here)."""
    def blocks(run: Callable[[], Any]) -> Callable[[int], float]:
        def block(calls: int) -> float:
            start = time.perf_counter()
            for _ in range(calls):
                run()
            return (time.perf_counter() - start) / calls
        return block

    return interleaved_blocks(blocks(current), blocks(baseline), block_calls, min_pairs=min_pairs,
                              max_pairs=max_pairs, max_time=max_time, settled=settled, seed=seed)


def interleaved_blocks(current: Callable[[int], float], baseline: Callable[[int], float], block_calls: int, *,
                       min_pairs: int, max_pairs: int, max_time: float, settled: Callable[[list[float]], bool],
                       seed: int = 0) -> tuple[list[tuple[float, float]], bool]:
    """Seconds per call of each side in each pair of blocks, and whether a cap ended them.

    A block is ``block_calls`` back-to-back calls of one side, which times them itself (here, or in the worker
    process that holds a build, for two TVMs); the two blocks of a pair run in random order (AB or BA, seeded),
    so neither side always goes second. From ``min_pairs`` on, ``settled(log ratios)`` is asked every 4 pairs
    whether more could change the decision. ``max_time`` caps the seconds, but never below 4 pairs.
    """
    import random

    rng = random.Random(seed)
    sides = {"current": current, "baseline": baseline}
    for block in sides.values():
        block(1)  # lazy initialisation, outside the pairs
    pairs: list[tuple[float, float]] = []
    began = time.perf_counter()
    while len(pairs) < max_pairs:
        seconds: dict[str, float] = {}
        for name in (("current", "baseline") if rng.random() < 0.5 else ("baseline", "current")):
            seconds[name] = sides[name](block_calls)
        pairs.append((seconds["current"], seconds["baseline"]))
        n = len(pairs)
        if n >= min_pairs and (n - min_pairs) % 4 == 0 and settled([math.log(c / b) for c, b in pairs]):
            return pairs, False
        if n >= 4 and time.perf_counter() - began > max_time:
            return pairs, True
    return pairs, True


def summarize(samples: list[float]) -> dict[str, Any]:
    """The statistics pytest-benchmark reports, for runs that do not go through it."""
    import statistics

    return {"median": statistics.median(samples), "mean": statistics.fmean(samples),
            "stddev": statistics.stdev(samples) if len(samples) > 1 else 0.0, "min": min(samples),
            "max": max(samples), "rounds": len(samples)}


def probe(run: Callable[[], Any], timer: Callable[[int, int], list[float]] | None = None) -> float:
    """Seconds for one call, after one call to warm caches and lazy initialisation."""
    if timer is not None:
        return timer(1, 1)[0]  # the device's clock; the timer makes its own warm-up call
    run()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


#: Test hook for measuring the gate's power, never for real runs: "0.05" makes every timed call
#: busy-wait an extra 5% of its own undisturbed duration (the fastest of 5 calls, once per build),
#: a known, real slowdown; a burst of interference during those 5 calls cannot inflate it.
#: "0.05:GLOB" slows only the items whose case id matches the glob (fnmatch), e.g.
#: "0.05:mobilenet_v2-native-b160-tuned": a regression in one model, as real ones usually are.
SLOWDOWN_ENV = "TVM_BENCH_INJECT_SLOWDOWN"


def _injected(env: str, case_id: str, example: str) -> float:
    """The amount ``env`` asks for this case: ``AMOUNT`` or ``AMOUNT:GLOB`` (0 when unset or aimed elsewhere)."""
    from fnmatch import fnmatchcase

    value, _, pattern = os.environ.get(env, "").partition(":")
    try:
        amount = float(value or 0)
    except ValueError:
        raise ValueError(f"{env}={os.environ[env]!r}: expected {example}") from None
    return amount if amount > 0 and (not pattern or fnmatchcase(case_id, pattern)) else 0.0


def injected_slowdown(case_id: str) -> float:
    """The fraction ``SLOWDOWN_ENV`` asks for this case (0 when unset or aimed at other cases)."""
    return _injected(SLOWDOWN_ENV, case_id, "FRACTION or FRACTION:GLOB, e.g. 0.05 or 0.05:mobilenet_v2-*-tuned")


#: Test hook for showing the memory gate at work, never for real runs: "200" makes the item's first timed call
#: allocate 200 MiB (written, so resident) that stays until its worker ends, as a cache that is never freed
#: would; "200:GLOB" aims at the items whose case id matches the glob.
LEAK_ENV = "TVM_BENCH_INJECT_LEAK"


def injected_leak_mib(case_id: str) -> float:
    """The MiB ``LEAK_ENV`` asks this case to leak (0 when unset or aimed at other cases)."""
    return _injected(LEAK_ENV, case_id, "MIB or MIB:GLOB, e.g. 200 or 200:tiny_cnn-*-untuned")


def with_injected_leak(run: Callable[[], Any], case_id: str = "") -> Callable[[], Any]:
    mib = injected_leak_mib(case_id)
    if mib <= 0:
        return run
    held: list[Any] = []

    def leaking() -> Any:
        if not held:
            import numpy as np

            held.append(np.ones(int(mib * 2**20), dtype=np.uint8))
        return run()

    return leaking


def with_injected_slowdown(run: Callable[[], Any], case_id: str = "") -> Callable[[], Any]:
    fraction = injected_slowdown(case_id)
    if fraction <= 0:
        return run
    run()
    calls = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        calls.append(time.perf_counter() - start)
    extra = fraction * min(calls)

    def slowed() -> Any:
        out = run()
        until = time.perf_counter() + extra
        while time.perf_counter() < until:
            pass
        return out

    return slowed
