"""Confirm stage of the gate: re-measure the cases that regressed before failing the run.

Interference on a shared machine comes in bursts of seconds to minutes that
can cover every round of one case, and a single run cannot tell such a burst
from a real slowdown; a real slowdown is there again on every re-measurement.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import GateError
from bench.history.gate import GateSettings, Verdict, decide

if TYPE_CHECKING:
    import pandas as pd

#: Re-measures pytest node ids: (node ids, attempt number) -> the benchmark JSON it wrote.
Rerun = Callable[[list[str], int], Path]


def confirm(verdict: Verdict, cur_rows: pd.DataFrame, cur_out: pd.DataFrame, base_rows: pd.DataFrame,
            rerun: Rerun, times: int, settings: GateSettings | None = None) -> None:
    """Keep only the regressions that persist when their cases are measured ``times`` more times.

    The re-measurements are judged as repeats of the current run (the median
    of their statistics) against the same baseline and alpha split. A case
    that no longer regresses becomes ``unconfirmed``: reported, not failing.
    """
    import pandas as pd

    from bench.errors import HistoryError
    from bench.history.load import load_history

    flagged = {c.case: c for c in verdict.cases if c.status == "regression"}
    if not flagged or times <= 0:
        return
    nodes = list(dict.fromkeys(cur_rows.loc[cur_rows["case"].isin(flagged), "fullname"].dropna()))
    if not nodes:
        verdict.notes.append("cannot re-measure: the run does not record pytest node ids; the regressions stand")
        return
    extra: list[pd.DataFrame] = []
    for attempt in range(1, times + 1):
        try:
            path = rerun(nodes, attempt)
            rows = load_history([path], confirmations=True).results
        except (OSError, HistoryError, GateError) as err:
            verdict.notes.append(f"re-measurement {attempt} of {times} failed ({err}); the regressions stand")
            return
        extra.append(rows[rows["case"].isin(flagged)])
    unmeasured = {case for case in flagged if any(case not in set(rows["case"]) for rows in extra)}
    joint = decide(pd.concat([cur_rows, *extra], ignore_index=True), cur_out, base_rows, settings)
    for again in joint.cases:
        first = flagged.get(again.case)
        if first is None:
            continue
        if again.case in unmeasured:
            first.reason += "; the re-measurement did not measure it (see its log), so the regression stands"
            continue
        if again.status == "regression":
            first.reason = f"{again.reason}; confirmed by {times} re-measurements"
        elif again.failing:
            first.status, first.reason = again.status, f"{again.reason} (in a re-measurement)"
        else:
            first.status, first.reason = "unconfirmed", f"{first.reason} in this run, but re-measured {times}x: " \
                                                        f"{again.reason}"
        first.ratio, first.ci_low, first.ci_high = again.ratio, again.ci_low, again.ci_high
        first.current_s = again.current_s
    verdict.notes.append(f"re-measured {len(flagged)} flagged case(s) {times} time(s): "
                         f"{sum(c.status == 'regression' for c in flagged.values())} confirmed")


def pytest_rerun(current: Path, run_id: str, out_dir: Path | None, pytest_args: str = "",
                 log: Callable[[str], None] | None = None, env: dict[str, str] | None = None) -> Rerun:
    """A Rerun that runs pytest on the node ids in this folder, as the suite run did.

    Each attempt writes ``<out_dir>/<current stem>.confirm-<n>.json`` (next to
    ``current`` by default), stamped with ``--bench-confirms`` so that history
    and reports leave it out.
    """
    folder = out_dir or current.parent

    def rerun(nodes: list[str], attempt: int) -> Path:
        out = folder / f"{current.stem}.confirm-{attempt}.json"
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pytest", *nodes, "-q", "-p", "no:cacheprovider", "--benchmark-json", str(out),
               "--bench-confirms", run_id, *shlex.split(pytest_args)]
        if log is not None:
            log(f"gate: re-measuring {len(nodes)} case(s), attempt {attempt}: {shlex.join(cmd[2:])}")
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
        if not out.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise GateError(f"pytest exited {proc.returncode} without writing {out}: {tail[0]}")
        return out

    return rerun
