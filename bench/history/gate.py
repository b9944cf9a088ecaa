"""Gate stage: does the current run regress against its baseline on this machine?

Location of a run: the minimum of its rounds by default (suite
``gate.statistic``; ``median`` is the alternative). Interference on a shared
machine only adds time and comes in bursts of seconds to minutes that slow
every round they cover by 10-50%, while an undisturbed case varies by ~1%: a
burst over most rounds moves the median, the minimum only if it covers all
(Chen & Revels 2016, "Robust benchmarking in noisy environments"). A real
slowdown of the code moves both.

Statistical method: a hierarchical (two-level) bootstrap of the ratio of the
current statistic to the baseline's (Efron & Tibshirani 1993, ch. 13;
Davison & Hinkley 1997, sec. 3.8 for resampling at two levels). The baseline
statistic is the median of the baseline runs' statistics; each bootstrap
replicate resamples runs, then the rounds within each run. The current run is
a single run, so its rounds alone cannot show run-to-run noise (the dominant
noise on a shared machine); each replicate therefore also divides the current
statistic by a run effect drawn from the predictive Student-t distribution of
one new run, scaled by the spread of the baseline runs' log-statistics (the
textbook prediction interval). Why a bootstrap and not Mann-Whitney U: MWU on
pooled rounds treats rounds from different runs as exchangeable, so any
run-to-run shift becomes "significant" and the gate cries wolf on an
unchanged build. A burst can still cover a whole case in one run; the confirm
stage (bench/history/confirm.py) re-measures before a regression fails.

A case the run timed against its baseline build (``vs_baseline``, bench.stages.paired:
both builds interleaved in one process, so the host's slow periods cancel) is
decided by that paired interval instead, with the same rule, and needs no
history; the verdict's ``basis`` says which decided.

Decision for each case, with threshold t (suite ``gate.threshold``, default
5%) and a (1 - alpha) confidence interval [lo, hi] of the ratio, alpha split
across the run's cases (Bonferroni; a paired interval carries its own
``timing.paired.alpha``):

* regression:  lo > 1 (significant) and hi >= 1 + t (the data cannot show the
  slowdown is below the threshold) and ratio >= 1 + t/2;
* improvement: the mirror image;
* always failures: a top-k mismatch, an errored case, a case measured in the
  baseline that is missing from the current run, and (if the suite sets
  ``gate.min_speedup``) a tuned case slower than that over untuned.
* reported, not failing: cases without a baseline on this machine, cases with
  fewer than ``MIN_ROUNDS`` rounds, skipped cases, regressions that did not
  persist when re-measured (``unconfirmed``), and changes of the ONNX
  Runtime peer (``reference-slower``/``-faster``: a control that TVM changes
  cannot move, so its shifts are the machine's or ORT's; suites can set
  ``gate.ort: fail`` to gate it anyway).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from bench.errors import GateError
from bench.history.load import is_missing, tvm_of
from bench.stages.paired import PairedEstimate
from bench.stages.paired import decide as decide_pairs
from bench.stages.paired import estimate as paired_estimate
from bench.stages.record import library_bytes, planned, stage_peaks
from bench.suite.case import ORT, TUNED
from bench.suite.schema import GateSpec

if TYPE_CHECKING:
    import pandas as pd

#: Stamped into the JSON verdict.
VERDICT_SCHEMA = 2
MIN_ROUNDS = 3
#: False-alarm rate per run, split across its cases (``--alpha``).
DEFAULT_ALPHA = 0.01
#: Runs in the rolling baseline (``--window``, ``--bench-gate-window``).
DEFAULT_WINDOW = 20
#: A case's threshold and statistic when its record has none: the suite schema's defaults.
DEFAULT_THRESHOLD: float = GateSpec.model_fields["threshold"].default
DEFAULT_MEMORY_THRESHOLD: float = GateSpec.model_fields["memory_threshold"].default
DEFAULT_STATISTIC: str = GateSpec.model_fields["statistic"].default
BOOTSTRAP = 4000
#: A run whose measured peak GFLOP/s is this far (either way) from its baseline runs' is likely another kind of
#: machine behind the same CPU identity: Zen 4 and Zen 5 VMs differ by about 1.5x, one VM's probes by under 10%.
PEAK_MISMATCH = 0.15

#: Per-run location statistics the gate can compare (suite ``gate.statistic``).
STATISTICS: dict[str, Callable[..., Any]] = {"min": np.min, "median": np.median}

Status = Literal[
    # failing
    "regression", "wrong-answer", "errored", "missing", "not-faster", "memory-grew",
    # reported
    "improvement", "unchanged", "new", "skipped", "too-few-rounds", "reference-slower", "reference-faster",
    "unconfirmed",
]
STATUSES: tuple[Status, ...] = get_args(Status)
FAILING: frozenset[Status] = frozenset(STATUSES[:6])
Statistic = Literal["min", "median"]


@dataclass(frozen=True)
class GateSettings:
    """How the gate decides. ``threshold`` and ``statistic`` of None mean each case's suite settings."""

    #: False-alarm rate per run, split across its cases.
    alpha: float = DEFAULT_ALPHA
    threshold: float | None = None
    statistic: Statistic | None = None
    #: Runs in the rolling baseline.
    window: int = DEFAULT_WINDOW
    #: Seeds the bootstrap, so a verdict can be reproduced.
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise GateError(f"alpha must be between 0 and 1 (got {self.alpha:g})")
        if self.window < 1:
            raise GateError(f"the baseline window must hold at least 1 run (got {self.window})")
        if self.threshold is not None and not 0 < self.threshold < 10:
            raise GateError(f"threshold out of range (got {self.threshold:g})")
        if self.statistic is not None and self.statistic not in STATISTICS:
            raise GateError(f"statistic must be one of {', '.join(STATISTICS)} (got {self.statistic!r})")


@dataclass(frozen=True)
class Interval:
    ratio: float
    low: float
    high: float


def _run_samples(row: pd.Series) -> np.ndarray:
    samples = row.get("samples_s")
    if isinstance(samples, list) and samples:
        return np.asarray(samples, dtype=float)
    return np.asarray([row["median"]], dtype=float)


def run_spread(run_values: np.ndarray) -> float:
    """Run-to-run spread of a case's per-run statistics, on the log scale: the larger of the SD and
    1.4826 * MAD, so a few outliers cannot make it optimistic."""
    logs = np.log(run_values / float(np.median(run_values)))
    mad = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    return max(float(np.std(logs, ddof=1)), mad)


def _current_var(repeats: int) -> float:
    """Variance factor of the current statistic's run effect: one run, or the median of ``repeats`` runs
    (pi/(2k), its large-k value, conservative for small k: for k=2 the median is the mean, variance 1/2)."""
    return 1.0 if repeats == 1 else math.pi / (2 * repeats)


def smallest_visible(run_values: np.ndarray, alpha: float, repeats: int = 1) -> float | None:
    """The smallest slowdown this case's gate can flag, from its baseline runs' spread (None below 3 runs).

    A slowdown is flagged when the interval's lower end passes 1; even
    measured without error, a single run's ratio carries the predictive
    run effect, so anything below exp(t * spread * sqrt(1/k + 1/m)) - 1 (two-
    sided, alpha) cannot be told from the machine's run-to-run noise. It is
    what a case's history can resolve on this machine, whatever threshold the
    suite asks for.
    """
    from scipy import stats

    m = len(run_values)
    if m < 3:
        return None
    q = float(stats.t.ppf(1 - alpha / 2, m - 1))
    return math.exp(q * run_spread(run_values) * math.sqrt(_current_var(repeats) + 1 / m)) - 1


def ratio_interval(current: np.ndarray | list[np.ndarray], baseline_runs: list[np.ndarray], alpha: float,
                   rng: np.random.Generator, n_boot: int = BOOTSTRAP, statistic: str = DEFAULT_STATISTIC) -> Interval:
    """Hierarchical bootstrap CI of median(current run statistics) / median(baseline run statistics).

    ``current`` is one run's rounds, or a list of several runs of the same
    build (repeats), whose run-to-run noise then partly averages out.
    ``statistic`` is each run's location, the rounds' ``min`` or ``median``.
    """
    stat = STATISTICS[statistic]
    current_runs = [current] if isinstance(current, np.ndarray) else list(current)
    run_values = np.array([stat(r) for r in baseline_runs])
    base = float(np.median(run_values))
    ratio = float(np.median([stat(r) for r in current_runs])) / base

    def boot_stat(samples: np.ndarray, n: int) -> np.ndarray:
        idx = rng.integers(0, samples.size, size=(n, samples.size))
        out: np.ndarray = stat(samples[idx], axis=1)
        return out

    cur = np.median(np.stack([boot_stat(r, n_boot) for r in current_runs], axis=1), axis=1)
    k = len(current_runs)
    m = len(baseline_runs)
    per_run = np.stack([boot_stat(r, n_boot) for r in baseline_runs], axis=1)  # (n_boot, m)
    pick = rng.integers(0, m, size=(n_boot, m))
    base_boot = np.median(np.take_along_axis(per_run, pick, axis=1), axis=1)
    if m >= 3:
        # Run-to-run noise: the current run is one new draw from the runs' distribution, so its
        # run effect follows the predictive Student-t, s * sqrt(1 + 1/m) * T(m-1), where s is
        # the spread of the baseline runs' log-statistics (the larger of the SD and 1.4826 * MAD,
        # so a few outliers cannot make it optimistic). For k repeats the current term is the
        # variance of a median of k draws (_current_var).
        spread = run_spread(run_values)
        cur = cur / np.exp(spread * np.sqrt(_current_var(k) + 1 / m) * rng.standard_t(m - 1, size=n_boot))
    ratios = cur / base_boot
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return Interval(ratio, float(low), float(high))


@dataclass
class CaseVerdict:
    case: str
    status: Status
    reason: str
    variant: str | None = None
    statistic: str | None = None  # the run location compared: min or median of the rounds
    current_s: float | None = None
    baseline_s: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    baseline_runs: int = 0
    #: The smallest slowdown the gate could flag here, from the baseline's run-to-run spread
    #: (smallest_visible); above ``threshold`` the case cannot show a slowdown of its threshold.
    visible: float | None = None
    #: The step in this case's history that the current run belongs to (bench.history.changes), when one is found.
    change_point: dict[str, Any] | None = None
    #: What decided the case: "paired" (timed against its baseline build in one process, bench.stages.paired) or
    #: "history" (this run's rounds against earlier runs'); None where neither applied.
    basis: str | None = None
    #: With a paired basis: the pairs timed.
    pairs: int | None = None
    #: ``before -> now`` when the baseline runs ran another TVM than this run: the verdict then measures the
    #: TVM change too, not only the harness's or the model's.
    tvm_change: str | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING


@dataclass
class Verdict:
    current: str
    machine: str
    baseline: str
    alpha: float
    cases: list[CaseVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The TVMs this run's TVM items ran on (``tvm_label``), so every verdict says which TVM was under test.
    tvms: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.failing for c in self.cases)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cases:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_json(self) -> str:
        return json.dumps({"schema": VERDICT_SCHEMA, "passed": not self.failed, "exit_code": self.exit_code,
                           "current": self.current, "machine": self.machine, "baseline": self.baseline,
                           "alpha": self.alpha, "counts": self.counts(), "notes": self.notes, "tvms": self.tvms,
                           "cases": [asdict(c) for c in self.cases]}, indent=1, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _threshold(row: pd.Series, default: float) -> float:
    gate = row.get("gate")
    if isinstance(gate, dict) and gate.get("threshold") is not None:
        return float(gate["threshold"])
    return default


def case_statistic(row: pd.Series) -> str:
    """The statistic a case is judged on: its suite's ``gate.statistic`` as recorded, else the default."""
    gate = row.get("gate")
    if isinstance(gate, dict) and gate.get("statistic") in STATISTICS:
        return str(gate["statistic"])
    return DEFAULT_STATISTIC


def decide(current: pd.DataFrame, current_outcomes: pd.DataFrame, baseline: pd.DataFrame,
           settings: GateSettings | None = None, *, label: str = "current", baseline_label: str = "baseline",
           machine: str = "") -> Verdict:
    """Compare one run (``current``) with baseline rows from the same machine.

    ``baseline`` holds one or more runs (column ``run_id``); the settings'
    ``threshold`` and ``statistic`` override the per-case ones recorded by
    the suite. Reading files and choosing the baseline is bench.history.judge's job.
    """
    settings = settings or GateSettings()
    rng = np.random.default_rng(settings.seed)
    verdict = Verdict(label, machine, baseline_label, settings.alpha)
    if not current.empty:
        verdict.tvms = sorted({tvm_of(r) for _, r in current.iterrows() if r.get("variant") != ORT} - {"?"})
    n_cases = max(1, current["case"].nunique() if not current.empty else 0)
    case_alpha = settings.alpha / n_cases
    base_by_case = {case: rows for case, rows in baseline.groupby("case")} if not baseline.empty else {}
    errored = set()
    measured = set(current["case"])
    if not current_outcomes.empty:
        for _, o in current_outcomes.iterrows():
            if o["outcome"] == "failed" and o["case"] not in measured:
                errored.add(o["case"])
                verdict.cases.append(CaseVerdict(o["case"], "errored", _first_line(o["message"]),
                                                 variant=o.get("variant")))
            elif o["outcome"] == "skipped":
                verdict.cases.append(CaseVerdict(o["case"], "skipped", _first_line(o["message"]),
                                                 variant=o.get("variant")))
    for case, rows in current.groupby("case", sort=False):
        row = rows.iloc[-1]
        t = settings.threshold if settings.threshold is not None else _threshold(row, DEFAULT_THRESHOLD)
        stat_name = settings.statistic or case_statistic(row)
        stat = STATISTICS[stat_name]
        cur_runs = [_run_samples(r) for _, r in rows.iterrows()]
        v = CaseVerdict(case, "unchanged", "", variant=row["variant"], statistic=stat_name,
                        current_s=float(np.median([stat(r) for r in cur_runs])), threshold=t)
        verdict.cases.append(v)
        bad_checks = [r for _, r in rows.iterrows() if not is_missing(r.get("check_ok")) and not bool(r["check_ok"])]
        if bad_checks:
            failed = ", ".join(bad_checks[0].get("check_failed") or []) or "reference"
            v.status, v.reason = "wrong-answer", f"top-k check failed against {failed}"
            continue
        gate = row.get("gate") if isinstance(row.get("gate"), dict) else {}
        min_speedup = gate.get("min_speedup")
        speedup = row.get("speedup_median")
        if (row["variant"] == TUNED and min_speedup is not None and speedup is not None
                and not is_missing(speedup) and speedup < min_speedup):
            v.status, v.reason = "not-faster", f"tuned is {speedup:.2f}x untuned; the suite requires {min_speedup:g}x"
            continue
        paired = _paired(rows)
        if paired is not None and row["variant"] != ORT:
            _decide_paired(v, paired, t, case_alpha)
            continue
        history = base_by_case.get(case)
        if history is None or history.empty:
            v.status, v.reason = "new", "no baseline for this case on this machine"
            continue
        _decide_history(v, cur_runs, history, t, case_alpha, rng)
        if (row["variant"] == ORT and gate.get("ort", "report") == "report"
                and v.status in ("regression", "improvement")):
            v.status = "reference-slower" if v.status == "regression" else "reference-faster"
            v.reason += "; ONNX Runtime is the control, not the code under test: the machine or ORT changed"
    tuned_now, tuning = bool(tuning_runs(current)), tuning_runs(baseline)
    for v in verdict.cases:
        history = base_by_case.get(v.case)
        if v.case in measured and v.variant != ORT and history is not None and not history.empty:
            _decide_memory(v, current.loc[current["case"] == v.case].iloc[-1], history, tuned_now, tuning)
    _mark_tvm_changes(verdict, current, base_by_case)
    unseen = [c for c in verdict.cases if c.visible is not None and c.threshold is not None and c.visible > c.threshold
             and c.variant != ORT]
    if unseen:
        verdict.notes.append(
            f"{len(unseen)} case(s) cannot show a slowdown of their threshold on this machine: their baseline runs "
            "spread so much that the smallest visible slowdown is " + ", ".join(
                f"{c.case} {c.visible:+.1%}" for c in sorted(unseen, key=lambda c: -(c.visible or 0)))
            + " (docs/method.md#what-each-case-can-see)")
    mismatch = _peak_mismatch(current, baseline)
    if mismatch is not None:
        verdict.notes.append(mismatch)
    present = set(current["case"]) | {c.case for c in verdict.cases}
    if not baseline.empty:
        last_run = baseline["run_id"].iloc[-1]
        for case in sorted(set(baseline.loc[baseline["run_id"] == last_run, "case"]) - present):
            verdict.cases.append(CaseVerdict(case, "missing", "measured in the baseline, absent from this run"))
    return verdict



def _mark_tvm_changes(verdict: Verdict, current: pd.DataFrame, base_by_case: dict[Any, pd.DataFrame]) -> None:
    """Say so where a case's baseline runs ran another TVM than this run (docs/guide.md#the-tvm-under-test)."""
    changed: dict[str, list[str]] = {}
    for v in verdict.cases:
        history = base_by_case.get(v.case)
        rows = current.loc[current["case"] == v.case] if not current.empty else current
        if history is None or history.empty or rows.empty or v.variant == ORT:  # ONNX Runtime runs no TVM
            continue
        now = tvm_of(rows.iloc[-1])
        before = list(dict.fromkeys(tvm_of(r) for _, r in history.iterrows()))
        if before != [now]:
            v.tvm_change = f"{', '.join(before)} -> {now}"
            v.reason = (v.reason + "; " if v.reason else "") + f"across a TVM change ({v.tvm_change})"
            changed.setdefault(v.tvm_change, []).append(v.case)
    for change, cases in changed.items():
        verdict.notes.append(f"{len(cases)} case(s) are compared across a TVM change ({change}): their verdicts "
                             "measure the new TVM, not only this run's changes")


def _peak_mismatch(current: pd.DataFrame, baseline: pd.DataFrame) -> str | None:
    """A note when this run's measured peak is far from its baseline runs': the machine's identity (CPU brand,
    family, model, stepping, cores) matched, yet its speed did not, so history verdicts compare unlike machines."""
    if "peak_gflops" not in current or "peak_gflops" not in baseline or baseline.empty:
        return None
    now = current["peak_gflops"].dropna()
    before = baseline.groupby("run_id")["peak_gflops"].median().dropna()
    if now.empty or before.empty:
        return None
    ratio = float(now.median()) / float(before.median())
    if abs(ratio - 1) <= PEAK_MISMATCH:
        return None
    return (f"this run's measured peak ({float(now.median()):.0f} GFLOP/s) is {ratio - 1:+.0%} off its baseline runs' "
            f"({float(before.median()):.0f}): the same CPU identity on another kind of machine? Verdicts on history "
            "compare unlike machines here; paired verdicts (against a baseline build) are unaffected")


def _decide_history(v: CaseVerdict, cur_runs: list[np.ndarray], history: pd.DataFrame, t: float, case_alpha: float,
                    rng: np.random.Generator) -> None:
    """The case against its baseline runs on this machine: the hierarchical bootstrap interval of the ratio."""
    stat_name = v.statistic or DEFAULT_STATISTIC
    stat = STATISTICS[stat_name]
    v.basis = "history"
    runs = [_run_samples(r) for _, r in history.iterrows()]
    v.baseline_runs = len(runs)
    fewest = min(r.size for r in cur_runs)
    if fewest < MIN_ROUNDS:
        v.status, v.reason = "too-few-rounds", f"{fewest} rounds; at least {MIN_ROUNDS} are needed to decide"
        return
    ci = ratio_interval(cur_runs, runs, case_alpha, rng, statistic=stat_name)
    base_values = np.array([stat(r) for r in runs])
    v.baseline_s = float(np.median(base_values))
    v.ratio, v.ci_low, v.ci_high = ci.ratio, ci.low, ci.high
    v.visible = smallest_visible(base_values, case_alpha, len(cur_runs))
    blind = f"; cannot see under {v.visible:+.1%} here" if v.visible is not None and v.visible > t else ""
    ci_text = (f"{ci.ratio - 1:+.1%} in {stat_name} (CI {ci.low - 1:+.1%} .. {ci.high - 1:+.1%}, "
               f"threshold {t:.0%}{blind})")
    if ci.low > 1 and ci.high >= 1 + t and ci.ratio >= 1 + t / 2:
        v.status, v.reason = "regression", f"slower by {ci_text}"
    elif ci.high < 1 and ci.low <= 1 - t and ci.ratio <= 1 - t / 2:
        v.status, v.reason = "improvement", f"faster by {ci_text}"
    else:
        v.reason = f"change {ci_text}"


def _paired(rows: pd.DataFrame) -> dict[str, Any] | None:
    """The latest run's timing against its baseline build, when it has one (bench.run.session._vs_baseline)."""
    value = rows.iloc[-1].get("vs_baseline")
    return value if isinstance(value, dict) and value.get("ratio") is not None else None


def _decide_paired(v: CaseVerdict, paired: dict[str, Any], t: float, alpha: float) -> None:
    """The case against its baseline build, timed in the same process: the same rule on the paired interval.

    The interval is computed again from the recorded pairs at the case's share of the run's ``alpha``, as the
    history path's is (the worker stopped on its own ``timing.paired.alpha``). It needs no history from this
    machine and cannot see a slowdown that hits both builds alike (the machine, the runtime library): the ONNX
    Runtime peer and the history still watch for that."""
    base = paired.get("baseline") or {}
    v.basis, v.pairs = "paired", int(paired.get("pairs") or 0)
    v.ratio, v.ci_low, v.ci_high = float(paired["ratio"]), float(paired["low"]), float(paired["high"])
    cur, ref = paired.get("current_s"), paired.get("baseline_s")
    if isinstance(cur, list) and isinstance(ref, list) and len(cur) == len(ref) >= 2:
        est = paired_estimate([math.log(c / b) for c, b in zip(cur, ref, strict=True)], alpha)
        v.ratio, v.ci_low, v.ci_high = est.ratio, est.low, est.high
    against = f"its baseline build (run {base.get('run_id') or '?'}, commit {str(base.get('commit') or '?')[:10]})"
    if paired.get("identical"):
        v.visible = 0.0
        v.reason = f"byte-identical to {against}: cannot be slower"
        return
    est = PairedEstimate(v.ratio, v.ci_low, v.ci_high, v.pairs)
    v.visible = est.visible
    text = (f"{v.ratio - 1:+.1%} against {against} (CI {v.ci_low - 1:+.1%} .. {v.ci_high - 1:+.1%}, {v.pairs} pairs, "
            f"threshold {t:.0%})")
    decision = decide_pairs(est, t)
    if decision == "slower":
        v.status, v.reason = "regression", f"slower by {text}"
    elif decision == "faster":
        v.status, v.reason = "improvement", f"faster by {text}"
    else:
        v.reason = f"change {text}"


#: Exact memory figures the gate compares with the latest baseline run's, TVM items only (ONNX Runtime is the
#: control), and whether a tuned build's depend on its tuning records: all the build's do (its schedules rewrite
#: weight layouts, which moves the constants and the plan, and make the code and the kernels' workspaces).
EXACT_MEMORY: dict[str, tuple[Callable[[pd.Series], Any], bool]] = {
    "weights": (lambda row: row.get("weight_bytes"), False),
    "planned memory": (lambda row: planned(row, "planned_bytes"), True),
    "constants": (lambda row: planned(row, "constant_bytes"), True),
    "kernel workspace": (lambda row: planned(row, "workspace_bytes"), True),
    "library": (library_bytes, True),
}
#: The sampled figures: each stage's peak resident memory of the worker tree (bench.run.worker.StageMemory).
DEFAULT_PEAK_THRESHOLD: float = GateSpec.model_fields["peak_memory_threshold"].default


def _same_schedules(row: pd.Series, base: pd.Series) -> bool:
    """Whether a tuned build's kernels come from the records the baseline's came from: the same tuning settings,
    reused from the cache (a run that tuned again has other schedules, so other code and workspaces)."""
    if row.get("variant") != TUNED:
        return True
    return bool(row.get("tuning_cached")) and row.get("tuning_key") == base.get("tuning_key")


def tuning_runs(rows: pd.DataFrame) -> set[Any]:
    """The runs (``run_id``) in which some item tuned rather than reused its records."""
    if rows.empty or "tuning_cached" not in rows:
        return set()
    tuned = rows[(rows["variant"] == TUNED) & rows["tuning_cached"].map(lambda v: v is False or v == 0)]
    if "run_id" not in tuned:  # the session's own rows, gated as it ends: one run, not yet named
        return {None} if len(tuned) else set()
    return set(tuned["run_id"])


def _grown_peaks(row: pd.Series, history: pd.DataFrame, limit: float, tuned_now: bool,
                 tuning: set[Any]) -> list[str]:
    """Stages whose sampled peak grew past ``limit`` over the median of the baseline runs' peaks in that stage.

    A run in which an item tuned is compared only with runs that also tuned, and one that tuned nothing only
    with those that did not: tuning's processes more than double the tune stage's peak, and what they leave in
    the worker raises every later item's stages of the run (docs/studies/README.md#memory-figures)."""
    runs = [stage_peaks(r) for _, r in history.iterrows() if (r.get("run_id") in tuning) == tuned_now]
    grown = []
    for stage, now in stage_peaks(row).items():
        before = [p for peaks in runs if (p := peaks.get(stage)) is not None]
        if not before:
            continue
        ref = float(np.median(before))
        if ref and now > ref * (1 + limit):
            grown.append(f"{stage} stage's peak {ref:,.0f} -> {now:,.0f} MiB ({now / ref - 1:+.1%} over the median "
                         f"of {len(before)} run(s); sampled, gate.peak_memory_threshold {limit:.0%})")
    return grown


def _decide_memory(v: CaseVerdict, row: pd.Series, history: pd.DataFrame, tuned_now: bool,
                   tuning: set[Any]) -> None:
    """Fail a case whose exact memory figures grew past ``gate.memory_threshold`` over the latest baseline
    run's, or whose sampled stage peaks grew past ``gate.peak_memory_threshold`` over the baseline runs'."""
    gate = row.get("gate") if isinstance(row.get("gate"), dict) else {}
    limit = gate.get("memory_threshold", DEFAULT_MEMORY_THRESHOLD)
    base = history.iloc[-1]
    grown = []
    for name, (value_of, by_schedule) in EXACT_MEMORY.items():
        now, before = value_of(row), value_of(base)
        if now is None or before is None or is_missing(now) or is_missing(before) or not before:
            continue
        if by_schedule and not _same_schedules(row, base):
            continue
        if now > before * (1 + limit):
            grown.append(f"{name} {int(before):,} -> {int(now):,} bytes ({now / before - 1:+.1%}; exact, "
                         f"gate.memory_threshold {limit:.0%})")
    grown += _grown_peaks(row, history, gate.get("peak_memory_threshold", DEFAULT_PEAK_THRESHOLD), tuned_now, tuning)
    if not grown:
        return
    what = "memory grew: " + "; ".join(grown)
    if v.failing:
        v.reason += f"; {what}"
    else:
        v.status, v.reason = "memory-grew", what


def _first_line(message: Any) -> str:
    text = str(message or "").strip()
    return text.splitlines()[0][:300] if text else ""


_ICON = {"regression": "FAIL", "wrong-answer": "FAIL", "errored": "FAIL", "missing": "FAIL", "not-faster": "FAIL",
         "memory-grew": "FAIL",
         "improvement": "better", "unchanged": "ok", "new": "new", "skipped": "skip", "too-few-rounds": "?",
         "reference-slower": "note", "reference-faster": "note", "unconfirmed": "note"}


def _fmt(v: float | None, scale: float = 1e3) -> str:
    return "" if v is None or is_missing(v) else f"{v * scale:.3f}"


def render_text(verdict: Verdict) -> str:
    lines = [f"gate: {verdict.current} vs {verdict.baseline} on {verdict.machine}"
             + (f", TVM {', '.join(verdict.tvms)}" if verdict.tvms else "")]
    lines += [f"note: {n}" for n in verdict.notes]
    for c in sorted(verdict.cases, key=lambda c: (not c.failing, c.case)):
        lines.append(f"  {_ICON.get(c.status, c.status):>6}  {c.case:<44} {c.status:<15} {c.reason}")
        if c.change_point is not None:
            lines.append(f"{'':10}{'':44} {'':15} {describe_step(c.change_point)}")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(verdict.counts().items()))
    lines.append(f"gate {'FAILED' if verdict.failed else 'passed'}: {counts}")
    return "\n".join(lines)


def describe_step(point: dict[str, Any]) -> str:
    """One line for a change point a case belongs to (ChangePoint.to_dict())."""
    return (f"step {point['change']:+.1%} began between runs {point['run_before']} and {point['run_after']} "
            f"(commits {point['commit_range']}, TVM {point.get('tvm_range', '?')}, p {point['pvalue']:.1g}, "
            f"{point['runs_after']} runs since)")


def render_markdown(verdict: Verdict) -> str:
    head = "### :x: Benchmark gate failed" if verdict.failed else "### :white_check_mark: Benchmark gate passed"
    tvm = f", TVM under test {', '.join(f'`{t}`' for t in verdict.tvms)}" if verdict.tvms else ""
    out = [head, "", f"Current `{verdict.current}` vs {verdict.baseline}, machine {verdict.machine}{tvm}.", ""]
    out += [f"> {n}" for n in verdict.notes]
    out += ["| case | status | basis | statistic | current ms | baseline ms | change | CI | smallest visible "
            "| reason |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(verdict.cases, key=lambda c: (not c.failing, c.case)):
        change = "" if c.ratio is None else f"{c.ratio - 1:+.1%}"
        ci = "" if c.ci_low is None or c.ci_high is None else f"{c.ci_low - 1:+.1%} .. {c.ci_high - 1:+.1%}"
        reason = c.reason.replace("|", "\\|")
        if c.change_point is not None:
            reason += "; " + describe_step(c.change_point)
        status = f"**{c.status}**" if c.failing else c.status
        visible = "" if c.visible is None else f"{c.visible:+.1%}"
        basis = {"paired": f"paired ({c.pairs} pairs)", "history": "history"}.get(c.basis or "", "")
        out.append(f"| `{c.case}` | {status} | {basis} | {c.statistic or ''} | {_fmt(c.current_s)} "
                   f"| {_fmt(c.baseline_s)} | {change} | {ci} | {visible} "
                   f"| {reason} |")
    return "\n".join(out) + "\n"
