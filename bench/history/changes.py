"""Change-point stage: where did each case's performance step, and between which runs?

The gate asks "is tonight slower than the recent past?"; a regression usually
shows up in history as a step that persists, and the useful answer is "it
began between run a (commit x) and run b (commit y)". Each case's series (per
machine; the gate's statistic per run, the min of its rounds by default) goes
through asv's step detection (``asv.step_detect``: a piecewise-constant fit by
the Potts model with an L1 cost and an automatically chosen penalty). Each
step then gets a p-value from a Mann-Whitney U test of the runs on either side
of it (up to the neighbouring steps): rank-based, so a burst of interference
that makes a few runs 50% slower weighs no more than a run 1% slower. Steps
smaller than ``min_change`` or not significant are dropped, weakest first, and
the neighbours are tested again.

Chosen over Apache Otava and MongoDB's signal-processing-algorithms on the same
histories (``docs/studies/change_points.py``; docs/method.md#change-points): with this
machine's measured noise it found steps as often (20 of 20 at 3, 5 and 10% on
a 0.9%-noise case, 18 of 20 at 5% on a 3.8% one), gave no false points in 120
A/A histories where Otava's t-test gave 22 and the permutation E-Divisive of
Otava and signal-processing-algorithms 7 and 4, takes 0.07 s on 1,000 runs where the permutation test takes
11 s, and it installs without pinning numpy (Otava 0.8 pins numpy 2.2.0 and
brings cloud SDKs; signal-processing-algorithms needs numpy < 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import ChangesError
from bench.history.gate import case_statistic
from bench.history.load import is_missing, tvm_of

if TYPE_CHECKING:
    import pandas as pd

#: A step is kept when the Mann-Whitney U test of the runs on either side gives a p-value below this.
DEFAULT_MAX_PVALUE = 0.01
#: Steps smaller than this are not reported, however significant: a 1% shift is rarely a finding.
DEFAULT_MIN_CHANGE = 0.02
#: Fewer runs than this cannot show a step followed by a level.
MIN_RUNS = 6


@dataclass(frozen=True)
class Shift:
    """One step in one series: ``index`` is the first value at the new level."""

    index: int
    #: Medians of the runs between the neighbouring steps, before and after this one.
    before: float
    after: float
    pvalue: float

    @property
    def change(self) -> float:
        return self.after / self.before - 1.0


def _shifts(y: np.ndarray, cuts: list[int]) -> list[Shift]:
    from scipy.stats import mannwhitneyu

    bounds = [0, *cuts, y.size]
    out = []
    for k, cut in enumerate(cuts):
        left, right = y[bounds[k]:cut], y[cut:bounds[k + 2]]
        pvalue = float(mannwhitneyu(left, right, alternative="two-sided").pvalue)
        out.append(Shift(index=cut, before=float(np.median(left)), after=float(np.median(right)), pvalue=pvalue))
    return out


def detect(values: Sequence[float] | np.ndarray, *, max_pvalue: float = DEFAULT_MAX_PVALUE,
           min_change: float = DEFAULT_MIN_CHANGE) -> list[Shift]:
    """Persistent steps in ``values`` (positive timings, in time order)."""
    from asv.step_detect import detect_steps

    if not 0 < max_pvalue < 1:
        raise ChangesError(f"max p-value must be between 0 and 1 (got {max_pvalue:g})")
    if not 0 <= min_change < 10:
        raise ChangesError(f"min change out of range (got {min_change:g})")
    y = np.asarray(values, dtype=float)
    if y.size < MIN_RUNS:
        return []
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ChangesError("change points need positive, finite timings")
    cuts = [int(left) for left, *_ in detect_steps(y.tolist())][1:]
    while True:
        shifts = _shifts(y, cuts)
        weak = [s for s in shifts if s.pvalue >= max_pvalue or abs(s.change) < min_change]
        if not weak:
            return shifts
        worst = max(weak, key=lambda s: (s.pvalue, -abs(s.change)))
        cuts.remove(worst.index)


@dataclass(frozen=True)
class ChangePoint:
    """A step in one case's history, located between two runs."""

    case: str
    machine: str
    machine_desc: str
    variant: str | None
    statistic: str
    #: The last run at the old level and the first at the new one: the change happened between them.
    run_before: str
    run_after: str
    time_before: datetime
    time_after: datetime
    commit_before: str | None
    commit_after: str | None
    before_s: float
    after_s: float
    change: float
    pvalue: float
    #: Runs at the new level (up to the next change point or the latest run).
    runs_after: int
    #: The TVM of the last run at the old level and of the first at the new one (``tvm_label``).
    tvm_before: str = "?"
    tvm_after: str = "?"

    @property
    def tvm_changed(self) -> bool:
        return self.tvm_before != self.tvm_after

    @property
    def tvm_range(self) -> str:
        """``0.26.0 -> 0.27.0`` where the TVM changed at the step, else the one TVM on both sides."""
        return f"{self.tvm_before} -> {self.tvm_after}" if self.tvm_changed else self.tvm_after

    @property
    def direction(self) -> str:
        return "slower" if self.change > 0 else "faster"

    @property
    def commit_range(self) -> str:
        """``a..b`` as git understands it: the commits after ``a`` up to ``b``."""
        if not self.commit_before and not self.commit_after:
            return "commits not recorded"
        return f"{_short(self.commit_before)}..{_short(self.commit_after)}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(time_before=self.time_before.isoformat(), time_after=self.time_after.isoformat(),
                   direction=self.direction, commit_range=self.commit_range, confidence=1.0 - self.pvalue,
                   tvm_changed=self.tvm_changed, tvm_range=self.tvm_range)
        return out


def _short(commit: str | None) -> str:
    return str(commit)[:12] if commit else "?"


def find_changes(results: pd.DataFrame, *, statistic: str | None = None, max_pvalue: float = DEFAULT_MAX_PVALUE,
                 min_change: float = DEFAULT_MIN_CHANGE,
                 since: datetime | None = None) -> list[ChangePoint]:
    """Change points of every (machine, case) series in a history's results frame.

    Trend lines never mix machines, so neither do change points. ``since``
    keeps the points whose new level began at or after that time; the whole
    history is still used to find them.
    """
    if statistic is not None and statistic not in ("min", "median"):
        raise ChangesError(f"statistic must be min or median (got {statistic!r})")
    out: list[ChangePoint] = []
    if results.empty:
        return out
    for (machine, case), rows in results.groupby(["machine", "case"], sort=True):
        rows = rows.sort_values(["run_time", "run_id"], kind="stable")
        stat = statistic or case_statistic(rows.iloc[-1])  # the suite's, as the latest run recorded it
        rows = rows[[not is_missing(v) and v > 0 for v in rows[stat]]]
        shifts = detect(rows[stat].to_numpy(dtype=float), max_pvalue=max_pvalue, min_change=min_change)
        ends = [s.index for s in shifts[1:]] + [len(rows)] if shifts else []
        for shift, end in zip(shifts, ends, strict=True):
            old, new = rows.iloc[shift.index - 1], rows.iloc[shift.index]
            if since is not None and new["run_time"] < since:
                continue
            out.append(ChangePoint(
                case=str(case), machine=str(machine), machine_desc=str(new["machine_desc"]),
                variant=None if is_missing(new["variant"]) else str(new["variant"]), statistic=stat,
                run_before=str(old["run_id"]), run_after=str(new["run_id"]),
                time_before=old["run_time"].to_pydatetime(), time_after=new["run_time"].to_pydatetime(),
                commit_before=None if is_missing(old["commit"]) else str(old["commit"]),
                commit_after=None if is_missing(new["commit"]) else str(new["commit"]),
                before_s=shift.before, after_s=shift.after, change=shift.change, pvalue=shift.pvalue,
                runs_after=end - shift.index, tvm_before=tvm_of(old), tvm_after=tvm_of(new)))
    out.sort(key=lambda c: (c.time_after, c.case))
    return out


def render_changes(points: list[ChangePoint], *, runs: int, cases: int) -> str:
    """The terminal table: one line per step, newest last."""
    if not points:
        return f"no change points in {cases} case(s) over {runs} run(s)"
    lines = [f"{len(points)} change point(s) in {cases} case(s) over {runs} run(s):",
             f"  {'case':44} {'change':>8} {'before ms':>10} {'after ms':>10} {'p':>8}  {'began between runs':40} "
             f"{'commits':26} TVM"]
    for p in points:
        lines.append(f"  {p.case:44} {p.change:+8.1%} {p.before_s * 1e3:10.4g} {p.after_s * 1e3:10.4g} "
                     f"{p.pvalue:8.1g}  {p.run_before + ' .. ' + p.run_after:40} {p.commit_range:26} {p.tvm_range}")
    return "\n".join(lines)
