"""Timing plans fit pytest-benchmark's rounds x iterations into the per-item cap."""

from __future__ import annotations

import pytest

from bench.measure import plan_timing
from bench.suite import TimingSpec

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
    import bench.measure as measure

    clock = [0.0]

    def perf_counter() -> float:
        clock[0] += 1e-6  # every reading takes a microsecond, so the busy-wait ends
        return clock[0]

    durations = iter([0.010, 0.050, 0.050, 0.010, 0.012, 0.050, 0.010])

    def run() -> None:
        clock[0] += next(durations)

    monkeypatch.setattr("bench.measure.time.perf_counter", perf_counter)
    monkeypatch.setenv(measure.SLOWDOWN_ENV, "0.1")
    slowed = measure.with_injected_slowdown(run)
    start = clock[0]
    slowed()
    assert clock[0] - start == pytest.approx(0.010 + 0.001, abs=2e-5)
    monkeypatch.delenv(measure.SLOWDOWN_ENV)
    assert measure.with_injected_slowdown(run) is run
