"""pytest-benchmark's own options on suite items: applied where the harness has the same knob, else refused.

The harness times each item in its worker process and hands the samples to
pytest-benchmark, so the options that shape pytest-benchmark's own timing
loop, timer or profiler never reach a suite item. Silently ignoring them would
let a user believe a run was timed as they asked; each is applied or refused
with the suite key or option that does the job.
"""

from __future__ import annotations

import os
import shlex

import pytest

#: Applied: pytest-benchmark's option -> the harness's (used when the harness's own is not given).
APPLIED = {"--benchmark-max-time": "--bench-max-time"}

#: Refused on a run with suite items, with what to use instead.
REFUSED = {
    "--benchmark-min-time": "the suite's timing.min_time (seconds all rounds of an item span at least)",
    "--benchmark-min-rounds": "the suite's timing.min_rounds and timing.rounds",
    "--benchmark-precision": "the suite's timing.rounds, or timing.paired against a baseline build for a narrow "
                             "interval on a change",
    "--benchmark-confidence": "timing.paired.alpha in the suite, or `python -m bench gate --alpha`",
    "--benchmark-timer": "nothing: the worker times with time.perf_counter (the device's clock on RPC targets)",
    "--benchmark-calibration-precision": "the suite's timing.min_time, from which iterations per round are planned",
    "--benchmark-warmup": "the suite's timing.warmup_rounds",
    "--benchmark-warmup-iterations": "the suite's timing.warmup_rounds",
    "--benchmark-disable-gc": "nothing: the timed calls are TVM's and ONNX Runtime's native code in the worker",
    "--benchmark-cprofile": "--bench-isolation=none with a profiler of your own, or docs/studies/kernel_profile.py "
                            "for the kernels",
}
for _suffix in ("loops", "top", "dump"):
    REFUSED[f"--benchmark-cprofile-{_suffix}"] = REFUSED["--benchmark-cprofile"]


def given(config: pytest.Config) -> set[str]:
    """The long options named on the command line, in PYTEST_ADDOPTS or in the ini's addopts."""
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
            *config.getini("addopts")]
    return {arg.split("=", 1)[0] for arg in map(str, args) if arg.startswith("--")}


def refuse(config: pytest.Config) -> None:
    """A usage error naming every refused option given, and what to use instead."""
    named = sorted(given(config) & REFUSED.keys())
    if named:
        raise pytest.UsageError(
            "suite items are timed by the harness, not by pytest-benchmark's loop: "
            + "; ".join(f"{option} does not apply (use {REFUSED[option]})" for option in named))


def max_time(config: pytest.Config) -> float | None:
    """``--bench-max-time``, else an explicitly given ``--benchmark-max-time``, else None."""
    own = config.getoption("bench_max_time")
    if own is not None or "--benchmark-max-time" not in given(config):
        return float(own) if own is not None else None
    return float(config.getoption("benchmark_max_time"))


def refuse_parallel(config: pytest.Config) -> None:
    """Suite items are timed one at a time: none runs in a pytest-xdist worker (``-n``).

    Raised where the items ask for the session's runner, so each item fails with this line (a usage error in
    a worker's collection would end the run as an xdist internal error instead).
    """
    if hasattr(config, "workerinput"):
        raise pytest.UsageError("suite items are timed one at a time: run them without pytest-xdist's -n "
                                "(items timed in parallel slow each other down, and the gate would see it)")
