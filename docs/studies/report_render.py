"""How long does `python -m bench report` take on a long history?

Generates a synthetic history (default 1,000 runs x 20 cases, i.e. 10 models x
untuned/tuned) in a temporary folder and times loading and rendering, best and
median of several repeats, then (if chromium is installed) opens the page in
headless Chromium and reads how long plotly took to draw every chart (the
page's ``data-render-ms``) and the browser's wall time. Prints the numbers;
asserts nothing.

    .venv/bin/python docs/studies/report_render.py [--runs 1000] [--cases 10] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.history.report import write_report
from bench.testing.results import synthetic_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=10, help="models; each gives an untuned and a tuned case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="copy the last page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        synthetic_history(root / "runs", runs=args.runs, cases=args.cases)
        print(f"generated {args.runs} runs x {2 * args.cases} cases in {time.perf_counter() - t0:.1f} s")
        totals, loads, renders = [], [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            page, data = write_report([root / "runs"], root / f"out{i}")
            totals.append(time.perf_counter() - start)
            loads.append(data.timings["load_s"])
            renders.append(data.timings["render_s"])
        print(f"report over {args.runs} runs x {2 * args.cases} cases, {args.repeat} repeats: "
              f"total best {min(totals):.2f} s, median {statistics.median(totals):.2f} s "
              f"(load median {statistics.median(loads):.2f} s, "
              f"compute+render median {statistics.median(renders):.2f} s); "
              f"page {page.stat().st_size / 1e6:.1f} MB, {data.change_points} change points")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(page, args.keep / "index.html")
        browser = shutil.which("chromium") or shutil.which("google-chrome")
        if browser is None:
            print("chromium not installed: browser time not measured")
            return
        for i in range(args.repeat):
            start = time.perf_counter()
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                  f"--user-data-dir={root / 'profile'}", "--virtual-time-budget=60000", "--dump-dom",
                                  page.as_uri()], capture_output=True, text=True, timeout=300).stdout
            wall = time.perf_counter() - start
            drawn = re.search(r'data-render-ms="(\d+)"', dom)
            charts = re.search(r'data-charts-ready="(\d+)"', dom)
            print(f"headless Chromium, try {i + 1}: {charts.group(1) if charts else 'NO'} charts drawn in "
                  f"{drawn.group(1) if drawn else '?'} ms; browser start to DOM dump {wall:.1f} s")


if __name__ == "__main__":
    main()
