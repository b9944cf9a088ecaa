"""Tune stage: MetaSchedule with the XGBoost cost model, cached per key.

TVM's defaults cost 2-3 s per trial on a 2-core machine; these settings cost a
fraction of that at equal quality (measured figures in docs/studies/README.md#tuning-cost):

* the builder skips ``import tvm.s_tir.tensor_intrin`` (about 16 s in every
  fresh builder worker) by building with a function of our own, and keeps its
  worker processes across batches instead of starting new ones per batch;
* for a runner on this host, candidates are linked in the (parallel) builder
  rather than in the (serial) runner;
* evolutionary search with a small population and one genetic iteration;
* the runner measures each candidate once during search (the real timing is
  pytest-benchmark's, on the final build), on CPUs with its weights flushed
  from the caches as they are in the network (``tuning.cache_flush``);
* a few trials per iteration so every task gets trials within the budget.

The database lives in ``<cache>/tuning/<model>-<target>-<budget>-<key>/work``
where the key covers the model's content, the resolved target JSON, the
budget, the search settings and the TVM version: records are not checked
against the target by TVM, so a key that ignored the target would silently
apply a database tuned for another CPU.

Interruptions and sharing: tuning writes into ``work.partial`` and renames it
to ``work`` when done. MetaSchedule appends one JSON line per measured
record, so a run killed mid-tuning leaves every record before the kill; the
next run drops a half-written last line (set aside, not deleted), counts the
records as trials already spent and tunes only the rest of the budget. A file
lock per entry makes a second session wait and then reuse the result. A
finished entry whose files no longer match the sha256 in its ``meta.json``
is moved to the cache's quarantine and tuned again.

Warm starts (``tuning.warm_start``): a budget with no database of its own
starts from a copy of the largest finished database of the same family
(same key but for the budget) and tunes the rest; the copied trials and
their seconds are counted in the new entry's trials and ``tuning_s``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cache import atomic_write, key_of, locked, set_aside
from bench.errors import BuildError
from bench.spec.target import last_level_cache_bytes, serves
from bench.stages.build import NO_PREPACK

if TYPE_CHECKING:
    from bench.spec.case import Case
    from bench.stages.model import LoadedModel
    from bench.stages.remote import Tracker

#: Stamped into meta.json; a mismatch means the entry is retuned, not misread.
#: 2: the key covers the runner's thread count (schema 1 databases were measured on one thread).
TUNING_SCHEMA = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tuned:
    """A finished tuning database and what it cost."""

    work_dir: Path
    trials: int
    tasks: int
    tuning_s: float
    cached: bool
    key: str
    #: Records an interrupted run had measured before this one resumed it.
    resumed: int = 0
    #: TVM runtime threads each of the runner's measuring processes reported (read back, not assumed).
    runner_threads: tuple[int, ...] = ()
    #: The smaller budget's database this one started from (``tuning.warm_start``): its budget name,
    #: trials and tuning seconds, which are counted in ``trials`` and ``tuning_s``.
    warm_from: dict[str, Any] | None = None

    @property
    def seconds_per_trial(self) -> float | None:
        """Over the trials measured by this run and a warm start's source (``tuning_s`` covers both, but not
        an interrupted run's time)."""
        measured = self.trials - self.resumed
        return self.tuning_s / measured if measured > 0 else None


def cache_flush(case: Case, model: LoadedModel) -> tuple[bool, str]:
    """Whether the runner flushes candidates' weights from the CPU caches before timing them, and why."""
    setting = case.tuning.cache_flush
    if case.target.kind != "llvm":
        return False, "not a CPU target"
    if setting != "auto":
        return setting, f"tuning.cache_flush: {str(setting).lower()}"
    if case.target.rpc is not None:
        return False, "auto: a remote device's caches are not known here (set tuning.cache_flush)"
    cache = last_level_cache_bytes()
    if cache is None:
        return False, "auto: this host's cache size is unknown (set tuning.cache_flush)"
    weights = model.weight_bytes
    return weights > cache, (f"auto: {weights / 2**20:.0f} MiB of weights, {cache / 2**20:.0f} MiB "
                             "last-level cache")


def _key_settings(case: Case, model: LoadedModel) -> dict[str, Any]:
    settings = case.tuning.key_settings()
    if case.conv_layout is not None:
        settings["layout"] = case.conv_layout
    if cache_flush(case, model)[0]:
        settings["cache_flush"] = True
    if case.weight_prepack and "ConvTranspose" in model.op_types:  # its kernels tune without prepacking
        settings["no_prepack"] = list(NO_PREPACK)
    return settings


def tuning_key(case: Case, model: LoadedModel) -> str:
    import tvm

    return key_of(TUNING_SCHEMA, model.sha256, case.target.identity, case.target.threads, case.budget.trials,
                  case.budget.max_trials_per_task, _key_settings(case, model), tvm.__version__)


def tuning_family(case: Case, model: LoadedModel) -> str:
    """The tuning key without the budget: databases of one family differ only in how many trials they hold."""
    import tvm

    return key_of(TUNING_SCHEMA, model.sha256, case.target.identity, case.target.threads,
                  _key_settings(case, model), tvm.__version__)


def entry_dir(case: Case, model: LoadedModel, cache_dir: Path) -> tuple[Path, str]:
    key = tuning_key(case, model)
    return cache_dir / "tuning" / f"{case.model.name}-{case.target.name}-{case.budget.id}-{key[:12]}", key


WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def _scan(work: Path) -> tuple[list[str], list[str], str | None]:
    """The database's valid workload and record lines, and what was wrong with the rest (if anything).

    A line is valid when it parses as JSON of the shape MetaSchedule writes;
    a record must point at an existing workload.
    """
    problems = []
    workloads: list[str] = []
    records: list[str] = []
    for name, out in ((WORKLOADS, workloads), (RECORDS, records)):
        try:
            text = (work / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{name}: unreadable ({err})")
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                problems.append(f"{name} line {n}: not valid JSON (half-written?)")
                continue
            if name == RECORDS and not (isinstance(value, list) and value and isinstance(value[0], int)
                                        and 0 <= value[0] < len(workloads)):
                problems.append(f"{name} line {n}: not a record of a known workload")
                continue
            if name == WORKLOADS and not isinstance(value, list):
                problems.append(f"{name} line {n}: not a workload entry")
                continue
            out.append(line)
    return workloads, records, "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") or None


def _digest(work: Path) -> str:
    h = hashlib.sha256()
    for name in (WORKLOADS, RECORDS):
        path = work / name
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()


def _read_meta(entry: Path, key: str, cache_dir: Path, progress: Progress) -> dict[str, Any] | None:
    """A finished entry's meta, or None; a finished entry that fails its checks is set aside."""
    work = entry / "work"
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("schema") != TUNING_SCHEMA or meta.get("key") != key:
        reason = "meta.json is unreadable or belongs to another key"
    elif not (work / RECORDS).is_file():
        reason = f"{RECORDS} is missing"
    elif meta.get("database_sha256") is not None and meta["database_sha256"] != _digest(work):
        reason = "the database files no longer match the sha256 in meta.json (truncated or edited)"
    else:
        _, records, problem = _scan(work)
        if problem is None and records:
            return dict(meta)
        reason = f"the database is damaged: {problem or 'no records'}"
    dest = set_aside(entry, cache_dir, reason)
    progress(f"[cache] tuning entry {entry}: {reason}; moved to {dest} and tuning again")
    return None


WARM_FROM = "warm-from.json"


def _warm_source(cache_dir: Path, family: str, trials: int) -> tuple[Path, dict[str, Any]] | None:
    """The finished entry of this family with the most trials below ``trials`` whose files still check out."""
    found = []
    for meta_path in (cache_dir / "tuning").glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(meta, dict) and meta.get("schema") == TUNING_SCHEMA and meta.get("family") == family
                and isinstance(meta.get("trials"), int) and 0 < meta["trials"] < trials):
            found.append((meta["trials"], meta_path.parent, meta))
    for _, entry, meta in sorted(found, key=lambda f: -f[0]):
        work = entry / "work"
        if (work / RECORDS).is_file() and meta.get("database_sha256") == _digest(work):
            return entry, meta
    return None


def _warm_start(partial: Path, source: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Copy a smaller budget's database into ``partial``; return what was taken (also kept beside it)."""
    partial.mkdir(parents=True, exist_ok=True)
    for name in (WORKLOADS, RECORDS):
        shutil.copyfile(source / "work" / name, partial / name)
    _, records, _ = _scan(partial)
    taken = {"entry": source.name, "budget": meta.get("budget", {}).get("name"), "trials": len(records),
             "tuning_s": float(meta.get("tuning_s") or 0.0)}
    atomic_write(partial / WARM_FROM, json.dumps(taken))
    return taken


def _read_warm_from(partial: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((partial / WARM_FROM).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("trials"), int) else None


def _resume_partial(partial: Path, cache_dir: Path, progress: Progress, label: str) -> int:
    """Make an interrupted run's database safe to continue; return its record count."""
    workloads, records, problem = _scan(partial)
    if problem is not None:
        kept = cache_dir / "quarantine"
        for name in (WORKLOADS, RECORDS):
            if (partial / name).is_file():
                kept = set_aside(partial / name, cache_dir, f"interrupted tuning: {problem}").parent
        atomic_write(partial / WORKLOADS, "".join(line + "\n" for line in workloads))
        atomic_write(partial / RECORDS, "".join(line + "\n" for line in records))
        progress(f"[tune] {label}: interrupted database had bad lines ({problem}); kept the "
                 f"{len(records)} good records, originals in {kept}")
    return len(records)


def _fast_build(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default_build minus the 16 s tensor_intrin import per worker.

    The candidate is compiled exactly as the final build will compile it: at
    LLVM -O2 the builder took 10% less, but one ResNet-18 candidate that
    measured 1.07 ms there ran 29 ms in the -O3 final build (docs/studies/README.md#tuning-cost).
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _export_shared(mod: Any) -> str:
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


def _runner_threads(folder: Path) -> tuple[int, ...]:
    found = set()
    for path in folder.glob("*"):
        try:
            found.add(int(path.read_text()))
        except (OSError, ValueError):
            continue
    return tuple(sorted(found))


def _pooled_builder(max_workers: int, timeout_sec: float, *, shared: bool, max_uses: int = 256) -> Any:
    """A builder whose worker processes live across batches.

    MetaSchedule's LocalBuilder starts fresh workers for every batch (each
    pays the TVM import); with a few candidates per batch that start-up is
    most of the builder's time. Workers here are recycled after ``max_uses``
    builds instead, which bounds the leak LocalBuilder restarts for (a worker grew
    by 39 MiB over 120 ResNet-18 candidates; each restart costs about 0.85 s).
    ``shared``: export linked libraries (bench.stages.tune._export_shared), for a runner on this host.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    export = _export_shared if shared else None  # None: MetaSchedule's tar

    @derived_object
    class _Pooled(PyBuilder):  # type: ignore[misc]
        def __init__(self) -> None:
            self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec,
                                          maximum_process_uses=max_uses)

        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            args = [(_fast_build, export, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
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


def _progress_callback(label: str, budget: int, weights: list[float], names: list[str],
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


def _reset_meta_schedule_logger() -> None:
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


def tune(mod: Any, case: Case, model: LoadedModel, cache_dir: Path, *, retune: bool,
         progress: Progress, tracker: Tracker | None = None) -> Tuned:
    """Return the case's tuning database for ``mod`` (bench.stages.build.tuning_module), tuning now only if the
    cache has none.

    With ``tracker`` (an rpc target), candidates are built here and measured
    on the device pool, one runner worker per free device.
    """
    entry, key = entry_dir(case, model, cache_dir)
    with locked(entry.parent / f"{entry.name}.lock", f"tuning {entry.name}", progress):
        return _tune_locked(mod, case, model, cache_dir, entry, key, retune=retune, progress=progress,
                            tracker=tracker)


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


def _runner(case: Case, tracker: Tracker | None, threads_dir: Path, progress: Progress, *, flush: bool) -> Any:
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


def select_tasks(tasks: list[Any], ops: list[str] | None) -> list[Any]:
    """The tasks ``tuning.ops`` asks for: those whose name contains one of the op names (all without ops)."""
    if not ops:
        return tasks
    return [t for t in tasks if any(op in t.task_name for op in ops)]


def _tune_locked(mod: Any, case: Case, model: LoadedModel, cache_dir: Path, entry: Path, key: str, *,
                 retune: bool, progress: Progress, tracker: Tracker | None) -> Tuned:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    meta = None if retune else _read_meta(entry, key, cache_dir, progress)
    if meta is not None:
        progress(f"[tune] {case.id}: reusing {meta['trials']} trials from {entry}")
        return Tuned(entry / "work", meta["trials"], meta["tasks"], meta["tuning_s"], True, key,
                     meta.get("resumed_from_records", 0), tuple(meta.get("runner_threads") or ()),
                     meta.get("warm_from"))

    settings, budget = case.tuning, case.budget
    target = case.target.tvm()
    extracted = ms.relax_integration.extract_tasks(mod, target, {})
    if not extracted:
        raise BuildError("MetaSchedule extracted no tasks to tune", case.suite.where,
                         f"models[{case.model_index}]")
    tasks = select_tasks(list(extracted), settings.ops)
    if not tasks:
        raise BuildError(f"no tuning task matches tuning.ops {settings.ops}; the model's tasks are "
                         f"{', '.join(sorted({t.task_name for t in extracted}))}", case.suite.where, "tuning.ops")
    if len(tasks) < len(extracted):
        progress(f"[tune] {case.id}: tuning.ops {settings.ops} selects {len(tasks)} of {len(extracted)} tasks; "
                 "the others build untuned")
    per_iter = max(1, min(settings.trials_per_iter, budget.trials // len(tasks)))
    # Tune into work.partial and rename when done: "work" only ever holds a finished database.
    partial = entry / "work.partial"
    if partial.exists() and retune:
        shutil.rmtree(partial)
    family = tuning_family(case, model)
    if settings.warm_start and not partial.exists():
        found = _warm_source(cache_dir, family, budget.trials)
        if found is not None:
            taken = _warm_start(partial, *found)
            progress(f"[tune] {case.id}: warm start from {found[0]}: {taken['trials']} trials "
                     f"({taken['tuning_s']:.0f} s) of budget {taken['budget']} count towards this budget")
    warm_from = _read_warm_from(partial) if partial.exists() else None
    done = _resume_partial(partial, cache_dir, progress, case.id) if partial.exists() else 0
    partial.mkdir(parents=True, exist_ok=True)
    warm = min(warm_from["trials"], done) if warm_from else 0
    warm_s = float(warm_from["tuning_s"]) if warm_from else 0.0
    if done > warm:
        progress(f"[tune] {case.id}: resuming an interrupted tuning: {done - warm} records already measured "
                 f"in {partial}, {max(budget.trials - done, 0)} trials to go")
    _reset_meta_schedule_logger()
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        tasks, work_dir=str(partial), seed=settings.seed,
        strategy=ms.search_strategy.EvolutionarySearch(
            population_size=settings.population, genetic_num_iters=settings.genetic_iters,
            init_min_unmeasured=min(settings.init_min_unmeasured, settings.population)),
    )
    names = [t.task_name for t in tasks]
    report = _progress_callback(case.id, budget.trials, list(weights), names, progress, done)
    progress(f"[tune] {case.id}: {len(tasks)} tasks, budget {budget.trials} trials, {per_iter} per iteration")
    import psutil

    threads_dir = entry / RUNNER_THREADS
    shutil.rmtree(threads_dir, ignore_errors=True)
    threads_dir.mkdir(parents=True)
    flush, why = cache_flush(case, model)
    progress(f"[tune] {case.id}: candidates timed with {'their weights flushed from' if flush else 'warm'} "
             f"CPU caches ({why})")
    runner = _runner(case, tracker, threads_dir, progress, flush=flush)
    builder = _pooled_builder(psutil.cpu_count(logical=False) or 1, settings.builder_timeout,
                              shared=tracker is None)
    start = time.perf_counter()
    try:
        if done < budget.trials:
            ms.tune.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=str(partial),
                max_trials_global=budget.trials - done,
                max_trials_per_task=budget.max_trials_per_task,
                num_trials_per_iter=per_iter,
                builder=builder,
                runner=runner,
                cost_model="xgb",
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   report],
            )
    except Exception as err:
        raise BuildError(f"tuning {case.id} failed: {str(err).strip().splitlines()[-1]}", case.suite.where,
                         f"budgets ({case.budget.id})") from None
    finally:
        builder.close()
    # A warm start's trials and seconds are this database's cost too; an interrupted run's seconds are unknown.
    tuning_s = time.perf_counter() - start + warm_s
    trials = done + int(report.trials)
    runner_threads = _runner_threads(threads_dir)
    if runner_threads and not all(serves(case.target, t) for t in runner_threads):
        reason = (f"the runner measured candidates with {', '.join(map(str, runner_threads))} TVM threads, "
                  f"but the target needs {case.target.threads}")
        dest = set_aside(partial, cache_dir, reason)
        raise BuildError(f"tuning {case.id}: {reason}; its records are set aside in {dest}, not used",
                         case.suite.where, f"budgets ({case.budget.id})")
    work = entry / "work"
    if work.exists():
        shutil.rmtree(work)
    (partial / WARM_FROM).unlink(missing_ok=True)
    partial.rename(work)
    meta = {"schema": TUNING_SCHEMA, "key": key, "family": family, "model": case.model.name,
            "model_sha256": model.sha256,
            "target": json.loads(case.target.json), "budget": asdict_budget(case),
            "tuning": {**settings.model_dump(), "layout": case.conv_layout or "model", "cache_flush": flush},
            "tvm_version": tvm.__version__, "tasks": len(tasks), "task_names": names, "trials": trials,
            "tuning_s": tuning_s, "trials_per_iter": per_iter, "created": time.time(),
            "resumed_from_records": done - warm, "warm_from": warm_from,
            "database_sha256": _digest(work), "threads": case.target.threads,
            "runner_threads": list(runner_threads),
            # (trials, seconds) after each measured batch of this run: the cost side of a tuning curve.
            "trajectory": [[done + n, round(s + warm_s, 3)] for n, s in report.trajectory]}
    atomic_write(entry / "meta.json", json.dumps(meta, indent=1))
    this_run = tuning_s - warm_s
    progress(f"[tune] {case.id}: {trials} trials ({trials - done} in this run, {this_run:.1f} s, "
             f"{this_run / max(trials - done, 1):.2f} s/trial{_warm_note(warm_from)}), database {work}")
    return Tuned(work, trials, len(tasks), tuning_s, False, key, done - warm, runner_threads, warm_from)


def _warm_note(warm_from: dict[str, Any] | None) -> str:
    if not warm_from:
        return ""
    return f"; {warm_from['trials']} more from {warm_from['budget']}'s database, {warm_from['tuning_s']:.0f} s"


def asdict_budget(case: Case) -> dict[str, Any]:
    return {"name": case.budget.id, "trials": case.budget.trials,
            "max_trials_per_task": case.budget.max_trials_per_task}
