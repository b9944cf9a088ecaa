"""How long does `python -m bench report` take on a long history?

Generates a synthetic history (default 1,000 runs x 20 cases, i.e. 10 models x
untuned/tuned) in a temporary folder and times loading and rendering, best and
median of several repeats. Prints the numbers; asserts nothing.

    .venv/bin/python benchmarks/report_render.py [--runs 1000] [--cases 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_report
from tests.helpers import synthetic_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=10, help="models; each gives an untuned and a tuned case")
    parser.add_argument("--repeat", type=int, default=3)
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
              f"page {page.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
