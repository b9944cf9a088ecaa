"""The one test function every suite item is an instance of (see plugin.SuiteModule), and its body.

Each item measures its case in the session's worker (``bench_runner``), then
replays the worker's samples through pytest-benchmark so that its
statistics, JSON, autosave and compare see the real numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bench.errors import BenchError

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

    from bench.run.runner import Runner
    from bench.suite.case import Case


def test_case(bench_case: Case, benchmark: BenchmarkFixture, bench_runner: Runner) -> None:
    run_case(bench_case, benchmark, bench_runner)


def record_samples(benchmark: BenchmarkFixture, samples: list[float], iterations: int) -> dict[str, Any]:
    """Hand the worker's per-round samples to pytest-benchmark as if it had timed them.

    The calls were timed in the worker process; pytest-benchmark's pedantic
    mode replays them here against a clock that advances by exactly the
    measured time per call, so its statistics, JSON, autosave and compare see
    the real numbers. ``tests/unit/test_record_samples.py`` pins this to the
    installed pytest-benchmark.
    """
    from bench.stages.measure import summarize

    if getattr(benchmark, "disabled", False):
        return summarize(samples)
    replay: Iterator[float] = (s for s in samples for _ in range(iterations))
    clock = [0.0]

    def perf_counter() -> float:  # the name pytest-benchmark records as the timer
        return clock[0]

    def call() -> None:
        # With iterations > 1, pytest-benchmark calls once more after the timed rounds, to get a result;
        # that call is not timed, and the replay has nothing left for it.
        clock[0] += next(replay, 0.0)

    benchmark._timer = perf_counter
    benchmark.pedantic(call, rounds=len(samples), iterations=iterations, warmup_rounds=0)  # type: ignore[no-untyped-call]
    assert benchmark.stats is not None  # pedantic has just filled it
    st = benchmark.stats.stats
    return {"median": st.median, "mean": st.mean, "stddev": st.stddev, "min": st.min, "max": st.max,
            "rounds": st.rounds}


def run_case(case: Case, benchmark: BenchmarkFixture, runner: Runner) -> None:
    """Body of every suite item: measure in the worker, record in pytest-benchmark, check."""
    from bench.errors import CaseSkipped

    benchmark.group = f"{case.suite.name}: {case.model.name} on {case.target.name}"
    skipped: str | None = None
    failed: str | None = None
    try:
        measured = runner.measure(case)
    except CaseSkipped as err:
        skipped = str(err)
    except BenchError as err:
        failed = str(err)
    # Outside the except blocks, so the report shows our message and not a chained traceback.
    if skipped is not None:
        pytest.skip(skipped)
    if failed is not None:
        pytest.fail(failed, pytrace=False)
    stats = record_samples(benchmark, measured.samples, measured.iterations)
    result = runner.finish(case, measured, stats)
    benchmark.extra_info.update(result.info)
    if result.failures:
        pytest.fail("\n".join(result.failures), pytrace=False)
