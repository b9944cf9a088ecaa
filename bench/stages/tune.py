"""Tune stage: MetaSchedule with the XGBoost cost model, cached per key.

TVM's defaults cost 2-3 s per trial on a 2-core machine; these settings cost a
fraction of that at equal quality (measured figures in docs/studies/README.md#tuning-cost):

* the builder skips ``import tvm.s_tir.tensor_intrin`` (about 16 s in every
  fresh builder worker) by building with a function of our own, and keeps its
  worker processes across batches instead of starting new ones per batch;
  the tuning process itself imports only the intrinsics its target can use;
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

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cache import locked, set_aside
from bench.errors import BuildError
from bench.stages.metaschedule import (
    RUNNER_THREADS,
    make_runner,
    pooled_builder,
    progress_callback,
    quiet_cost_model,
    register_intrinsics,
    reset_logger,
    runner_threads,
)
from bench.stages.tuning_db import (
    RECORDS,
    TUNING_SCHEMA,
    WORKLOADS,
    Partial,
    Progress,
    Tuned,
    cache_flush,
    entry_dir,
    finish_entry,
    open_partial,
    read_meta,
)
from bench.suite.target import serves

if TYPE_CHECKING:
    from bench.stages.model import LoadedModel
    from bench.stages.remote import Tracker
    from bench.suite.case import Case

__all__ = ["RECORDS", "WORKLOADS", "Progress", "Tuned", "select_tasks", "tune"]


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


def select_tasks(tasks: list[Any], ops: list[str] | None) -> list[Any]:
    """The tasks ``tuning.ops`` asks for: those whose name contains one of the op names (all without ops)."""
    if not ops:
        return tasks
    return [t for t in tasks if any(op in t.task_name for op in ops)]


def _tune_locked(mod: Any, case: Case, model: LoadedModel, cache_dir: Path, entry: Path, key: str, *,
                 retune: bool, progress: Progress, tracker: Tracker | None) -> Tuned:
    import tvm

    meta = None if retune else read_meta(entry, key, cache_dir, progress)
    if meta is not None:
        progress(f"[tune] {case.id}: reusing {meta['trials']} trials from {entry}")
        return Tuned(entry / "work", meta["trials"], meta["tasks"], meta["tuning_s"], True, key,
                     meta.get("resumed_from_records", 0), tuple(meta.get("runner_threads") or ()),
                     meta.get("warm_from"))
    tasks = _tasks(mod, case, progress)
    # Tune into work.partial and rename when done: "work" only ever holds a finished database.
    part = open_partial(case, model, cache_dir, entry, retune=retune, progress=progress)
    search = _search(case, model, tasks, part, entry / RUNNER_THREADS, tracker, progress)
    # A warm start's trials and seconds are this database's cost too; an interrupted run's seconds are unknown.
    tuning_s = search.seconds + part.warm_s
    trials = part.done + search.trials
    if search.threads and not all(serves(case.target, t) for t in search.threads):
        reason = (f"the runner measured candidates with {', '.join(map(str, search.threads))} TVM threads, "
                  f"but the target needs {case.target.threads}")
        dest = set_aside(part.path, cache_dir, reason)
        raise BuildError(f"tuning {case.id}: {reason}; its records are set aside in {dest}, not used",
                         case.suite.where, f"budgets ({case.budget.id})")
    names = [t.task_name for t in tasks]
    work = finish_entry(entry, part, {
        "schema": TUNING_SCHEMA, "key": key, "family": part.family, "model": case.model.name,
        "model_sha256": model.sha256, "target": json.loads(case.target.json), "budget": asdict_budget(case),
        "tuning": {**case.tuning.model_dump(), "layout": case.conv_layout or "model", "cache_flush": search.flush},
        "tvm_version": tvm.__version__, "tasks": len(tasks), "task_names": names, "trials": trials,
        "tuning_s": tuning_s, "trials_per_iter": search.per_iter, "created": time.time(),
        "resumed_from_records": part.done - part.warm, "warm_from": part.warm_from,
        "threads": case.target.threads, "runner_threads": list(search.threads), "cost_model_env": search.openmp,
        # (trials, seconds) after each measured batch of this run: the cost side of a tuning curve.
        "trajectory": [[part.done + n, round(s + part.warm_s, 3)] for n, s in search.trajectory]})
    progress(f"[tune] {case.id}: {trials} trials ({search.trials} in this run, {search.seconds:.1f} s, "
             f"{search.seconds / max(search.trials, 1):.2f} s/trial{_warm_note(part.warm_from)}), database {work}")
    return Tuned(work, trials, len(tasks), tuning_s, False, key, part.done - part.warm, search.threads,
                 part.warm_from)


def _tasks(mod: Any, case: Case, progress: Progress) -> list[Any]:
    """The module's tuning tasks that ``tuning.ops`` selects; an error naming the model's tasks if none."""
    from tvm.s_tir import meta_schedule as ms

    extracted = ms.relax_integration.extract_tasks(mod, case.target.tvm(), {})
    if not extracted:
        raise BuildError("MetaSchedule extracted no tasks to tune", case.suite.where,
                         f"models[{case.model_index}]")
    ops = case.tuning.ops
    tasks = select_tasks(list(extracted), ops)
    if not tasks:
        raise BuildError(f"no tuning task matches tuning.ops {ops}; the model's tasks are "
                         f"{', '.join(sorted({t.task_name for t in extracted}))}", case.suite.where, "tuning.ops")
    if len(tasks) < len(extracted):
        progress(f"[tune] {case.id}: tuning.ops {ops} selects {len(tasks)} of {len(extracted)} tasks; "
                 "the others build untuned")
    return tasks


@dataclass(frozen=True)
class _Searched:
    trials: int
    seconds: float
    #: (trials, seconds) after each measured batch.
    trajectory: list[tuple[int, float]]
    per_iter: int
    flush: bool
    #: TVM threads each of the runner's measuring processes reported.
    threads: tuple[int, ...]
    #: The cost model's OpenMP environment (metaschedule.quiet_cost_model).
    openmp: dict[str, str | None]


def _search(case: Case, model: LoadedModel, tasks: list[Any], part: Partial, threads_dir: Path,
            tracker: Tracker | None, progress: Progress) -> _Searched:
    """The rest of the budget, searched with the XGBoost cost model into ``part``."""
    import psutil
    from tvm.s_tir import meta_schedule as ms

    settings, budget = case.tuning, case.budget
    per_iter = max(1, min(settings.trials_per_iter, budget.trials // len(tasks)))
    openmp = quiet_cost_model()
    reset_logger()
    register_intrinsics(case.target.tvm())
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        tasks, work_dir=str(part.path), seed=settings.seed,
        strategy=ms.search_strategy.EvolutionarySearch(
            population_size=settings.population, genetic_num_iters=settings.genetic_iters,
            init_min_unmeasured=min(settings.init_min_unmeasured, settings.population)),
    )
    names = [t.task_name for t in tasks]
    report = progress_callback(case.id, budget.trials, list(weights), names, progress, part.done)
    progress(f"[tune] {case.id}: {len(tasks)} tasks, budget {budget.trials} trials, {per_iter} per iteration")
    shutil.rmtree(threads_dir, ignore_errors=True)
    threads_dir.mkdir(parents=True)
    flush, why = cache_flush(case, model)
    progress(f"[tune] {case.id}: candidates timed with {'their weights flushed from' if flush else 'warm'} "
             f"CPU caches ({why})")
    runner = make_runner(case, tracker, threads_dir, progress, flush=flush)
    builder = pooled_builder(psutil.cpu_count(logical=False) or 1, settings.builder_timeout, shared=tracker is None)
    start = time.perf_counter()
    try:
        if part.done < budget.trials:
            ms.tune.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=str(part.path),
                max_trials_global=budget.trials - part.done,
                max_trials_per_task=budget.max_trials_per_task,
                num_trials_per_iter=per_iter,
                builder=builder,
                runner=runner,
                cost_model="xgb",
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), report],
            )
    except Exception as err:
        raise BuildError(f"tuning {case.id} failed: {str(err).strip().splitlines()[-1]}", case.suite.where,
                         f"budgets ({case.budget.id})") from None
    finally:
        builder.close()
    return _Searched(int(report.trials), time.perf_counter() - start, list(report.trajectory), per_iter, flush,
                     runner_threads(threads_dir), openmp)


def _warm_note(warm_from: dict[str, Any] | None) -> str:
    if not warm_from:
        return ""
    return f"; {warm_from['trials']} more from {warm_from['budget']}'s database, {warm_from['tuning_s']:.0f} s"


def asdict_budget(case: Case) -> dict[str, Any]:
    return {"name": case.budget.id, "trials": case.budget.trials,
            "max_trials_per_task": case.budget.max_trials_per_task}
