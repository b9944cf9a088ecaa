"""The HTML report: summary numbers, highlighting, escaping, and the page in a real browser.

The browser test leaves its screenshot in reports/screenshots/ (or $BENCH_SCREENSHOT_DIR).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from bench.history.load import load_history
from bench.history.report import build_report, render_html, write_report
from bench.testing.results import bench_entry, run_file, synthetic_history


def test_summary_of_a_steady_history(tmp_path: Path) -> None:
    """Thirty steady runs: every case is in the summary, no regressions, checks pass."""
    synthetic_history(tmp_path, runs=30, cases=2)
    data = build_report(load_history([tmp_path]), charts=False)
    assert data.runs == 30 and len(data.sections) == 1
    rows = {r["case"]: r for r in data.sections[0].rows}
    assert set(rows) == {"model0-native-untuned", "model0-native-b64-tuned", "model1-native-untuned",
                         "model1-native-b64-tuned"}
    assert all(r["status"] == "" and r["check"] == "pass" for r in rows.values())
    assert rows["model0-native-b64-tuned"]["speedup"].endswith("x")
    assert data.sections[0].problems == []


def test_slowdown_is_highlighted(tmp_path: Path) -> None:
    """A 15% slowdown in the tuned builds of the last run is flagged against the baseline."""
    synthetic_history(tmp_path, runs=12, cases=1, slowdown_at=11)
    rows = {r["case"]: r for r in build_report(load_history([tmp_path]), charts=False).sections[0].rows}
    assert rows["model0-native-b64-tuned"]["status"] == "regression"
    assert rows["model0-native-b64-tuned"]["vs_base"].startswith("+1")
    assert rows["model0-native-untuned"]["status"] == ""


def test_tuned_rows_show_the_ratio_to_onnx_runtime_side_by_side_or_marked_as_items(tmp_path: Path) -> None:
    """Tuned rows show the side-by-side ratio where the run timed one; an older run's items' ratio is marked."""
    entries = []
    for model, info in (("paired", {"tuned_vs_ort_median": 0.91, "tuned_vs_ort_side_by_side": 1.67}),
                        ("items", {"tuned_vs_ort_median": 1.25}), ("none", {})):
        entry = bench_entry(f"{model}-native-b64-tuned", model, "tuned", [0.002] * 5, speedup=10.0)
        entry["extra_info"].update(info)
        entries.append(entry)
    run_file(tmp_path / "run.json", datetime(2026, 11, 26, 2, 0), entries)
    rows = {r["model"]: r for r in build_report(load_history([tmp_path]), charts=False).sections[0].rows}
    assert (rows["paired"]["vs_ort"], rows["items"]["vs_ort"], rows["none"]["vs_ort"]) == \
        ("1.67x", "1.25x (items)", "")
    assert "<td>1.67x</td>" in render_html(build_report(load_history([tmp_path]), charts=False))


def test_rows_show_the_library_size_the_planned_and_the_peak_memory(tmp_path: Path) -> None:
    """Each row: the build's library and planned KiB (exact) and the item's highest stage peak MiB (sampled); an
    older run without them shows nothing."""
    with_memory = bench_entry("m-native-b64-tuned", "m", "tuned", [0.002] * 5, speedup=10.0)
    with_memory["extra_info"].update({"library": {"bytes": 195_928}, "planned_memory": {"planned_bytes": 114_984},
                                      "memory": {"sampled_every_s": 0.25, "stages": {
                                          "build": {"start_mib": 345.8, "peak_mib": 678.7},
                                          "tune": {"start_mib": 345.8, "peak_mib": 1152.5}}}})
    run_file(tmp_path / "run.json", datetime(2026, 11, 26, 2, 0),
             [with_memory, bench_entry("m-native-untuned", "m", "untuned", [0.02] * 5)])
    rows = {r["variant"]: r for r in build_report(load_history([tmp_path]), charts=False).sections[0].rows}
    assert (rows["tuned"]["library_kib"], rows["tuned"]["planned_kib"], rows["tuned"]["peak_mib"]) == \
        ("191", "112", "1,152")
    assert (rows["untuned"]["library_kib"], rows["untuned"]["planned_kib"], rows["untuned"]["peak_mib"]) == \
        ("", "", "")
    assert '>191</td><td data-v="112.2890625">112</td><td data-v="1152.5">1,152</td>' in \
        render_html(build_report(load_history([tmp_path]), charts=False))


def test_a_memory_chart_per_model_follows_the_peaks_and_the_exact_figures(tmp_path: Path) -> None:
    """Each model that recorded memory gets a chart: its items' highest stage peaks (every stage's in the hover),
    and its builds' planned and library KiB; a model without memory figures gets none."""
    for day, planned in ((1, 114_984), (2, 114_984), (3, 229_968)):
        tuned = bench_entry("m-native-b64-tuned", "m", "tuned", [0.002] * 5, speedup=10.0)
        tuned["extra_info"].update({"library": {"bytes": 195_928}, "planned_memory": {"planned_bytes": planned},
                                    "memory": {"stages": {"build": {"start_mib": 300.0, "peak_mib": 360.0 + day},
                                                          "measure": {"start_mib": 300.0, "peak_mib": 420.0}}}})
        run_file(tmp_path / f"run{day}.json", datetime(2026, 11, day, 2, 0),
                 [tuned, bench_entry("other-native-untuned", "other", "untuned", [0.02] * 5)])
    data = build_report(load_history([tmp_path]))
    section = data.sections[0]
    assert [c["title"] for c in section.memory_charts] == ["m on native"]
    traces = {t["name"]: t for t in data.figures[section.memory_charts[0]["id"]]["data"]}
    assert set(traces) == {"tuned b64 peak", "tuned b64 planned", "tuned b64 library"}
    assert traces["tuned b64 peak"]["text"][0] == "build 361 MiB<br>measure 420 MiB"
    planned = traces["tuned b64 planned"]["y"]
    assert [round(v, 3) for v in (planned if isinstance(planned, list) else _decode(planned))] == \
        [112.289, 112.289, 224.578]
    assert 'aria-label="memory trend: m on native"' in render_html(data)


def _decode(packed: dict) -> list[float]:
    """A plotly typed array ({"dtype", "bdata"}) as floats."""
    import base64

    import numpy as np

    return list(np.frombuffer(base64.b64decode(packed["bdata"]), dtype=packed["dtype"]))


def test_each_case_shows_the_smallest_slowdown_its_history_can_show(tmp_path: Path) -> None:
    """A quiet case's figure is under the 5% threshold; one whose runs spread 15% is above it, shown in bold."""
    import numpy as np

    rng = np.random.default_rng(3)
    for r in range(25):
        noisy = list(2e-3 * np.exp(0.15 * rng.standard_normal()) * (1 + 0.01 * rng.standard_normal(10)))
        quiet = list(1e-2 * (1 + 0.01 * rng.standard_normal(10)))
        run_file(tmp_path / f"run{r:02d}.json", datetime(2026, 10, 1, r % 24, 0),
                 [bench_entry("m-native-b64-tuned", "m", "tuned", noisy, speedup=5.0),
                  bench_entry("m-native-untuned", "m", "untuned", quiet)], commit=f"c{r:04d}")
    data = build_report(load_history([tmp_path]), charts=False)
    rows = {r["case"]: r for r in data.sections[0].rows}
    noisy_row, quiet_row = rows["m-native-b64-tuned"], rows["m-native-untuned"]
    assert 0.3 < noisy_row["visible_value"] < 1.5 and noisy_row["visible_over"]
    assert 0 < quiet_row["visible_value"] < 0.05 and not quiet_row["visible_over"]
    page = render_html(data)
    assert "smallest visible" in page and f"<b>{noisy_row['visible']}</b>" in page
    assert f"<b>{quiet_row['visible']}</b>" not in page and quiet_row["visible"] in page


def test_failed_skipped_and_missing_cases_listed(tmp_path: Path) -> None:
    """Non-passing outcomes of the latest run and cases that vanished are listed with reasons."""
    synthetic_history(tmp_path, runs=2, cases=2)
    outcomes = [{"case": "model1-native-b64-tuned", "outcome": "failed", "message": "tuning records applied to 0"},
                {"case": "m-gpu-untuned", "outcome": "skipped", "message": "no cuda device on this machine"}]
    run_file(tmp_path / "run9999.json", datetime(2027, 1, 1),
             [bench_entry("model0-native-untuned", "model0", "untuned", [0.01, 0.0101])], outcomes=outcomes)
    problems = {p["case"]: p for p in build_report(load_history([tmp_path]), charts=False).sections[0].problems}
    assert problems["model1-native-b64-tuned"]["outcome"] == "failed"
    assert problems["m-gpu-untuned"]["message"] == "no cuda device on this machine"
    assert problems["model0-native-b64-tuned"]["outcome"] == "missing"


def test_hostile_names_render_as_text(tmp_path: Path) -> None:
    """A model name or error message with markup is escaped, never executed."""
    evil = '<script>alert("x")</script>'
    run_file(tmp_path / "a.json", datetime(2026, 11, 1),
             [bench_entry(f"{evil}-native-untuned", evil, "untuned", [0.01, 0.011], target=evil)],
             outcomes=[{"case": evil, "outcome": "failed", "message": f"<img src=x onerror=alert(1)> {evil}"}])
    html = render_html(build_report(load_history([tmp_path])))
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # plotly.js, the figures' JSON and the page's own script; the name is in the JSON only as escaped text
    assert html.count("<script") == 3 and html.count("</script>") == 3
    assert "\\u003cscript\\u003e" in html or "&lt;script&gt;" in html


def test_change_points_are_listed_and_marked(tmp_path: Path) -> None:
    """A 15% step at run 20 of 30 appears in the section's table and as a marker in the tuned case's chart."""
    synthetic_history(tmp_path, runs=30, cases=1, slowdown_at=20)
    data = build_report(load_history([tmp_path]))
    [change] = data.sections[0].changes
    assert change["case"] == "model0-native-b64-tuned" and change["commits"] == "c0019..c0020"
    assert change["change"].startswith("+1") and data.change_points == 1
    figure = data.figures[data.sections[0].charts[0]["id"]]
    markers = [t for t in figure["data"] if t.get("name") == "change points"]
    assert len(markers) == 1 and "c0019..c0020" in markers[0]["text"][0]
    assert "c0019..c0020" in render_html(data)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_write_report_outputs_page_and_csv(tmp_path: Path, umask: int, mode: int) -> None:
    """write_report writes index.html and history.csv with the permissions the umask allows (a report is
    meant to be shared, so not mkstemp's private 0600 unless the user asked for it)."""
    synthetic_history(tmp_path / "runs", runs=3, cases=1)
    old = os.umask(umask)
    try:
        page, data = write_report([tmp_path / "runs"], tmp_path / "out")
    finally:
        os.umask(old)
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "out" / "history.csv").read_text().count("\n") == 3 * 2 + 1
    assert page.stat().st_mode & 0o777 == mode
    assert (tmp_path / "out" / "history.csv").stat().st_mode & 0o777 == mode
    assert "load_s" in data.timings and not list((tmp_path / "out").glob("*.tmp"))


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    """The 30-run report draws every chart in headless Chromium with no console errors, and hovering a point
    shows its run, commit, median, min, rounds and interval; a screenshot is kept."""
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium); CI installs it")
    synthetic_history(tmp_path / "runs", runs=30, cases=3, slowdown_at=20)
    page, data = write_report([tmp_path / "runs"], tmp_path / "report")
    default_dir = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
    shot = Path(os.environ.get("BENCH_SCREENSHOT_DIR", default_dir)) / "report-30-runs.png"
    shot.unlink(missing_ok=True)
    shot.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--hide-scrollbars", "--window-size=1300,2400", "--virtual-time-budget=10000"]
    proc = subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "error" in line.lower() or "uncaught" in line.lower()], console

    # Hover the 4th run of model0's tuned series (trace 0 of the first chart) and read the label from the DOM.
    first = data.sections[0].charts[0]["id"]
    dom = subprocess.run([browser, *flags, "--dump-dom", f"{page.as_uri()}#hover={first}:0:3"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL).stdout
    assert f'data-charts-ready="{len(data.figures)}"' in dom, dom[-2000:]
    hover = re.search(r'<g class="hoverlayer">(.*?)</g></svg>', dom, re.S)
    assert hover is not None, "no hover label drawn"
    label = re.sub(r"<[^>]+>", " ", hover.group(1))
    assert "tuned b64" in label and "commit c0003" in label and "2026-10-04" in label, label
    assert re.search(r"median [\d.]+ ms, min [\d.]+ ms", label) and "10 rounds, IQR" in label, label
    # Every point of every series is in the chart: 30 runs for each of model0's two series.
    assert len(re.findall(r'class="point"', dom)) >= 3 * 2 * 30


def test_rows_show_the_build_against_its_baseline_build(tmp_path: Path) -> None:
    """The latest run's paired ratio with its interval and pairs; "same" for a byte-identical build; empty
    without a baseline."""
    entries = []
    for model, paired in (("moved", {"ratio": 1.062, "low": 1.041, "high": 1.083, "pairs": 24, "identical": False}),
                          ("same", {"ratio": 1.0, "low": 1.0, "high": 1.0, "pairs": 0, "identical": True}),
                          ("none", None)):
        entry = bench_entry(f"{model}-native-b64-tuned", model, "tuned", [0.002] * 5, speedup=10.0)
        entry["extra_info"]["vs_baseline"] = paired
        entries.append(entry)
    run_file(tmp_path / "run.json", datetime(2026, 12, 2, 2, 0), entries)
    data = build_report(load_history([tmp_path]), charts=False)
    rows = {r["model"]: r["paired"] for r in data.sections[0].rows}
    assert rows == {"moved": "+6.2% (+4.1% .. +8.3%, 24 pairs)", "same": "same", "none": ""}
    assert "<td>+6.2% (+4.1% .. +8.3%, 24 pairs)</td>" in render_html(data)


def test_paired_changes_chain_across_accepted_baselines(tmp_path: Path) -> None:
    """Each run sits at its ratio times the level of the run its baseline came from; a baseline from outside the
    history starts at 1; byte-identical counts as 1; the section gets a paired chart."""
    from bench.history.report import paired_chain

    def entry(paired: dict[str, object] | None) -> dict[str, object]:
        e = bench_entry("m-native-b64-tuned", "m", "tuned", [0.002] * 5, speedup=10.0)
        e["extra_info"]["vs_baseline"] = paired
        return e

    def vs(ratio: float, base_run: str, identical: bool = False) -> dict[str, object]:
        return {"ratio": ratio, "low": ratio - 0.01, "high": ratio + 0.01, "pairs": 20, "identical": identical,
                "baseline": {"run_id": base_run}}

    run_file(tmp_path / "r1.json", datetime(2026, 12, 1, 2, 0), [entry(vs(1.01, "elsewhere"))])
    run_file(tmp_path / "r2.json", datetime(2026, 12, 2, 2, 0), [entry(vs(1.02, "20261201T020000-r1"))])
    run_file(tmp_path / "r3.json", datetime(2026, 12, 3, 2, 0), [entry(vs(1.03, "20261202T020000-r2"))])
    run_file(tmp_path / "r4.json", datetime(2026, 12, 4, 2, 0), [entry(vs(1.0, "20261203T020000-r3", True))])
    run_file(tmp_path / "r5.json", datetime(2026, 12, 5, 2, 0), [entry(None)])
    history = load_history([tmp_path])
    chain = paired_chain(history.results)
    assert [c[5] for c in chain] == [f"2026120{d}T020000-r{d}" for d in (1, 2, 3, 4)]
    assert [round(c[4], 6) for c in chain] == [1.01, round(1.01 * 1.02, 6), round(1.01 * 1.02 * 1.03, 6),
                                               round(1.01 * 1.02 * 1.03, 6)]
    data = build_report(history)
    chart = data.sections[0].paired_chart
    assert chart is not None and [t["name"] for t in data.figures[chart]["data"]] == \
        ["m-native-b64-tuned", "m-native-b64-tuned: chained"]
    assert f'id="{chart}"' in render_html(data)
    synthetic_history(tmp_path / "plain", runs=3, cases=1)
    assert build_report(load_history([tmp_path / "plain"])).sections[0].paired_chart is None


def test_status_is_the_gates_decision_not_a_plain_threshold(tmp_path: Path) -> None:
    """A last run 8% slower on a case whose runs spread +-15% is no regression for the gate, so the page does not
    flag it (a plain threshold on the medians would); the same 8% on a steady case is flagged, with the gate's
    reason on hover."""
    import numpy as np

    rng = np.random.default_rng(1)
    for run in range(12):
        entries = []
        for model, spread in (("noisy", 0.15), ("steady", 0.002)):
            level = 1.08 if run == 11 else 1 + spread * (1 if run % 2 else -1)
            samples = list(0.01 * level * (1 + 0.001 * rng.standard_normal(10)))
            entries.append(bench_entry(f"{model}-native-b64-tuned", model, "tuned", samples, speedup=10.0))
        run_file(tmp_path / f"r{run:02d}.json", datetime(2026, 11, 1 + run, 2, 0), entries)
    data = build_report(load_history([tmp_path]), charts=False)
    rows = {r["model"]: r for r in data.sections[0].rows}
    assert rows["noisy"]["vs_base"].startswith("+") and rows["noisy"]["status"] == ""
    assert rows["steady"]["status"] == "regression" and rows["steady"]["status_reason"].startswith("slower by +8")
    assert 'title="slower by +8' in render_html(data)


def test_charts_mark_where_the_tvm_changed_and_split_tvms_measured_side_by_side(tmp_path: Path) -> None:
    """Runs on 0.26.0 then on 0.27.0: a dashed line names the change. A run holding both TVMs' items (two TVMs
    under test) draws a series per TVM."""
    start = datetime(2026, 11, 1)
    for r in range(4):
        tvm = "0.26.0" if r < 2 else "0.27.0"
        run_file(tmp_path / f"run{r}.json", start.replace(day=r + 1),
                 [bench_entry("m-native-b64-tuned", "m", "tuned", [1e-3, 1.1e-3], tvm=tvm)], commit=f"c{r}")
    data = build_report(load_history([tmp_path]))
    figure = data.figures[data.sections[0].charts[0]["id"]]
    marks = [a["text"] for a in figure["layout"].get("annotations", [])]
    assert marks == ["TVM 0.26.0 -&gt; 0.27.0"]  # escaped like every user string in a chart
    assert data.tvm_versions == ["0.26.0", "0.27.0"]
    both = tmp_path / "both"
    run_file(both / "run.json", start, [bench_entry(f"m-native-tvm{t}-b64-tuned", "m", "tuned", [1e-3], tvm=t)
                                        for t in ("0.26.0", "0.27.0")])
    figure = build_report(load_history([both])).figures["chart-0"]
    assert sorted(t["name"] for t in figure["data"]) == ["tuned b64 on TVM 0.26.0", "tuned b64 on TVM 0.27.0"]
