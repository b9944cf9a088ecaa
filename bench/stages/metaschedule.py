"""MetaSchedule plumbing: a builder that keeps its workers, candidates built as the final build is, the
runner on this host or a device pool, its threads read back, and progress while it searches.

Why each exists, with the figures: bench.stages.tune's docstring and docs/studies/README.md#tuning-cost.
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.stages.remote import Tracker
    from bench.stages.tuning_db import Progress
    from bench.suite.case import Case

#: Modules of ``tvm.s_tir.tensor_intrin`` each CPU architecture's schedule rules use (TVM 0.27).
CPU_INTRINSICS = {"x86": ("x86",), "arm": ("arm_cpu",), "riscv": ("riscv_cpu",)}
#: Every CPU architecture's modules, for a CPU target whose architecture is unknown.
EVERY_CPU_INTRINSICS = tuple(name for names in CPU_INTRINSICS.values() for name in names)
#: Every module the package's ``__init__`` imports (TVM 0.27), for any other target.
ALL_INTRINSICS = ("cuda", *EVERY_CPU_INTRINSICS, "rocm", "hexagon")


def cpu_arch(target: Any) -> str | None:
    """The CPU architecture a CPU target's kernels run on: its ``mtriple``'s, else this host's; None if unknown."""
    import platform

    triple = (str(target.attrs.get("mtriple", "") or "") or platform.machine()).lower()
    for arch, prefixes in (("x86", ("x86_64", "amd64", "i386", "i686")), ("arm", ("aarch64", "arm")),
                           ("riscv", ("riscv",))):
        if triple.startswith(prefixes):
            return arch
    return None


def register_intrinsics(target: Any) -> None:
    """Register the tensor intrinsics a target can use before MetaSchedule's TuneContext imports them all.

    TuneContext imports ``tvm.s_tir.tensor_intrin``, whose ``__init__`` parses
    some 250 TVMScript intrinsics; CUDA's alone take 10-18 s, in every process
    that tunes, and a CPU tuning uses only its own architecture's. For a CPU
    target the package is entered without running its ``__init__`` and only
    the modules of the target's architecture are imported (every CPU one where
    it is unknown); any other target gets every module, as TVM's import would
    give. The design spaces are the same either way (tests/integration/test_tune_builder.py).
    """
    import importlib
    import importlib.util
    import sys
    import types

    package = "tvm.s_tir.tensor_intrin"
    cpu = target.kind.name in ("llvm", "c")
    if package not in sys.modules:
        if not cpu:
            importlib.import_module(package)
            return
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            return
        stub = types.ModuleType(package, "CPU tensor intrinsics only (bench.stages.metaschedule)")
        stub.__spec__, stub.__package__ = spec, package
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = stub
    names = CPU_INTRINSICS.get(cpu_arch(target) or "", EVERY_CPU_INTRINSICS) if cpu else ALL_INTRINSICS
    for name in names:
        importlib.import_module(f"{package}.{name}")


#: The cost model's OpenMP threads (XGBoost's libgomp) sleep when idle instead of spinning: the search predicts
#: many times a second, and each idle thread kept a core busy for the builders, the runner and everything else
#: on the machine (docs/studies/README.md#cost-model-threads). libgomp reads it once, when XGBoost loads it.
COST_MODEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def quiet_cost_model() -> dict[str, str | None]:
    """Set ``COST_MODEL_ENV`` where the user set none, before this process's first tuning loads XGBoost.

    Returns the policy in force for the cost model: the variables' values as XGBoost loaded them, or None for
    each when something else loaded XGBoost first (its OpenMP runtime read the environment then).
    """
    import sys

    global _IN_FORCE
    if "xgboost" not in sys.modules:
        for name, value in COST_MODEL_ENV.items():
            os.environ.setdefault(name, value)
        _IN_FORCE = {name: os.environ[name] for name in COST_MODEL_ENV}
    return _IN_FORCE or {name: None for name in COST_MODEL_ENV}


_IN_FORCE: dict[str, str | None] | None = None


def fast_build(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default_build minus the 16 s tensor_intrin import per worker.

    The candidate is compiled exactly as the final build will compile it: at
    LLVM -O2 the builder took 10% less, but one ResNet-18 candidate that
    measured 1.07 ms there ran 29 ms in the -O3 final build (docs/studies/README.md#tuning-cost).
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def export_shared(mod: Any) -> str:
    """Link the candidate into a shared library here, in the parallel builder.

    MetaSchedule's default exports a tar of object files, which the runner
    untars and links before every measurement, one candidate at a time. A
    runner on this host can load the library as it is; a remote device still
    gets the tar and links with its own toolchain.
    """
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "tvm_tmp_mod.so")
    mod.export_library(path)
    return path


RUNNER_THREADS = "runner-threads"


def record_runner_threads(folder: str) -> None:
    """LocalRunner initializer: note the thread count TVM uses in this measuring process.

    The runner's processes inherit TVM_NUM_THREADS from the worker; reading
    the count back in each of them proves the candidates were timed on the
    target's cores, not on TVM's hardware-threads / 2 default.
    """
    import tvm

    Path(folder, str(os.getpid())).write_text(str(tvm.runtime.num_threads()))


def runner_threads(folder: Path) -> tuple[int, ...]:
    found = set()
    for path in folder.glob("*"):
        try:
            found.add(int(path.read_text()))
        except (OSError, ValueError):
            continue
    return tuple(sorted(found))


def pooled_builder(max_workers: int, timeout_sec: float, *, shared: bool, max_uses: int = 256) -> Any:
    """A builder whose worker processes live across batches.

    MetaSchedule's LocalBuilder starts fresh workers for every batch (each
    pays the TVM import); with a few candidates per batch that start-up is
    most of the builder's time. Workers here are recycled after ``max_uses``
    builds instead, which bounds the leak LocalBuilder restarts for (a worker grew
    by 39 MiB over 120 ResNet-18 candidates; each restart costs about 0.85 s).
    ``shared``: export linked libraries (``export_shared``), for a runner on this host.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    export = export_shared if shared else None  # None: MetaSchedule's tar

    @derived_object
    class _Pooled(PyBuilder):  # type: ignore[misc]
        def __init__(self) -> None:
            self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec,
                                          maximum_process_uses=max_uses)

        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            args = [(fast_build, export, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
            for res in self.pool.map_with_error_catching(lambda x: _worker_func(*x), args):
                if res.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(res.value, None))
                elif res.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"builder timeout after {timeout_sec} s"))
                else:
                    results.append(BuilderResult(None, f"build failed:\n{res.value}"))
            return results

        def close(self) -> None:
            self.pool.shutdown()

    return _Pooled()


def progress_callback(label: str, budget: int, weights: list[float], names: list[str],
                       progress: Progress, done: int = 0) -> Any:
    """A MeasureCallback that reports trials done and the best model latency so far."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class _Report(PyMeasureCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.trials = 0
            self.best: dict[int, float] = {}
            self.started = time.perf_counter()
            self.trajectory: list[tuple[int, float]] = []

        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: Any,
                  builder_results: Any, runner_results: Any) -> None:
            self.trials += len(measure_candidates)
            shown = done + self.trials
            for res in runner_results:
                if res.error_msg is None and res.run_secs:
                    sec = sum(float(s) for s in res.run_secs) / len(res.run_secs)
                    self.best[task_id] = min(self.best.get(task_id, math.inf), sec)
            est = sum(weights[i] * s for i, s in self.best.items())
            elapsed = time.perf_counter() - self.started
            self.trajectory.append((self.trials, elapsed))
            progress(f"[tune] {label}: {shown}/{budget} trials, {len(self.best)}/{len(weights)} tasks "
                     f"measured, best est. latency {est * 1e3:.3f} ms (sum of tuned kernels), "
                     f"{elapsed:.0f} s, last task {names[task_id]}")

    return _Report()


def reset_logger() -> None:
    """Drop handlers a previous tuning left on MetaSchedule's logger.

    MetaSchedule's logging setup lists the logger's current handlers by name in
    a dictConfig; the second tuning in one process finds an unnamed one and
    crashes (AttributeError in ``_parameterize_config``). dictConfig recreates
    its own console and file handlers, so removing them loses nothing.
    """
    import logging

    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def create_rpc_session(threads: int, folder: str, rpc_config: Any) -> Any:
    """RPCRunner session factory: a device session narrowed to the target's threads, which it notes down.

    Runs in the runner's worker processes on this host, once per measured candidate.
    """
    session = rpc_config.connect_server()
    have = int(session.get_function("runtime.NumThreads")())
    if have > threads:
        session.get_function("runtime.config_threadpool")(1, threads)
        have = int(session.get_function("runtime.NumThreads")())
    Path(folder, f"{os.getpid()}").write_text(str(have))
    if have != threads:
        raise RuntimeError(f"the device runs TVM with {have} threads; the target names {threads}")
    return session


def make_runner(case: Case, tracker: Tracker | None, threads_dir: Path, progress: Progress, *, flush: bool) -> Any:
    """The local runner, or an RPCRunner with as many workers as the pool has free devices."""
    from tvm.s_tir import meta_schedule as ms

    settings = case.tuning
    evaluator = ms.runner.EvaluatorConfig(number=1, repeat=1, min_repeat_ms=0,
                                          enable_cpu_cache_flush=flush)
    if tracker is None:
        return ms.runner.LocalRunner(timeout_sec=settings.runner_timeout, evaluator_config=evaluator,
                                     initializer=functools.partial(record_runner_threads, str(threads_dir)))
    from bench.stages import remote

    free, registered = remote.free_devices(case.target, tracker, case.suite.where)
    workers = max(1, free)
    progress(f"[tune] {case.id}: measuring on {workers} device(s) with key {case.target.rpc.key!r} at {tracker} "
             f"({free} free of {registered} registered)")
    rpc = case.target.rpc
    config = ms.runner.RPCConfig(tracker_host=tracker.host, tracker_port=tracker.port, tracker_key=rpc.key,
                                 session_priority=rpc.priority, session_timeout_sec=settings.runner_timeout)
    return ms.runner.RPCRunner(config, evaluator_config=evaluator, max_workers=workers,
                               f_create_session=functools.partial(create_rpc_session, case.target.threads,
                                                                  str(threads_dir)))


