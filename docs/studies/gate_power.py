"""Measure the regression gate: false alarms on unchanged runs, and detection of real slowdowns.

1. A/A: run the suite ``--aa`` times with nothing changed. Right after each
   run, gate it as the nightly job does: against the rolling window of the runs
   before it (``--history`` plus this script's earlier A/A runs), re-measuring
   flagged cases ``--confirm`` times (real pytest re-runs, seconds after the
   run, as ``bench gate --confirm`` does). Count the runs that fail.
2. Power: run the suite ``--power`` times with a real slowdown injected through
   the documented test hook TVM_BENCH_INJECT_SLOWDOWN (every timed call
   busy-waits an extra 5% or 10% of its undisturbed duration; with
   ``--target GLOB`` only the matching items), and gate each run against the
   same history; count how often the gate catches it, per item. With
   ``--power-confirm next-runs`` a flagged run is confirmed by the next
   ``--confirm`` recorded runs of the same slowdown (full-suite runs a minute
   or two later) instead of fresh re-runs: cheaper, and no easier to pass.

Runs use the warm tuning cache, so only measurement varies. Prints both tables;
asserts nothing. All benchmark JSONs stay in --workdir; ``--reuse`` judges them
again without measuring (leave-one-out: each A/A run against the others),
reusing recorded re-measurements.

    .venv/bin/python docs/studies/gate_power.py --suite suites/smoke.yaml --aa 20 --power 20 \\
        --history results/earlier-aa -- --bench-cache-dir /tmp/warm-cache
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.history.confirm import Rerun, pytest_rerun  # noqa: E402
from bench.history.gate import DEFAULT_ALPHA, DEFAULT_WINDOW, STATISTICS, GateSettings, Verdict  # noqa: E402
from bench.history.judge import gate_files  # noqa: E402
from bench.history.load import read_run  # noqa: E402
from bench.stages.measure import SLOWDOWN_ENV  # noqa: E402

#: --target: the case-id glob the slowdown is aimed at (empty: every item).
TARGET = [""]


def suite_env(slowdown: float) -> dict[str, str]:
    env = dict(os.environ)
    if slowdown:
        env[SLOWDOWN_ENV] = f"{slowdown}:{TARGET[0]}" if TARGET[0] else str(slowdown)
    else:
        env.pop(SLOWDOWN_ENV, None)
    return env


def run_suite(suite: Path, out: Path, slowdown: float, extra: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q",
                           "--benchmark-json", str(out), *extra], cwd=REPO, env=suite_env(slowdown),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if not out.is_file():
        raise SystemExit(f"suite run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return time.perf_counter() - start


def recorded_or_fresh(run: Path, slowdown: float, extra: list[str]) -> Rerun:
    """Re-measure for real, unless this run's re-measurement is already recorded (--reuse)."""
    fresh = pytest_rerun(run, read_run(run).run_id, run.parent, " ".join(extra), env=suite_env(slowdown))

    def rerun(nodes: list[str], attempt: int) -> Path:
        done = run.parent / f"{run.stem}.confirm-{attempt}.json"
        return done if done.is_file() else fresh(nodes, attempt)

    return rerun


def following(runs: list[Path], index: int) -> Rerun:
    """Confirmation from the next recorded runs of the same condition (--power-confirm next-runs)."""
    return lambda nodes, attempt: runs[(index + attempt) % len(runs)]


def line(name: str, verdict: Verdict) -> str:
    bad = [f"{c.case}:{c.status}" for c in verdict.cases if c.failing]
    unconfirmed = [c.case for c in verdict.cases if c.status == "unconfirmed"]
    ratios = ", ".join(f"{c.case.split('-')[0]}/{c.variant}={c.ratio - 1:+.1%}" for c in verdict.cases
                       if c.ratio is not None)
    note = f" (unconfirmed: {' '.join(unconfirmed)})" if unconfirmed else ""
    return f"  {name}: {'FAIL ' + ' '.join(bad) if bad else 'pass'}{note}  [{ratios}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=REPO / "suites" / "smoke.yaml")
    parser.add_argument("--aa", type=int, default=20, help="unchanged runs (default 20)")
    parser.add_argument("--power", type=int, default=20, help="runs per injected slowdown (default 20)")
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--target", default="", metavar="GLOB",
                        help="slow only the items whose case id matches (e.g. 'mobilenet_v2-*-tuned'); default all")
    parser.add_argument("--history", type=Path, nargs="*", default=[],
                        help="earlier unchanged runs of the same suite on this machine (the baseline's start)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--statistic", choices=sorted(STATISTICS), default=None,
                        help="override the suite's gate.statistic")
    parser.add_argument("--confirm", type=int, default=2, help="re-measurements of a flagged case (default 2)")
    parser.add_argument("--power-confirm", choices=("rerun", "next-runs"), default="rerun",
                        help="how power runs are confirmed (default: rerun, as the A/A runs)")
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "gate-power")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse runs already in --workdir (re-gate recorded runs, e.g. with another --alpha)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    settings = GateSettings(alpha=args.alpha, statistic=args.statistic, window=args.window)
    TARGET[0] = args.target

    aa_dir = args.workdir / "aa"
    aa_dir.mkdir(parents=True, exist_ok=True)
    print(f"A/A: each unchanged run gated against the {args.window} runs before it "
          f"(alpha {args.alpha:g}, --confirm {args.confirm})", flush=True)
    false_alarms = 0
    aa_cases: dict[str, int] = {}
    aa_runs = [aa_dir / f"aa{i:02d}.json" for i in range(args.aa)]
    for i, out in enumerate(aa_runs):
        if not (args.reuse and out.is_file()):
            secs = run_suite(args.suite, out, 0.0, args.pytest_args)
            print(f"A/A run {i + 1}/{args.aa}: {secs:.0f} s", flush=True)
        others = [p for p in aa_runs if p != out and p.is_file()]
        verdict = gate_files(out, [*args.history, *others], rerun=recorded_or_fresh(out, 0.0, args.pytest_args),
                             settings=settings, confirm_times=args.confirm)
        false_alarms += verdict.failed
        for c in verdict.cases:
            if c.failing:
                aa_cases[c.case] = aa_cases.get(c.case, 0) + 1
        print(line(out.stem, verdict), flush=True)
    print(f"A/A false alarms: {false_alarms} of {len(aa_runs)} runs", flush=True)

    baseline = [*args.history, *aa_runs]
    caught: dict[float, tuple[int, dict[str, int]]] = {}
    for slowdown in args.slowdowns:
        folder = args.workdir / (f"slow{int(slowdown * 100):02d}" + (f"-{args.target}" if args.target else ""))
        folder.mkdir(parents=True, exist_ok=True)
        runs = [folder / f"run{i:02d}.json" for i in range(args.power)]
        for i, out in enumerate(runs):
            if not (args.reuse and out.is_file()):
                secs = run_suite(args.suite, out, slowdown, args.pytest_args)
                print(f"slowdown {slowdown:.0%} run {i + 1}/{args.power}: {secs:.0f} s", flush=True)
        hits = 0
        per_case: dict[str, int] = {}
        for i, out in enumerate(runs):
            rerun = (following(runs, i) if args.power_confirm == "next-runs"
                     else recorded_or_fresh(out, slowdown, args.pytest_args))
            verdict = gate_files(out, baseline, rerun=rerun, settings=settings, confirm_times=args.confirm)
            regressed = [c.case for c in verdict.cases if c.status == "regression"]
            for case in regressed:
                per_case[case] = per_case.get(case, 0) + 1
            hits += bool(regressed)
            print(line(f"{folder.name}/{out.stem}", verdict), flush=True)
        caught[slowdown] = (hits, per_case)

    print(f"\nA/A false alarms: {false_alarms} of {len(aa_runs)} runs"
          + (" (" + ", ".join(f"{c} {n}" for c, n in sorted(aa_cases.items())) + ")" if aa_cases else ""))
    print(f"Power ({args.power_confirm} confirmation):\n{'slowdown':>9} {'caught':>12}   per case")
    for slowdown, (hits, per_case) in caught.items():
        cases = ", ".join(f"{c} {n}/{args.power}" for c, n in sorted(per_case.items()))
        print(f"{slowdown:>9.0%} {hits:>5} of {args.power:<4}   {cases}")


if __name__ == "__main__":
    main()
