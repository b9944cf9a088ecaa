"""Report stage: the accumulated history as one self-contained HTML page.

pandas computes, per machine (trend lines never mix machines), each case's
latest numbers, its change against the previous run and against a rolling
baseline (the median of the previous ``window`` runs' medians), and matplotlib
draws the trend charts. Charts are embedded as base64 SVG images: the page
needs no network, and no user-supplied string can become markup (everything
else goes through Jinja's autoescaping).
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.history import History, is_missing, load_history

if TYPE_CHECKING:
    import pandas as pd

#: Default threshold for highlighting a change in the summary table.
DEFAULT_THRESHOLD = 0.05
#: Default number of previous runs in the rolling baseline.
DEFAULT_WINDOW = 10


@dataclass
class MachineSection:
    machine: str
    description: str
    runs: int
    latest_run: str
    latest_time: str
    rows: list[dict[str, Any]]
    charts: list[dict[str, str]]
    tuning_chart: str | None
    problems: list[dict[str, Any]]


@dataclass
class ReportData:
    generated: str
    runs: int
    first: str
    last: str
    machines: list[str]
    tvm_versions: list[str]
    commits: list[str]
    sections: list[MachineSection]
    skipped_files: list[str]
    threshold: float
    window: int
    timings: dict[str, float] = field(default_factory=dict)


def _fmt_ms(seconds: Any) -> str:
    return "" if is_missing(seconds) else f"{seconds * 1e3:.3f}"



def _change(current: float, base: float | None) -> float | None:
    if is_missing(base) or not base:
        return None
    return current / base - 1.0


def _status(change: float | None, threshold: float) -> str:
    if change is None:
        return ""
    if change > threshold:
        return "regression"
    if change < -threshold:
        return "improvement"
    return ""


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _spread(row: pd.Series) -> tuple[float, float]:
    """Interquartile range of the per-round samples, else median +- stddev."""
    import numpy as np

    samples = row.get("samples_s")
    if isinstance(samples, list) and len(samples) >= 2:
        q1, q3 = np.percentile(samples, [25, 75])
        return float(q1), float(q3)
    std = row["stddev"] if not is_missing(row["stddev"]) else 0.0
    return float(row["median"] - std), float(row["median"] + std)


def _series_label(row: pd.Series) -> str:
    if row["variant"] == "tuned":
        return f"tuned {row['budget']}"
    return "onnxruntime" if row["variant"] == "ort" else "untuned"


def _trend_chart(group: pd.DataFrame, title: str, threshold: float, window: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"  # glyphs as paths: no text nodes in the SVG
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for label, series in group.groupby(group.apply(_series_label, axis=1), sort=True):
        series = series.sort_values("run_time")
        x = series["run_time"].to_numpy()
        y = series["median"].to_numpy() * 1e3
        lo_hi = [_spread(r) for _, r in series.iterrows()]
        ax.fill_between(x, [lo * 1e3 for lo, _ in lo_hi], [hi * 1e3 for _, hi in lo_hi], alpha=0.25, linewidth=0)
        ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, label=f"{label} (median, IQR band)")
        baseline = series["median"].shift(1).rolling(window, min_periods=1).median().to_numpy() * 1e3
        bad = y > baseline * (1 + threshold)
        if bad.any():
            ax.scatter(x[bad], y[bad], marker="v", s=40, color="#c62828", zorder=5,
                       label=f"{label}: > {threshold:.0%} over baseline")
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    return _svg(fig)


def _tuning_chart(tuned: pd.DataFrame) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fresh = tuned[tuned["tuning_cached"].fillna(True) == False]  # noqa: E712 - pandas element-wise comparison
    if tuned.empty:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2))
    for case, series in tuned.groupby("case", sort=True):
        series = series.sort_values("run_time")
        ax2.plot(series["run_time"], series["speedup_median"], marker="o", markersize=2.5, label=case)
    for case, series in fresh.groupby("case", sort=True):
        series = series.sort_values("run_time")
        ax1.plot(series["run_time"], series["tuning_s"], marker="s", markersize=3, linewidth=1,
                 label=f"{case} ({int(series['trials'].iloc[-1])} trials)")
    ax1.set_title("tuning cost (seconds, runs that tuned)", fontsize=10)
    ax2.set_title("speedup tuned / untuned (median)", fontsize=10)
    ax2.axhline(1.0, color="grey", linewidth=0.8)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _svg(fig)


def _summary_rows(results: pd.DataFrame, threshold: float, window: int) -> list[dict[str, Any]]:
    latest_id = results["run_id"].iloc[-1]
    rows = []
    for case, series in results.groupby("case", sort=True):
        series = series.sort_values("run_time")
        last = series.iloc[-1]
        if last["run_id"] != latest_id:
            continue  # the case is not in the latest run: the problems list says so
        previous = series.iloc[:-1]
        prev_median = float(previous["median"].iloc[-1]) if len(previous) else None
        base = float(previous["median"].tail(window).median()) if len(previous) else None
        vs_prev, vs_base = _change(float(last["median"]), prev_median), _change(float(last["median"]), base)
        check_ok = last["check_ok"]
        rows.append({
            "case": case, "model": last["model"], "target": last["target_name"], "variant": last["variant"],
            "budget": "" if is_missing(last["budget"]) else last["budget"],
            "median_ms": _fmt_ms(last["median"]), "mean_ms": _fmt_ms(last["mean"]),
            "std_ms": _fmt_ms(last["stddev"]), "rounds": int(last["rounds"]),
            "cv": f"{last['stddev'] / last['mean']:.1%}" if last["mean"] else "",
            "speedup": "" if is_missing(last["speedup_median"])
            else f"{last['speedup_median']:.2f}x",
            "vs_prev": "" if vs_prev is None else f"{vs_prev:+.1%}", "vs_prev_value": vs_prev or 0.0,
            "vs_base": "" if vs_base is None else f"{vs_base:+.1%}", "vs_base_value": vs_base or 0.0,
            "status": _status(vs_base if vs_base is not None else vs_prev, threshold),
            "check": "n/a" if is_missing(check_ok) else "pass" if bool(check_ok) else "FAIL",
            "check_failed": ", ".join(last["check_failed"] or []),
            "median_value": float(last["median"]),
        })
    return rows


def _problems(results: pd.DataFrame, outcomes: pd.DataFrame) -> list[dict[str, Any]]:
    """Failed and skipped items of the latest run, and cases that vanished from it."""
    out: list[dict[str, Any]] = []
    if not outcomes.empty:
        latest = outcomes[outcomes["run_id"] == outcomes["run_id"].iloc[-1]]
        for _, o in latest[latest["outcome"] != "passed"].iterrows():
            out.append({"case": o["case"], "outcome": o["outcome"], "message": o["message"] or ""})
    if not results.empty:
        latest_id = results["run_id"].iloc[-1]
        present = set(results.loc[results["run_id"] == latest_id, "case"])
        reported = {p["case"] for p in out}
        for case in sorted(set(results["case"]) - present - reported):
            out.append({"case": case, "outcome": "missing", "message": "measured in earlier runs, not in the latest"})
    return out


def _section_outcomes(results: pd.DataFrame, outcomes: pd.DataFrame, section: pd.DataFrame) -> pd.DataFrame:
    """The outcomes that belong to a section: a machine section may hold part of a host's items (split by
    thread count), while outcomes carry only the host. An item that never measured on that host goes to the
    host's section with the latest run."""
    if outcomes.empty:
        return outcomes
    host = section["host_machine"].iloc[-1]
    mine = outcomes[outcomes["machine"] == host]
    host_rows = results[results["host_machine"] == host]
    cases = set(section["case"])
    if host_rows["machine"].iloc[-1] == section["machine"].iloc[-1]:
        cases |= set(mine["case"]) - set(host_rows["case"])
    return mine[mine["case"].isin(cases)]


def build_report(history: History, threshold: float = DEFAULT_THRESHOLD, window: int = DEFAULT_WINDOW,
                 charts: bool = True) -> ReportData:
    results, outcomes = history.results, history.outcomes
    sections = []
    for machine, mres in results.groupby("machine", sort=True):
        mres = mres.sort_values(["run_time", "run_id"], kind="stable")
        mout = _section_outcomes(results, outcomes, mres)
        chart_list = []
        if charts:
            for (model, target), group in mres.groupby(["model", "target_name"], sort=True):
                chart_list.append({"title": f"{model} on {target}",
                                   "src": _trend_chart(group, f"{model} on {target}", threshold, window)})
        tuned = mres[mres["variant"] == "tuned"]
        sections.append(MachineSection(
            machine=str(machine), description=str(mres["machine_desc"].iloc[-1]), runs=mres["run_id"].nunique(),
            latest_run=str(mres["run_id"].iloc[-1]), latest_time=f"{mres['run_time'].iloc[-1]:%Y-%m-%d %H:%M}",
            rows=_summary_rows(mres, threshold, window), charts=chart_list,
            tuning_chart=_tuning_chart(tuned) if charts and not tuned.empty else None,
            problems=_problems(mres, mout)))
    runs = history.runs
    return ReportData(
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        runs=len(runs), first=f"{runs['run_time'].iloc[0]:%Y-%m-%d %H:%M}" if len(runs) else "",
        last=f"{runs['run_time'].iloc[-1]:%Y-%m-%d %H:%M}" if len(runs) else "",
        machines=sorted({f"{d} ({m})" for d, m in zip(runs["machine_desc"], runs["machine"], strict=True)}),
        tvm_versions=sorted({str(v) for v in results["tvm_version"].dropna()}),
        commits=[str(c)[:12] for c in runs["commit"].dropna().unique()][-10:],
        sections=sections, skipped_files=history.problems, threshold=threshold, window=window)


def render_html(data: ReportData) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("bench", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2").render(report=data)


def write_report(paths: list[str | Path], out_dir: Path, threshold: float = DEFAULT_THRESHOLD,
                 window: int = DEFAULT_WINDOW) -> tuple[Path, ReportData]:
    """Load, compute, render; write ``index.html`` and the tidy data as ``history.csv``."""
    from bench.cache import atomic_write

    started = time.perf_counter()
    history = load_history(paths)
    loaded = time.perf_counter()
    data = build_report(history, threshold, window)
    html = render_html(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "index.html", html)
    atomic_write(out_dir / "history.csv", history.results.to_csv(index=False))
    data.timings = {"load_s": loaded - started, "render_s": time.perf_counter() - loaded}
    return out_dir / "index.html", data
