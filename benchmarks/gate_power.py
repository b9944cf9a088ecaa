"""Measure the regression gate: false alarms on unchanged runs, and detection of real slowdowns.

1. A/A: run the suite ``--aa`` times with nothing changed, then gate each run
   against the others (leave-one-out: the rolling baseline is the other runs)
   and count the comparisons that fail.
2. Power: run the suite ``--power`` times with a real slowdown injected through
   the documented test hook TVM_BENCH_INJECT_SLOWDOWN (every timed call
   busy-waits an extra 5% or 10% of its own duration), and gate each run
   against the A/A runs; count how often the gate catches it.

Runs use the warm tuning cache, so only measurement varies. Prints both tables;
asserts nothing. Results (all benchmark JSONs) stay in --workdir for a look, and
``--reuse`` judges them again without measuring (e.g. with ``--repeats 3``: the
gate judging three runs of one build together, as ``gate --current A B C``).

    .venv/bin/python benchmarks/gate_power.py --suite suites/smoke.yaml --aa 21 --power 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.gate import DEFAULT_ALPHA, DEFAULT_WINDOW, gate_files  # noqa: E402
from bench.measure import SLOWDOWN_ENV  # noqa: E402


def run_suite(suite: Path, out: Path, slowdown: float, extra: list[str]) -> float:
    env = dict(os.environ)
    if slowdown:
        env[SLOWDOWN_ENV] = str(slowdown)
    else:
        env.pop(SLOWDOWN_ENV, None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q",
                           "--benchmark-json", str(out), *extra], cwd=REPO, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if not out.is_file():
        raise SystemExit(f"suite run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=REPO / "suites" / "smoke.yaml")
    parser.add_argument("--aa", type=int, default=21, help="unchanged runs (default 21)")
    parser.add_argument("--power", type=int, default=20, help="runs per injected slowdown (default 20)")
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--repeats", type=int, default=1,
                        help="judge groups of this many consecutive runs together (gate --current A B C)")
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "gate-power")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse runs already in --workdir (re-gate recorded runs, e.g. with another --alpha)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    aa_dir = args.workdir / "aa"
    aa_dir.mkdir(parents=True, exist_ok=True)
    for i in range(args.aa):
        out = aa_dir / f"aa{i:02d}.json"
        if not (args.reuse and out.is_file()):
            print(f"A/A run {i + 1}/{args.aa}: {run_suite(args.suite, out, 0.0, args.pytest_args):.0f} s", flush=True)
    aa_runs = sorted(aa_dir.glob("aa*.json"))[: args.aa]
    slowed: dict[float, list[Path]] = {}
    for slowdown in args.slowdowns:
        folder = args.workdir / f"slow{int(slowdown * 100):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.power):
            out = folder / f"run{i:02d}.json"
            if not (args.reuse and out.is_file()):
                secs = run_suite(args.suite, out, slowdown, args.pytest_args)
                print(f"slowdown {slowdown:.0%} run {i + 1}/{args.power}: {secs:.0f} s", flush=True)
        slowed[slowdown] = sorted(folder.glob("run*.json"))[: args.power]

    k = args.repeats
    print(f"\nA/A: each unchanged {'run' if k == 1 else f'group of {k} runs'} gated against the other runs "
          f"(window {args.window}, alpha {args.alpha:g})")
    false_alarms = 0
    groups = [aa_runs[i:i + k] for i in range(0, len(aa_runs) - k + 1, k)]
    for group in groups:
        others = [p for p in aa_runs if p not in group]
        verdict = gate_files(group, others, window=args.window, alpha=args.alpha)
        bad = [f"{c.case}:{c.status}" for c in verdict.cases if c.failing]
        false_alarms += bool(bad)
        ratios = ", ".join(f"{c.case.split('-')[0]}/{c.variant}={c.ratio - 1:+.1%}" for c in verdict.cases
                           if c.ratio is not None)
        print(f"  {'+'.join(p.stem for p in group)}: {'FAIL ' + ' '.join(bad) if bad else 'pass'}  ({ratios})")
    print(f"A/A false alarms: {false_alarms} of {len(groups)} comparisons")

    print(f"\nPower: {'runs' if k == 1 else f'groups of {k} runs'} with an injected slowdown gated against the "
          "A/A runs")
    print(f"{'slowdown':>9} {'caught':>12}   per case")
    for slowdown, runs in slowed.items():
        caught = 0
        per_case: dict[str, int] = {}
        groups = [runs[i:i + k] for i in range(0, len(runs) - k + 1, k)]
        for group in groups:
            verdict = gate_files(group, aa_runs, window=args.window, alpha=args.alpha)
            regressed = [c.case for c in verdict.cases if c.status == "regression"]
            for case in regressed:
                per_case[case] = per_case.get(case, 0) + 1
            caught += bool(regressed)
        cases = ", ".join(f"{c} {n}/{len(groups)}" for c, n in sorted(per_case.items()))
        print(f"{slowdown:>9.0%} {caught:>5} of {len(groups):<4}   {cases}")


if __name__ == "__main__":
    main()
