"""``python -m bench report|gate``: the harness's commands outside pytest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import BenchError


def _fraction(value: str) -> float:
    try:
        out = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {value!r}") from None
    if not 0 <= out < 10:
        raise argparse.ArgumentTypeError(f"threshold out of range: {value!r}")
    return out


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="render the HTML trend report from benchmark JSON files",
                         description="Load benchmark JSON files, folders of them and pytest-benchmark storage "
                                     "(.benchmarks/), and write OUT/index.html plus OUT/history.csv.")
    rep.add_argument("paths", nargs="+", metavar="PATH", help="benchmark JSON files or folders")
    rep.add_argument("-o", "--output", type=Path, default=Path("reports"), metavar="DIR",
                     help="output folder (default: reports)")
    rep.add_argument("--threshold", type=_fraction, default=0.05, metavar="FRACTION",
                     help="highlight changes larger than this (default 5%%)")
    rep.add_argument("--window", type=_positive_int, default=10, metavar="N",
                     help="runs in the rolling baseline (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            from bench.report import write_report

            path, data = write_report(args.paths, args.output, args.threshold, args.window)
            for problem in data.skipped_files:
                print(f"skipped: {problem}", file=sys.stderr)
            print(f"wrote {path} ({data.runs} runs, {len(data.sections)} machine(s)) "
                  f"and {path.parent / 'history.csv'} in {sum(data.timings.values()):.1f} s")
            return 0
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
