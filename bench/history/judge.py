"""Judge a run: its rows, its baseline, the gate's decision and the confirmation of regressions.

The one path both ``python -m bench gate`` (``gate_files``) and
``pytest --bench-gate`` (``gate_session``) take: reading results files,
choosing the baseline from history or a pinned run, deciding
(bench.history.gate.decide), and re-measuring before a regression fails
(bench.history.confirm). bench.history.gate itself is statistics on frames, no files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import GateError, HistoryError
from bench.history.confirm import Rerun, confirm
from bench.history.gate import GateSettings, Verdict, decide
from bench.history.load import History, load_history, read_run
from bench.suite.case import ORT

if TYPE_CHECKING:
    import pandas as pd


def judge(current: pd.DataFrame, outcomes: pd.DataFrame, baseline: pd.DataFrame, settings: GateSettings | None,
          *, label: str, baseline_label: str, machine: str, rerun: Rerun | None = None,
          confirm_times: int = 0, history: pd.DataFrame | None = None) -> Verdict:
    """Decide, then re-measure the regressions ``confirm_times`` times when a ``rerun`` is given.

    With the full ``history`` results, a failing case whose latest runs form
    a step in its history is told where that step began (bench.history.changes).
    """
    settings = settings or GateSettings()
    verdict = decide(current, outcomes, baseline, settings, label=label, baseline_label=baseline_label,
                     machine=machine)
    if rerun is not None and confirm_times > 0:
        confirm(verdict, current, outcomes, baseline, rerun, confirm_times, settings)
    if baseline.empty:
        verdict.notes.append(f"no baseline runs for machine {machine}; every case is new")
    if history is not None:
        link_steps(verdict, current, history, settings)
    return verdict


def link_steps(verdict: Verdict, current: pd.DataFrame, history: pd.DataFrame, settings: GateSettings) -> None:
    """Name the step each regressed case is part of: the change point whose new level reaches this run."""
    import pandas as pd

    from bench.history.changes import ChangePoint, find_changes

    regressed = {c.case: c for c in verdict.cases if c.status in ("regression", "unconfirmed")}
    if not regressed or current.empty:
        return
    rows = current[current["case"].isin(set(regressed))]
    earlier = history[history["case"].isin(set(regressed)) & ~history["run_id"].isin(set(current["run_id"]))]
    series = pd.concat([earlier, rows], ignore_index=True)
    series = series[series["machine"].isin(set(rows["machine"]))]
    latest: dict[str, ChangePoint] = {}
    for point in find_changes(series, statistic=settings.statistic):  # sorted by time: the last one wins
        latest[point.case] = point  # its new level runs to the latest run, this one
    for case, point in latest.items():
        if point.change > 0:
            regressed[case].change_point = point.to_dict()


def select_baseline(history: History, current: pd.DataFrame, exclude_runs: str | set[str] | None,
                    window: int) -> pd.DataFrame:
    """The last ``window`` runs of ``history`` that measured the current cases where they ran now.

    A row's ``machine`` is where the item ran and with how many threads
    (bench.history.load.row_machine), so a case only meets its own past: never a
    run from another CPU, another device, or another thread count.
    """
    def pair(frame: pd.DataFrame) -> pd.Series:
        return frame["case"].astype(str) + "\0" + frame["machine"].astype(str)

    results = history.results
    same = pair(results).isin(set(pair(current)))
    # Cases this run lacks, from runs that shared a host with it (a sharded run spans hosts): the baseline
    # keeps them so the verdict can call them missing.
    related = set(results.loc[results["host_machine"].isin(set(current["host_machine"])), "run_id"])
    absent = ~results["case"].isin(set(current["case"])) & results["run_id"].isin(related)
    rows = results[same | absent]
    if exclude_runs:
        excluded = {exclude_runs} if isinstance(exclude_runs, str) else set(exclude_runs)
        rows = rows[~rows["run_id"].isin(excluded)]
    runs = list(dict.fromkeys(rows.sort_values("run_time")["run_id"]))[-window:]
    return rows[rows["run_id"].isin(runs)]


def gate_files(current: Path | list[Path], history_paths: list[Path], baseline: Path | None = None, *,
               settings: GateSettings | None = None, allow_machine_mismatch: bool = False,
               confirm_times: int = 0, rerun: Rerun | None = None, require_history: bool = False) -> Verdict:
    """The CLI's decision: the current JSON (or repeats of it) vs rolling history or a pinned baseline file.

    With ``confirm_times`` and ``rerun``, regressions are re-measured before they fail (see ``confirm``).
    With ``require_history``, a history that is missing, damaged or holds no run of this machine stops
    the gate (GateError) instead of passing every case as new: a nightly job that lost its history
    must say so, not gate against nothing.
    """
    settings = settings or GateSettings()
    currents = [current] if isinstance(current, Path) else list(current)
    try:
        runs = [read_run(path) for path in currents]
    except HistoryError as err:
        raise GateError(f"--current {err}") from None
    run = runs[-1]
    shards = run.group is not None and all(r.group == run.group for r in runs)
    for other in runs[:-1]:
        if other.machine != run.machine and not shards:  # shards of one run may come from several hosts
            raise GateError(f"--current {other.path} and {run.path} were measured on different machines "
                            f"({other.machine_desc}, {run.machine_desc}); repeats must come from one machine")
    now = load_history(currents)
    cur_rows, cur_out = now.results, now.outcomes
    if baseline is not None:
        try:
            pinned = read_run(baseline)
        except HistoryError as err:
            raise GateError(f"--baseline {err}") from None
        if pinned.machine != run.machine and not allow_machine_mismatch:
            raise GateError(f"--baseline {baseline} was measured on {pinned.machine_desc} ({pinned.machine}), the "
                            f"current run on {run.machine_desc} ({run.machine}): timings from different machines "
                            "are not comparable (--allow-machine-mismatch to compare anyway)")
        base_rows = load_history([baseline]).results
        label = str(baseline)
    else:
        history = load_history(history_paths)
        if require_history:
            _check_history(history, None, history_paths, run.machine_desc)
        if history.results.empty and history.problems:
            raise GateError("--history: no usable results: " + "; ".join(history.problems[:3]))
        base_rows = select_baseline(history, cur_rows, {r.run_id for r in runs} | set(cur_rows["run_id"]),
                                    settings.window)
        if require_history and not _all_paired(cur_rows):
            _check_history(history, base_rows, history_paths, run.machine_desc)
        label = f"rolling median of the last {base_rows['run_id'].nunique()} runs on this machine"
    if shards:
        seen = sorted({r.shard[0] for r in runs if r.shard})
        current_label = f"run {run.group}, shards {', '.join(map(str, seen))} of {run.shard[1] if run.shard else 1}"
    elif len(currents) > 1:
        current_label = f"{len(currents)} repeats: {', '.join(str(p) for p in currents)}"
    else:
        current_label = str(currents[0])
    verdict = judge(cur_rows, cur_out, base_rows, settings, label=current_label, baseline_label=label,
                    machine=f"{run.machine_desc} ({run.machine})", rerun=rerun, confirm_times=confirm_times,
                    history=history.results if baseline is None else None)
    if shards and run.shard is not None and len({r.shard for r in runs}) < run.shard[1]:
        verdict.notes.append(f"only {len({r.shard for r in runs})} of {run.shard[1]} shards of run {run.group} "
                             "reported: the cases of the others are missing")
    return verdict


def _all_paired(rows: pd.DataFrame) -> bool:
    """Every TVM case of the run was timed against its baseline build: its verdict needs no history."""
    tvm = rows[rows["variant"] != ORT]
    return not tvm.empty and all(isinstance(v, dict) and v.get("ratio") is not None for v in tvm["vs_baseline"])


def _check_history(history: History, base_rows: pd.DataFrame | None, paths: list[Path], machine: str) -> None:
    """``--require-history``: lost or damaged files first (``base_rows`` None), then an empty baseline."""
    where = ", ".join(map(str, paths)) or "(none given)"
    lost = [p for p in history.problems if p.endswith("no such file or folder")]
    damaged = [p for p in history.problems if "moved to" in p or "could not move it aside" in p]
    if lost:
        raise GateError(f"--history {where}: {lost[0]}; the history is lost (restore it from where the job keeps "
                        "it, e.g. the results branch), or drop --require-history to start a new one")
    if damaged:
        raise GateError(f"--history {where}: {len(damaged)} damaged file(s): {damaged[0]}; restore them from the "
                        "results branch, or rerun: the damaged files are now in quarantine/ and left out")
    if base_rows is not None and base_rows.empty:
        held = history.results["machine_desc"].drop_duplicates().tolist()[:3]
        raise GateError(f"--history {where}: no earlier run of these cases on this machine ({machine}) among "
                        f"{history.runs['run_id'].nunique()} runs (machines: {'; '.join(held) or 'none'}); the "
                        "baseline is gone: restore the history, or drop --require-history to start a new one")


def gate_session(current: pd.DataFrame, outcomes: pd.DataFrame, history_paths: list[str], own_files: list[Path],
                 settings: GateSettings, machine: str) -> Verdict:
    """``--bench-gate``: this session's rows against the history folders or files it names.

    pytest-benchmark writes ``--benchmark-json`` before the gate runs; when
    that file lies in the history, it is this session and not its baseline.
    """
    history = load_history(history_paths)
    own = {path.resolve() for path in own_files}
    files = history.results["file"].map(lambda f: Path(f).resolve())
    this_run = set(history.results.loc[files.isin(own), "run_id"])
    baseline = select_baseline(history, current, this_run, settings.window)
    return judge(current, outcomes, baseline, settings, label="this session",
                 baseline_label=f"last {baseline['run_id'].nunique()} runs in {', '.join(history_paths)}",
                 machine=machine, history=history.results[~history.results["run_id"].isin(this_run)])
