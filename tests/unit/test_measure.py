"""Timing plans fit pytest-benchmark's rounds x iterations into the per-item cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest

from bench.stages.measure import TimingPlan, plan_timing, side_by_side, slice_sizes, time_rounds
from bench.suite.schema import TimingSpec

SPEC = TimingSpec(warmup_rounds=1, iterations=10, rounds=10, min_rounds=3, min_time=0.0, max_time=10.0)


def test_fast_model_keeps_requested_settings() -> None:
    """1 ms x 100 calls is well inside 10 s: nothing changes."""
    plan = plan_timing(SPEC, 0.001)
    assert (plan.rounds, plan.iterations, plan.warmup_rounds, plan.capped) == (10, 10, 1, False)


def test_iterations_drop_before_rounds() -> None:
    """200 ms: 10 x 10 would take 20 s; 10 rounds of 5 iterations fit in 10 s."""
    plan = plan_timing(SPEC, 0.2)
    assert (plan.rounds, plan.iterations, plan.capped) == (10, 5, True)


def test_rounds_drop_but_not_below_minimum() -> None:
    """2 s per call: 5 rounds of 1 fit; 4 s per call still gets min_rounds=3."""
    assert (plan_timing(SPEC, 2.0).rounds, plan_timing(SPEC, 2.0).iterations) == (5, 1)
    slow = plan_timing(SPEC, 4.0)
    assert (slow.rounds, slow.iterations, slow.warmup_rounds) == (3, 1, 1)


def test_command_line_cap_overrides_suite() -> None:
    """--bench-max-time replaces the suite's max_time."""
    assert plan_timing(SPEC, 0.05).iterations == 10
    assert plan_timing(SPEC, 0.05, max_time=1.0).iterations == 2


def test_fast_models_are_stretched_to_min_time() -> None:
    """0.2 ms x 100 calls is 20 ms; with min_time 1 s each round gets 500 calls, rounds unchanged."""
    spec = SPEC.model_copy(update={"min_time": 1.0})
    plan = plan_timing(spec, 0.0002)
    assert (plan.rounds, plan.iterations, plan.stretched, plan.capped) == (10, 500, True, False)
    assert plan_timing(spec, 0.05).iterations == 10  # 5 s already: nothing to stretch
    assert plan_timing(spec, 1e-9).iterations == 100_000  # bounded
    assert plan_timing(spec, 0.0002, max_time=0.5).iterations == 250  # never past the cap


def test_injected_slowdown_is_a_fraction_of_the_undisturbed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate-power hook adds 10% of the fastest calibration call, so a burst of interference during
    calibration (three 50 ms calls of a 10 ms model) cannot inflate the injected slowdown."""
    import bench.stages.measure as measure

    clock = [0.0]

    def perf_counter() -> float:
        clock[0] += 1e-6  # every reading takes a microsecond, so the busy-wait ends
        return clock[0]

    durations = iter([0.010, 0.050, 0.050, 0.010, 0.012, 0.050, 0.010])

    def run() -> None:
        clock[0] += next(durations)

    monkeypatch.setattr("bench.stages.measure.time.perf_counter", perf_counter)
    monkeypatch.setenv(measure.SLOWDOWN_ENV, "0.1")
    slowed = measure.with_injected_slowdown(run)
    start = clock[0]
    slowed()
    assert clock[0] - start == pytest.approx(0.010 + 0.001, abs=2e-5)
    monkeypatch.delenv(measure.SLOWDOWN_ENV)
    assert measure.with_injected_slowdown(run) is run


def test_injected_slowdown_can_target_one_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """"0.05:GLOB" slows only the matching cases: a regression in one model, as real ones usually are."""
    import bench.stages.measure as measure

    monkeypatch.setenv(measure.SLOWDOWN_ENV, "0.05:mobilenet_v2-*-tuned")
    assert measure.injected_slowdown("mobilenet_v2-native-b160-tuned") == 0.05
    assert measure.injected_slowdown("mobilenet_v2-native-untuned") == 0.0
    assert measure.with_injected_slowdown(lambda: None, "tiny_cnn-native-b64-tuned") is not None
    monkeypatch.setenv(measure.SLOWDOWN_ENV, "five percent")
    with pytest.raises(ValueError, match="expected FRACTION or FRACTION:GLOB"):
        measure.injected_slowdown("x")


def test_injected_leak_holds_its_mib_from_the_first_call_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """"64:GLOB" makes a matching item's first call allocate 64 MiB that stays resident; later calls add none;
    other items and an unset hook leave the call as it is; a malformed value says what it expects."""
    import tracemalloc

    import bench.stages.measure as measure

    calls: list[int] = []
    monkeypatch.setenv(measure.LEAK_ENV, "64:tiny_cnn-*-untuned")
    assert measure.with_injected_leak(calls.clear, "tiny_cnn-native-b64-tuned") == calls.clear
    leaking = measure.with_injected_leak(lambda: calls.append(1), "tiny_cnn-native-untuned")
    tracemalloc.start()  # numpy reports its arrays' buffers to it: the count does not depend on the allocator
    try:
        before = tracemalloc.get_traced_memory()[0]
        leaking()
        grown = tracemalloc.get_traced_memory()[0] - before
        leaking()
        again = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert calls == [1, 1] and 64 * 2**20 <= grown < 65 * 2**20, grown
    assert again - grown < 2**20
    monkeypatch.delenv(measure.LEAK_ENV)
    assert measure.with_injected_leak(calls.clear) == calls.clear
    monkeypatch.setenv(measure.LEAK_ENV, "lots")
    with pytest.raises(ValueError, match="expected MIB or MIB:GLOB"):
        measure.injected_leak_mib("x")


def test_fast_rounds_are_timed_in_slices_seconds_apart() -> None:
    """10 rounds of a 10 ms x 10 model: 3 groups (4, 3, 3) with two 2 s gaps; rounds longer than the gap
    need none."""
    spec = SPEC.model_copy(update={"slices": 3, "slice_gap": 2.0})
    plan = plan_timing(spec, 0.010)
    assert (plan.slices, plan.slice_gap) == (3, 2.0) and slice_sizes(plan) == [4, 3, 3]
    # 10 calls of 50 ms: each round spans 0.5 s, less than a 2 s or 0.6 s gap, more than a 0.4 s one
    assert plan_timing(spec, 0.05, max_time=100).slices == 3
    assert plan_timing(spec.model_copy(update={"slice_gap": 0.6}), 0.05, max_time=100).slices == 3
    assert plan_timing(spec.model_copy(update={"slice_gap": 0.4}), 0.05, max_time=100).slices == 1
    assert plan_timing(spec.model_copy(update={"rounds": 2, "min_rounds": 2}), 0.010).slices == 2
    assert plan_timing(spec.model_copy(update={"slices": 1}), 0.010).slice_gap == 0.0

    events: list[str] = []
    plan = TimingPlan(rounds=10, iterations=2, warmup_rounds=1, probe_s=0.01, capped=False, slices=3, slice_gap=2.0)
    samples = time_rounds(lambda: events.append("call"), plan, sleep=lambda s: events.append(f"sleep {s:g}"))
    assert len(samples) == 10
    # 1 warm-up round of 2 calls + 4 rounds; a gap, 1 untimed call + 3 rounds; a gap, 1 + 3 rounds
    assert "".join("s" if e.startswith("sleep") else "." for e in events) == "." * 10 + "s" + "." * 7 + "s" + "." * 7
    assert events.count("sleep 2") == 2

    calls: list[tuple[int, int]] = []

    def device_timer(number: int, repeat: int) -> list[float]:
        calls.append((number, repeat))
        return [0.01] * repeat

    assert len(time_rounds(lambda: None, plan, device_timer, sleep=lambda s: None)) == 10
    assert calls == [(2, 1), (2, 4), (1, 1), (2, 3), (1, 1), (2, 3)]
    no_warmup = TimingPlan(rounds=4, iterations=3, warmup_rounds=0, probe_s=0.01, capped=False, slices=2,
                           slice_gap=1.0)
    calls.clear()
    time_rounds(lambda: None, no_warmup, device_timer, sleep=lambda s: None)
    assert calls == [(3, 2), (1, 1), (3, 2)]  # none asked before the first slice; one call after the gap


def test_side_by_side_times_each_contender_in_turn_after_an_untimed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that slows down call by call moves both contenders alike, so each turn's ratio stays near the
    true one; the order flips every turn, and each turn starts with an untimed call that absorbs the other
    runtime's spinning threads (here: a first call after a switch costs 10x and must not be counted)."""
    clock = [0.0]
    calls: list[str] = []
    slowness = [1.0, 1.01]  # the machine's speed factor, and how it drifts with every call

    def contender(name: str, cost: float) -> Callable[[], None]:
        def run() -> None:
            switched = bool(calls) and calls[-1] != name
            calls.append(name)
            clock[0] += cost * slowness[0] * (10 if switched else 1)
            slowness[0] *= slowness[1]
        return run

    monkeypatch.setattr("bench.stages.measure.time.perf_counter", lambda: clock[0])
    plan = TimingPlan(rounds=4, iterations=2, warmup_rounds=1, probe_s=0.0, capped=False, slices=2, slice_gap=2.0)
    turns = side_by_side({"tuned": (contender("tuned", 3.0), plan), "ort": (contender("ort", 1.0), plan)}, 3)
    # One slice of each plan per turn (2 of 4 rounds, 2 calls each) after one untimed call; order flips.
    assert calls == ["tuned"] * 5 + ["ort"] * 5 + ["ort"] * 5 + ["tuned"] * 5 + ["tuned"] * 5 + ["ort"] * 5
    ratios = [t / o for t, o in zip(turns["tuned"], turns["ort"], strict=True)]
    assert len(ratios) == 3
    assert ratios == pytest.approx([3.0] * 3, rel=0.06)  # within the drift of one turn; the 10x calls are not in it

    # A fast contender's turn lasts at least turn_s: rounds of 2 calls (2 s for ort, 6 s for tuned) until 10 s.
    calls.clear()
    slowness[:] = [1.0, 1.0]  # a steady machine from here
    side_by_side({"tuned": (contender("tuned", 3.0), plan), "ort": (contender("ort", 1.0), plan)}, 1, turn_s=10.0)
    assert calls == ["tuned"] * (1 + 2 * 2) + ["ort"] * (1 + 5 * 2)


def test_the_tuned_item_keeps_its_figures_when_onnx_runtime_cannot_run_the_model(tmp_path: Path) -> None:
    """Side by side needs an ONNX Runtime session; if the model has an operator ORT lacks, the tuned item records
    why instead of the ratio (the ort item fails with it), and with a working session it records each turn."""
    from bench.run.session import BenchSession

    messages: list[str] = []
    session = BenchSession(tmp_path, progress=messages.append)
    case: Any = NS(id="m-native-b8-tuned", timing=TimingSpec(min_time=0.0, side_by_side=3), max_time=None)
    plan = TimingPlan(rounds=2, iterations=1, warmup_rounds=0, probe_s=0.0, capped=False)

    def broken(case: Any, model: Any) -> Any:
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Foo\n...")

    session.ort_build = broken  # type: ignore[method-assign]
    info = session._side_by_side(case, None, lambda: None, plan)  # type: ignore[arg-type]
    assert info == {"side_by_side": {"turns": 0, "error": "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : "
                                                          "Could not find an implementation for Foo"}}
    assert messages == ["[bench] m-native-b8-tuned: not timed side by side with ONNX Runtime: "
                        "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Foo"]

    def working(case: Any, model: Any) -> Any:
        return NS(run=lambda: sum(range(1000)))

    session.ort_build = working  # type: ignore[method-assign]
    info = session._side_by_side(case, None, lambda: sum(range(2000)), plan)  # type: ignore[arg-type]
    assert info["side_by_side"]["turns"] == 3 and len(info["side_by_side"]["ratios"]) == 3
    assert info["tuned_vs_ort_side_by_side"] > 0


def test_interleaved_pairs_alternate_in_random_order_and_cancel_drift() -> None:
    """Each pair times a block of each build, in a seeded random order (both orders occur); a slowdown of the
    whole machine that comes and goes hits both blocks of a pair, so every pair's ratio stays the builds' own
    (1.2 here); ``settled`` is asked from min_pairs on, every 4 pairs, and ends the pairs."""
    from bench.stages.measure import interleaved_pairs

    clock = {"t": 0.0}
    order: list[str] = []
    slow = [1.0]

    def build(name: str, cost: float) -> Any:
        def run() -> None:
            order.append(name)
            end = time.perf_counter() + cost * slow[0]
            while time.perf_counter() < end:
                pass
            clock["t"] += 1
            slow[0] = 2.0 if int(clock["t"] / 40) % 2 else 1.0  # the machine halves its speed every 40 calls
        return run

    asked: list[int] = []

    def settled(logs: list[float]) -> bool:
        asked.append(len(logs))
        return len(logs) >= 20

    pairs, capped = interleaved_pairs(build("cur", 1.2e-4), build("base", 1e-4), 5, min_pairs=12, max_pairs=100,
                                      max_time=30, settled=settled, seed=3)
    assert not capped and len(pairs) == 20 and asked == [12, 16, 20]
    firsts = {order[2 + 10 * i] for i in range(20)}  # two untimed calls first, then 5 + 5 calls per pair
    assert firsts == {"cur", "base"}
    ratios = sorted(c / b for c, b in pairs)
    assert 1.1 < ratios[len(ratios) // 2] < 1.3

    pairs, capped = interleaved_pairs(build("cur", 1e-5), build("base", 1e-5), 1, min_pairs=4, max_pairs=6,
                                      max_time=30, settled=lambda logs: False)
    assert capped and len(pairs) == 6
