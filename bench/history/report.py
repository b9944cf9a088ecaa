"""Report stage: the accumulated history as one self-contained HTML page.

pandas computes, per machine (trend lines never mix machines), each case's
latest numbers, its change against the previous run and against a rolling
baseline (the median of the previous ``window`` runs' medians), and the
change points of each case's history (bench.history.changes). plotly draws the trend
charts in the browser: hover a point for its run, commit, median, min, rounds
and interval; drag to zoom, shift-drag to pan. plotly.js and the figures are
inlined, so the page is one file that needs no network. No user-supplied
string can become markup: the figures' JSON has <, > and & escaped, names in
hover text are HTML-escaped, and everything else goes through Jinja's
autoescaping.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.history.changes import ChangePoint, find_changes
from bench.history.gate import DEFAULT_THRESHOLD
from bench.history.load import History, is_missing, load_history, tvm_of
from bench.stages.record import library_bytes, peak_mib, planned_bytes, stage_peaks
from bench.suite.case import ORT, TUNED, UNTUNED

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

#: Previous runs in the summary's rolling baseline (``report --window``).
DEFAULT_WINDOW = 10


@dataclass
class MachineSection:
    machine: str
    description: str
    runs: int
    latest_run: str
    latest_time: str
    rows: list[dict[str, Any]]
    #: Chart ids and titles; the figures themselves are in ReportData.figures.
    charts: list[dict[str, str]]
    tuning_chart: str | None
    problems: list[dict[str, Any]]
    changes: list[dict[str, Any]] = field(default_factory=list)
    paired_chart: str | None = None
    #: Memory chart ids and titles, one per model and target that recorded memory.
    memory_charts: list[dict[str, str]] = field(default_factory=list)


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
    #: None: each case's own (its suite's gate.threshold).
    threshold: float | None
    window: int
    timings: dict[str, float] = field(default_factory=dict)
    #: Plotly figures by chart id, drawn in the browser by the page's script.
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    change_points: int = 0

    def figures_json(self) -> str:
        """The figures as JSON that is safe inside a <script> element (no <, >, & left to end it)."""
        text = json.dumps(self.figures, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fmt_ms(seconds: Any) -> str:
    return "" if is_missing(seconds) else f"{seconds * 1e3:.3f}"



def _change(current: float, base: float | None) -> float | None:
    if is_missing(base) or not base:
        return None
    return current / base - 1.0


def _memory_cells(row: pd.Series) -> dict[str, Any]:
    """The build's library and planned KiB (exact) and the item's highest sampled stage peak, MiB
    (docs/guide.md#memory)."""
    size, planned, peak = library_bytes(row), planned_bytes(row), peak_mib(row)
    kib = None if size is None else size / 1024
    planned_kib = None if planned is None else planned / 1024
    return {"library_kib": "" if kib is None else f"{kib:,.0f}", "library_value": kib or 0.0,
            "planned_kib": "" if planned_kib is None else f"{planned_kib:,.0f}", "planned_value": planned_kib or 0.0,
            "peak_mib": "" if peak is None else f"{peak:,.0f}", "peak_value": peak or 0.0}


#: Gate statuses the summary shows as a row's status; the others (unchanged, new, ...) show nothing.
_SHOWN = ("regression", "improvement", "reference-slower", "reference-faster", "not-faster", "memory-grew")


def _gate_statuses(results: pd.DataFrame, threshold: float | None, window: int) -> dict[str, Any]:
    """The regression gate's verdict on the latest run against the previous ``window`` runs, by case: the
    report flags what the gate would, by the gate's own rule (bench.history.gate.decide)."""
    import pandas as pd

    from bench.history.gate import GateSettings, decide

    latest_id = results["run_id"].iloc[-1]
    earlier = [r for r in dict.fromkeys(results["run_id"]) if r != latest_id][-window:]
    verdict = decide(results[results["run_id"] == latest_id],
                     pd.DataFrame(columns=["case", "variant", "outcome", "message"]),
                     results[results["run_id"].isin(earlier)], GateSettings(threshold=threshold, window=window))
    return {c.case: c for c in verdict.cases}


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
    if row["variant"] == TUNED:
        return f"tuned {row['budget']}"
    return "onnxruntime" if row["variant"] == ORT else UNTUNED


#: Trace colours by series, stable from chart to chart.
_COLOURS = {UNTUNED: "#1f77b4", "onnxruntime": "#7f7f7f"}
_TUNED_COLOURS = ["#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]


def _coloured_series(group: pd.DataFrame, labels: pd.Series) -> Iterator[tuple[Any, pd.DataFrame, str]]:
    """A chart's series in label order, each in run order with its colour: fixed for untuned and ONNX Runtime,
    the tuned budgets' in turn."""
    tuned_seen = 0
    for label, series in group.groupby(labels, sort=True):
        if label in _COLOURS:
            colour = _COLOURS[str(label)]
        else:
            colour = _TUNED_COLOURS[tuned_seen % len(_TUNED_COLOURS)]
            tuned_seen += 1
        yield label, series.sort_values("run_time"), colour


def _text(value: Any) -> str:
    """A user string (case, commit) for a chart: plotly reads a few HTML tags in hover text, so escape them."""
    return html.escape("" if is_missing(value) else str(value), quote=False)


def _ms(values: Any) -> Any:
    import numpy as np

    return np.round(np.asarray(values, dtype=float) * 1e3, 6)


def _trend_figure(group: pd.DataFrame, title: str, threshold: float, window: int,
                  changes: list[ChangePoint]) -> dict[str, Any]:
    """One interactive chart: each series' median per run with its IQR, flagged runs and change points.

    Hover shows the run, its commit, median and min, rounds and the interval;
    plotly gives zoom and pan. Returned as plotly's figure JSON (a dict).
    """
    import json

    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = group.apply(_series_label, axis=1)
    tvms = group.apply(tvm_of, axis=1)
    if (tvms.groupby(group["run_id"]).nunique() > 1).any():  # several TVMs side by side: a series each
        labels = pd.Series([label if variant == ORT else f"{label} on TVM {tvm}" for label, variant, tvm
                            in zip(labels, group["variant"], tvms, strict=True)], index=group.index)
    for label, series, colour in _coloured_series(group, labels):
        spread = np.array([_spread(r) for _, r in series.iterrows()])
        median = series["median"].to_numpy(dtype=float)
        commits = [_text(c)[:12] or "?" for c in series["commit"]]
        # Numbers as one float array (plotly ships it base64-packed); the commit as the point's text.
        custom = np.column_stack([_ms(series["min"]), series["rounds"].fillna(0).to_numpy(dtype=float),
                                  _ms(spread[:, 0]), _ms(spread[:, 1])])
        fig.add_trace(go.Scatter(
            x=series["run_time"], y=_ms(median), name=_text(label), mode="lines+markers",
            line={"color": colour, "width": 1.2}, marker={"size": 4},
            error_y={"type": "data", "symmetric": False, "array": _ms(spread[:, 1] - median),
                     "arrayminus": _ms(median - spread[:, 0]), "thickness": 0.8, "width": 0, "color": colour},
            customdata=custom, text=commits,
            hovertemplate=("<b>%{fullData.name}</b><br>run of %{x|%Y-%m-%d %H:%M}<br>commit %{text}<br>"
                           "median %{y:.4g} ms, min %{customdata[0]:.4g} ms<br>"
                           "%{customdata[1]} rounds, IQR %{customdata[2]:.4g} .. %{customdata[3]:.4g} ms"
                           "<extra></extra>")))
        baseline = series["median"].shift(1).rolling(window, min_periods=1).median().to_numpy()
        slow = median > baseline * (1 + threshold)
        failed = series["check_ok"].map(lambda v: v is False or v == 0).to_numpy(dtype=bool)
        for mask, name, symbol in ((slow, f"> {threshold:.0%} over baseline", "triangle-down"),
                                   (failed, "check failed", "x")):
            if mask.any():
                fig.add_trace(go.Scatter(
                    x=series["run_time"][mask], y=_ms(median[mask]), mode="markers", name=f"{_text(label)}: {name}",
                    marker={"symbol": symbol, "size": 10, "color": "#c62828"},
                    text=[c for c, m in zip(commits, mask, strict=True) if m],
                    hovertemplate=("<b>%{fullData.name}</b><br>run of %{x|%Y-%m-%d %H:%M}<br>commit %{text}"
                                   "<br>median %{y:.4g} ms<extra></extra>")))
    for when, change in _tvm_changes(group):
        fig.add_vline(x=when.timestamp() * 1000, line={"dash": "dash", "width": 1, "color": "#6a1b9a"},
                      annotation={"text": f"TVM {_text(change)}", "font": {"size": 10, "color": "#6a1b9a"}},
                      annotation_position="top left")
    cases = set(group["case"])
    mine = [c for c in changes if c.case in cases]
    if mine:
        fig.add_trace(go.Scatter(
            x=[c.time_after for c in mine], y=[c.after_s * 1e3 for c in mine], mode="markers",
            name="change points", marker={"symbol": "diamond", "size": 12, "line": {"width": 1.5, "color": "#000"},
                                          "color": ["#c62828" if c.change > 0 else "#2e7d32" for c in mine]},
            text=[f"{_text(c.case)}: step {c.change:+.1%} (p {c.pvalue:.1g})<br>{c.before_s * 1e3:.4g} -> "
                  f"{c.after_s * 1e3:.4g} ms<br>between runs {_text(c.run_before)}<br>and {_text(c.run_after)}"
                  f"<br>commits {_text(c.commit_range)}<br>TVM {_text(c.tvm_range)}" for c in mine],
            hovertemplate="%{text}<extra></extra>"))
        for c in mine:
            fig.add_vline(x=c.time_after.timestamp() * 1000, line={"dash": "dot", "width": 1,
                                                                   "color": "#c62828" if c.change > 0 else "#2e7d32"})
    fig.update_layout(
        title={"text": _text(title), "font": {"size": 13}}, height=340, margin={"l": 60, "r": 10, "t": 40, "b": 40},
        yaxis={"type": "log", "title": {"text": "latency (ms, log)"}}, hovermode="closest",
        legend={"font": {"size": 10}}, template="plotly_white")
    figure: dict[str, Any] = json.loads(fig.to_json())
    return figure


def _memory_figure(group: pd.DataFrame, title: str) -> dict[str, Any] | None:
    """One model's memory over the runs: each item's highest sampled stage peak (hover: every stage's), and
    each build's exact figures, its plan's bytes per call and its library; None where no run recorded memory."""
    import json

    import numpy as np
    from plotly.subplots import make_subplots

    if not any(stage_peaks(r) or planned_bytes(r) is not None for _, r in group.iterrows()):
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("peak resident MiB (sampled every 0.25 s)",
                                                        "planned and library KiB (exact)"))
    for label, series, colour in _coloured_series(group, group.apply(_series_label, axis=1)):
        peaks = [peak_mib(r) for _, r in series.iterrows()]
        stages = ["<br>".join(f"{n} {p:,.0f} MiB" for n, p in stage_peaks(r).items()) or "-"
                  for _, r in series.iterrows()]
        fig.add_scatter(x=series["run_time"], y=np.array([np.nan if p is None else p for p in peaks]),
                        mode="lines+markers", name=f"{_text(label)} peak", row=1, col=1,
                        line={"color": colour, "width": 1.2}, marker={"size": 4}, text=stages,
                        hovertemplate="<b>%{fullData.name}</b><br>run of %{x|%Y-%m-%d %H:%M}<br>%{text}"
                                      "<extra></extra>")
        for name, size_of, dash in (("planned", planned_bytes, "solid"), ("library", library_bytes, "dot")):
            sizes = [size_of(r) for _, r in series.iterrows()]
            if all(v is None for v in sizes):
                continue
            fig.add_scatter(x=series["run_time"], y=np.array([np.nan if v is None else v / 1024 for v in sizes]),
                            mode="lines+markers", name=f"{_text(label)} {name}", row=1, col=2,
                            line={"color": colour, "width": 1.2, "dash": dash}, marker={"size": 4},
                            hovertemplate="<b>%{fullData.name}</b><br>run of %{x|%Y-%m-%d %H:%M}<br>%{y:,.1f} KiB"
                                          "<extra></extra>")
    fig.update_layout(title={"text": _text(title), "font": {"size": 13}}, height=340,
                      margin={"l": 60, "r": 10, "t": 60, "b": 40}, template="plotly_white",
                      legend={"font": {"size": 10}}, hovermode="closest")
    figure: dict[str, Any] = json.loads(fig.to_json())
    return figure


def _tuning_figure(tuned: pd.DataFrame) -> dict[str, Any] | None:
    import json

    from plotly.subplots import make_subplots

    if tuned.empty:
        return None
    fresh = tuned[tuned["tuning_cached"].fillna(True) == False]  # noqa: E712 - pandas element-wise comparison
    fig = make_subplots(rows=1, cols=2, subplot_titles=("tuning cost (seconds, runs that tuned)",
                                                        "speedup tuned / untuned (median)"))
    for case, series in fresh.groupby("case", sort=True):
        series = series.sort_values("run_time")
        fig.add_scatter(x=series["run_time"], y=series["tuning_s"], mode="lines+markers", row=1, col=1,
                        name=f"{_text(case)} ({int(series['trials'].iloc[-1])} trials)")
    for case, series in tuned.groupby("case", sort=True):
        series = series.sort_values("run_time")
        fig.add_scatter(x=series["run_time"], y=series["speedup_median"], mode="lines+markers", row=1, col=2,
                        name=_text(case))
    fig.add_hline(y=1.0, line={"color": "grey", "width": 0.8}, row=1, col=2)
    fig.update_layout(height=320, margin={"l": 50, "r": 10, "t": 40, "b": 40}, template="plotly_white",
                      legend={"font": {"size": 10}})
    figure: dict[str, Any] = json.loads(fig.to_json())
    return figure


def paired_chain(series: pd.DataFrame) -> list[tuple[Any, float, float, float, float, str]]:
    """One case's paired ratios in run order, each with its chained level: (time, ratio, low, high, level, run).

    A run timed against a baseline accepted from run j sits at ratio x level(j); a baseline from a run outside
    the history starts the chain at 1. So the level follows the build's speed across accepted baselines, and a
    creep of a percent a night that no single night's pairs can call slower shows as a slope.
    """
    level: dict[str, float] = {}
    out = []
    for _, row in series.sort_values("run_time").iterrows():
        paired = row.get("vs_baseline")
        if not isinstance(paired, dict) or paired.get("ratio") is None:
            continue
        ratio = 1.0 if paired.get("identical") else float(paired["ratio"])
        low = 1.0 if paired.get("identical") else float(paired["low"])
        high = 1.0 if paired.get("identical") else float(paired["high"])
        base_run = str((paired.get("baseline") or {}).get("run_id") or "")
        level[str(row["run_id"])] = ratio * level.get(base_run, 1.0)
        out.append((row["run_time"], ratio, low, high, level[str(row["run_id"])], str(row["run_id"])))
    return out


def _paired_figure(results: pd.DataFrame, threshold: float) -> dict[str, Any] | None:
    """Each paired case's ratio to its baseline build per run (with its interval), and the chain of ratios."""
    import json

    import plotly.graph_objects as go

    fig = go.Figure()
    palette = [*_TUNED_COLOURS, "#1f77b4", "#d62728", "#bcbd22"]
    for i, (case, series) in enumerate(results[results["variant"] != ORT].groupby("case", sort=True)):
        chain = paired_chain(series)
        if not chain:
            continue
        colour = palette[i % len(palette)]
        when = [c[0] for c in chain]
        change = [(c[1] - 1) * 100 for c in chain]
        fig.add_trace(go.Scatter(
            x=when, y=change, name=_text(case), mode="markers", marker={"color": colour, "size": 6},
            error_y={"type": "data", "symmetric": False, "array": [(c[3] - c[1]) * 100 for c in chain],
                     "arrayminus": [(c[1] - c[2]) * 100 for c in chain], "thickness": 0.8, "width": 0},
            text=[_text(c[5]) for c in chain],
            hovertemplate=("<b>%{fullData.name}</b><br>run %{text}<br>%{y:+.2f}% against its baseline build"
                           "<extra></extra>")))
        fig.add_trace(go.Scatter(
            x=when, y=[(c[4] - 1) * 100 for c in chain], name=f"{_text(case)}: chained", mode="lines",
            line={"color": colour, "width": 1, "dash": "dot"}, text=[_text(c[5]) for c in chain],
            hovertemplate=("<b>%{fullData.name}</b><br>run %{text}<br>%{y:+.2f}% against the first baseline"
                           "<extra></extra>")))
    if not fig.data:
        return None
    for y in (threshold * 100, -threshold * 100):
        fig.add_hline(y=y, line={"color": "#c62828", "width": 0.8, "dash": "dash"})
    fig.add_hline(y=0, line={"color": "grey", "width": 0.8})
    fig.update_layout(height=340, margin={"l": 60, "r": 10, "t": 20, "b": 40}, template="plotly_white",
                      yaxis={"title": {"text": "change against baseline build (%)"}}, hovermode="closest",
                      legend={"font": {"size": 10}})
    figure: dict[str, Any] = json.loads(fig.to_json())
    return figure


def _tvm_changes(group: pd.DataFrame) -> list[tuple[Any, str]]:
    """Where the chart's runs moved to other TVMs: (first run on the new ones, ``before -> after``)."""
    tvm_items = group[group["variant"] != ORT]
    out: list[tuple[Any, str]] = []
    previous: str | None = None
    for _, rows in tvm_items.sort_values("run_time").groupby("run_id", sort=False):
        now = ", ".join(sorted({tvm_of(r) for _, r in rows.iterrows()}))
        if previous is not None and now != previous:
            out.append((rows["run_time"].iloc[0].to_pydatetime(), f"{previous} -> {now}"))
        previous = now
    return out


def _change_rows(changes: list[ChangePoint]) -> list[dict[str, Any]]:
    return [{"case": c.case, "direction": c.direction, "change": f"{c.change:+.1%}", "change_value": c.change,
             "before_ms": f"{c.before_s * 1e3:.4g}", "after_ms": f"{c.after_s * 1e3:.4g}",
             "pvalue": f"{c.pvalue:.1g}", "runs": f"{c.run_before} .. {c.run_after}",
             "commits": c.commit_range, "tvm": c.tvm_range, "when": f"{c.time_after:%Y-%m-%d %H:%M}",
             "runs_after": c.runs_after}
            for c in reversed(changes)]


def _summary_rows(results: pd.DataFrame, threshold: float | None, window: int) -> list[dict[str, Any]]:
    import numpy as np

    from bench.history.gate import DEFAULT_ALPHA, case_statistic, smallest_visible

    gate = _gate_statuses(results, threshold, window)
    latest_id = results["run_id"].iloc[-1]
    case_alpha = DEFAULT_ALPHA / max(1, results.loc[results["run_id"] == latest_id, "case"].nunique())
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
        # What the gate could resolve for this case from its last `window` runs (as the gate's baseline).
        stat = case_statistic(last)
        values = [float(v) for v in previous[stat].tail(window) if not is_missing(v) and v > 0]
        visible = smallest_visible(np.array(values), case_alpha) if len(values) >= 3 else None
        rows.append({
            "case": case, "model": last["model"], "target": last["target_name"], "variant": last["variant"],
            "budget": "" if is_missing(last["budget"]) else last["budget"],
            "median_ms": _fmt_ms(last["median"]), "mean_ms": _fmt_ms(last["mean"]),
            "std_ms": _fmt_ms(last["stddev"]), "rounds": int(last["rounds"]),
            "cv": f"{last['stddev'] / last['mean']:.1%}" if last["mean"] else "",
            "speedup": "" if is_missing(last["speedup_median"])
            else f"{last['speedup_median']:.2f}x",
            "vs_ort": _vs_ort(last), "paired": _paired_text(last.get("vs_baseline")),
            **_memory_cells(last),
            "vs_prev": "" if vs_prev is None else f"{vs_prev:+.1%}", "vs_prev_value": vs_prev or 0.0,
            "vs_base": "" if vs_base is None else f"{vs_base:+.1%}", "vs_base_value": vs_base or 0.0,
            "status": gate[case].status if case in gate and gate[case].status in _SHOWN else "",
            "status_reason": gate[case].reason if case in gate else "",
            "check": "n/a" if is_missing(check_ok) else "pass" if bool(check_ok) else "FAIL",
            "check_failed": ", ".join(last["check_failed"] or []),
            "median_value": float(last["median"]),
            "visible": "" if visible is None else f"{visible:+.1%}", "visible_value": visible or 0.0,
            "visible_over": visible is not None and visible > (threshold or DEFAULT_THRESHOLD)
            and last["variant"] != ORT,
        })
    return rows


def _paired_text(paired: Any) -> str:
    """The build against its baseline build, timed in pairs: the change and its interval ("same": identical)."""
    if not isinstance(paired, dict) or paired.get("ratio") is None:
        return ""
    if paired.get("identical"):
        return "same"
    return (f"{paired['ratio'] - 1:+.1%} ({paired['low'] - 1:+.1%} .. {paired['high'] - 1:+.1%}, "
            f"{paired.get('pairs')} pairs)")


def _vs_ort(row: pd.Series) -> str:
    """Tuned against ONNX Runtime: timed side by side where the run did, else the two items' medians (marked)."""
    paired, items = row.get("tuned_vs_ort_side_by_side"), row.get("tuned_vs_ort_median")
    if not is_missing(paired):
        return f"{paired:.2f}x"
    return "" if is_missing(items) else f"{items:.2f}x (items)"


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


def build_report(history: History, threshold: float | None = None, window: int = DEFAULT_WINDOW,
                 charts: bool = True) -> ReportData:
    results, outcomes = history.results, history.outcomes
    sections = []
    figures: dict[str, dict[str, Any]] = {}
    changes_found = 0
    for machine, mres in results.groupby("machine", sort=True):
        mres = mres.sort_values(["run_time", "run_id"], kind="stable")
        mout = _section_outcomes(results, outcomes, mres)
        changes = find_changes(mres)
        changes_found += len(changes)
        chart_list, memory_list = [], []
        if charts:
            for (model, target), group in mres.groupby(["model", "target_name"], sort=True):
                chart_id = f"chart-{len(figures)}"
                title = f"{model} on {target}"
                figures[chart_id] = _trend_figure(group, title, threshold or DEFAULT_THRESHOLD, window, changes)
                chart_list.append({"id": chart_id, "title": title})
                memory = _memory_figure(group, title)
                if memory is not None:
                    chart_id = f"chart-{len(figures)}"
                    figures[chart_id] = memory
                    memory_list.append({"id": chart_id, "title": title})
        tuned = mres[mres["variant"] == TUNED]
        tuning_id = None
        tuning = _tuning_figure(tuned) if charts else None
        if tuning is not None:
            tuning_id = f"chart-{len(figures)}"
            figures[tuning_id] = tuning
        paired_id = None
        paired = (_paired_figure(mres, threshold or DEFAULT_THRESHOLD) if charts and "vs_baseline" in mres
                  else None)
        if paired is not None:
            paired_id = f"chart-{len(figures)}"
            figures[paired_id] = paired
        sections.append(MachineSection(
            machine=str(machine), description=str(mres["machine_desc"].iloc[-1]), runs=mres["run_id"].nunique(),
            latest_run=str(mres["run_id"].iloc[-1]), latest_time=f"{mres['run_time'].iloc[-1]:%Y-%m-%d %H:%M}",
            rows=_summary_rows(mres, threshold, window), charts=chart_list, tuning_chart=tuning_id,
            problems=_problems(mres, mout), changes=_change_rows(changes), paired_chart=paired_id,
            memory_charts=memory_list))
    runs = history.runs
    return ReportData(
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        runs=len(runs), first=f"{runs['run_time'].iloc[0]:%Y-%m-%d %H:%M}" if len(runs) else "",
        last=f"{runs['run_time'].iloc[-1]:%Y-%m-%d %H:%M}" if len(runs) else "",
        machines=sorted({f"{d} ({m})" for d, m in zip(runs["machine_desc"], runs["machine"], strict=True)}),
        tvm_versions=sorted({str(v) for v in results["tvm_label"].fillna(results["tvm_version"]).dropna()}),
        commits=[str(c)[:12] for c in runs["commit"].dropna().unique()][-10:],
        sections=sections, skipped_files=history.problems, threshold=threshold, window=window, figures=figures,
        change_points=changes_found)


def render_html(data: ReportData) -> str:
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.PackageLoader("bench", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    plotly_js = _plotly_js() if data.figures else ""
    return env.get_template("report.html.j2").render(report=data, plotly_js=markupsafe.Markup(plotly_js),
                                                     figures_json=markupsafe.Markup(data.figures_json()))


def _plotly_js() -> str:
    """plotly.js itself, inlined: the page must work offline and from a CI artifact."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_report(paths: list[str | Path], out_dir: Path, threshold: float | None = None,
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
