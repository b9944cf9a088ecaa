"""``python -m bench report|gate|changes|baseline``: the harness's commands outside pytest."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.history.gate import DEFAULT_ALPHA, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from bench.history.report import DEFAULT_WINDOW as REPORT_WINDOW
from bench.options import fraction, non_negative_int, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_report_parser, _gate_parser, _changes_parser, _baseline_parser):
        add(sub)
    return parser


def _report_parser(sub: Any) -> None:
    rep = sub.add_parser("report", help="render the HTML trend report from benchmark JSON files",
                         description="Load benchmark JSON files, folders of them and pytest-benchmark storage "
                                     "(.benchmarks/), and write OUT/index.html (one offline page: summary tables, "
                                     "change points, interactive trend charts) plus OUT/history.csv. Damaged "
                                     "files found in a folder are listed and moved to its quarantine/ folder.")
    rep.add_argument("paths", nargs="+", metavar="PATH", help="benchmark JSON files or folders")
    rep.add_argument("-o", "--output", type=Path, default=Path("reports"), metavar="DIR",
                     help="output folder (default: reports)")
    rep.add_argument("--threshold", type=fraction, default=None, metavar="FRACTION",
                     help="override every case's threshold for the gate's status and the charts' marks (default: "
                          f"the suite's gate.threshold, else {DEFAULT_THRESHOLD * 100:.0f}%%)")
    rep.add_argument("--window", type=positive_int, default=REPORT_WINDOW, metavar="N",
                     help=f"runs in the rolling baseline (default {REPORT_WINDOW})")


def _gate_parser(sub: Any) -> None:
    gate = sub.add_parser(
        "gate", help="fail on real regressions of a run against its history or a pinned baseline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare every case of --current with its baseline on the same machine (the rolling median "
                    "of the last --window runs in --history, or --baseline). Each run's location is the min of "
                    "its rounds (suite gate.statistic: min or median). A case regresses when its slowdown is "
                    "significant (hierarchical bootstrap CI of the ratio, alpha split across cases) and not shown "
                    "to be below its threshold (suite gate.threshold, default 5%); with --confirm N it must also "
                    "persist when the case is measured N more times. Top-k mismatches, errored cases, cases "
                    "missing from the run and tuned cases slower than the suite's gate.min_speedup always fail. "
                    "A case the run timed against its baseline build (see `baseline`) is decided by that paired "
                    "ratio instead, with the same rule, and needs no history of this machine.",
        epilog="exit status: 0 pass, 1 regression or failure, 2 usage or input error")
    gate.add_argument("--current", type=Path, nargs="+", required=True, metavar="RUN.json",
                      help="the run to judge; several runs of the same build (repeats, e.g. the suite run 3 times) "
                           "are judged together, which averages out run-to-run noise")
    gate.add_argument("--history", type=Path, nargs="+", default=[], metavar="PATH",
                      help="earlier runs: JSON files, folders, pytest-benchmark storage (damaged files found in "
                           "a folder are moved to its quarantine/)")
    gate.add_argument("--baseline", type=Path, default=None, metavar="PINNED.json",
                      help="compare with this one run instead of the rolling history")
    gate.add_argument("--window", type=positive_int, default=DEFAULT_WINDOW, metavar="N",
                      help=f"runs in the rolling baseline (default {DEFAULT_WINDOW})")
    gate.add_argument("--alpha", type=fraction, default=DEFAULT_ALPHA, metavar="P",
                      help=f"false-alarm rate per run, split across its cases (default {DEFAULT_ALPHA:g})")
    gate.add_argument("--threshold", type=fraction, default=None, metavar="FRACTION",
                      help="override every case's threshold (default: the suite's, else 5%%)")
    gate.add_argument("--statistic", choices=("min", "median"), default=None,
                      help="override every case's statistic (default: the suite's gate.statistic, else min)")
    gate.add_argument("--confirm", type=non_negative_int, default=0, metavar="N",
                      help="re-measure each regressed case N times (pytest on its node id, run from the folder "
                           "the suite ran in) and fail only if the slowdown persists (default 0; nightly: 2)")
    gate.add_argument("--confirm-args", default="", metavar="ARGS",
                      help="extra pytest arguments for the re-measurements, "
                           "e.g. --confirm-args=\"--bench-cache-dir /c\"")
    gate.add_argument("--confirm-dir", type=Path, default=None, metavar="DIR",
                      help="where re-measurements are written (default: next to the last --current file)")
    gate.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the verdict as JSON")
    gate.add_argument("--markdown", type=Path, default=None, metavar="PATH",
                      help="write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)")
    gate.add_argument("--require-history", action="store_true",
                      help="stop (exit 2) when --history is missing, holds damaged files or has no earlier run of "
                           "these cases on this machine, instead of passing every case as new; for nightly jobs, "
                           "so a lost history is noticed (leave it off the very first run)")
    gate.add_argument("--allow-machine-mismatch", action="store_true",
                      help="compare with a pinned baseline measured on another machine")


def _changes_parser(sub: Any) -> None:
    changes = sub.add_parser(
        "changes", help="list the steps in each case's history: when, how big, how sure, between which commits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find persistent steps in each case's series of runs (per machine; each run's location is "
                    "the gate's statistic, the min of its rounds unless the suite says median). Steps come from "
                    "asv's step detection; each is kept when a Mann-Whitney U test of the runs on either side is "
                    "significant (--max-pvalue) and it is at least --min-change. A step lies between the last "
                    "run at the old level and the first at the new one; their commits give the range to bisect "
                    "(git log A..B).",
        epilog="exit status: 0 listed (found or not), 2 usage or input error")
    changes.add_argument("paths", nargs="+", metavar="HISTORY",
                         help="benchmark JSON files or folders (damaged files are moved to quarantine/)")
    changes.add_argument("--since", type=_date, default=None, metavar="DATE",
                         help="only steps whose new level began on or after DATE (YYYY-MM-DD[THH:MM]); the whole "
                              "history is still used to find them")
    changes.add_argument("--statistic", choices=("min", "median"), default=None,
                         help="override every case's statistic (default: the suite's gate.statistic, else min)")
    changes.add_argument("--max-pvalue", type=fraction, default=None, metavar="P",
                         help="keep steps whose test p-value is below P (default 0.01)")
    changes.add_argument("--min-change", type=fraction, default=None, metavar="FRACTION",
                         help="ignore steps smaller than this (default 2%%)")
    changes.add_argument("-k", "--case", default=None, metavar="SUBSTRING",
                         help="only cases whose id contains SUBSTRING")
    changes.add_argument("--json", action="store_true", help="print the steps as JSON instead of a table")


def _baseline_parser(sub: Any) -> None:
    base = sub.add_parser(
        "baseline", help="accept a run's builds as their cases' baselines, timed against in later runs",
        description="Each TVM item keeps the library it built and names it in the run's JSON. `accept` copies "
                    "each passing item's library, with what made it (model, TVM version, tuning key, run and "
                    "commit), into the baseline folder; later runs time every build against its case's baseline "
                    "in interleaved pairs in one process (suite timing.paired), and the gate decides such a case "
                    "from that ratio. Accept a run after its gate passed.",
        epilog="exit status: 0 accepted, 2 usage or input error")
    base_sub = base.add_subparsers(dest="action", required=True)
    accept = base_sub.add_parser("accept", help="make a run's builds the baselines")
    accept.add_argument("run", type=Path, metavar="RUN.json", help="the run (its --benchmark-json file)")
    accept.add_argument("--baseline-dir", type=Path, default=None, metavar="DIR",
                        help="the baseline folder (default: CACHE/baselines, CACHE as --cache-dir)")
    accept.add_argument("--cache-dir", default=None, metavar="PATH",
                        help="the harness's cache (default: $TVM_BENCH_CACHE or ~/.cache/tvm-bench)")


def _date(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-25 or 2026-11-25T02:00, got {value!r}") \
            from None


def _changes(args: argparse.Namespace) -> int:
    import json

    from bench.history.changes import DEFAULT_MAX_PVALUE, DEFAULT_MIN_CHANGE, find_changes, render_changes
    from bench.history.load import load_history

    history = load_history(args.paths)
    for problem in history.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    results = history.results
    if results.empty:
        print("error: no usable results in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    if args.case:
        results = results[results["case"].astype(str).str.contains(args.case, regex=False)]
    points = find_changes(results, statistic=args.statistic,
                          max_pvalue=DEFAULT_MAX_PVALUE if args.max_pvalue is None else args.max_pvalue,
                          min_change=DEFAULT_MIN_CHANGE if args.min_change is None else args.min_change,
                          since=args.since)
    if args.json:
        print(json.dumps([p.to_dict() for p in points], indent=1))
    else:
        print(render_changes(points, runs=history.runs["run_id"].nunique(), cases=results["case"].nunique()))
    return 0


def _gate(args: argparse.Namespace) -> int:
    import os

    from bench.cache import atomic_write
    from bench.errors import GateError
    from bench.history.gate import GateSettings, render_markdown, render_text
    from bench.history.judge import gate_files

    if args.baseline is None and not args.history:
        raise GateError("give --history (earlier runs) or --baseline (a pinned run)")
    rerun = None
    if args.confirm:
        from bench.errors import HistoryError
        from bench.history.confirm import pytest_rerun
        from bench.history.load import read_run

        try:
            run_id = read_run(args.current[-1]).run_id
        except HistoryError as err:
            raise GateError(f"--current {err}") from None
        rerun = pytest_rerun(args.current[-1], run_id, args.confirm_dir, args.confirm_args,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    settings = GateSettings(alpha=args.alpha, threshold=args.threshold, statistic=args.statistic, window=args.window)
    verdict = gate_files(args.current, args.history, args.baseline, settings=settings,
                         allow_machine_mismatch=args.allow_machine_mismatch, confirm_times=args.confirm, rerun=rerun,
                         require_history=args.require_history)
    print(render_text(verdict))
    markdown = render_markdown(verdict)
    if args.json is not None:
        atomic_write(args.json, verdict.to_json())
    if args.markdown is not None:
        atomic_write(args.markdown, markdown)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(markdown)
    return verdict.exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            from bench.history.report import write_report

            path, data = write_report(args.paths, args.output, args.threshold, args.window)
            for problem in data.skipped_files:
                print(f"skipped: {problem}", file=sys.stderr)
            print(f"wrote {path} ({data.runs} runs, {len(data.sections)} machine(s)) "
                  f"and {path.parent / 'history.csv'} in {sum(data.timings.values()):.1f} s")
            return 0
        if args.command == "gate":
            return _gate(args)
        if args.command == "changes":
            return _changes(args)
        if args.command == "baseline":
            from bench.cache import cache_root
            from bench.history.baseline import accept, default_dir

            root = args.baseline_dir or default_dir(cache_root(args.cache_dir))
            lines = accept(args.run, root)
            print("\n".join(lines))
            print(f"baselines in {root}: {sum(line.startswith('accepted') for line in lines)} accepted, "
                  f"{sum(line.startswith('skipped') for line in lines)} skipped")
            return 0
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
