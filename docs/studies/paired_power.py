"""Power of the paired gate: a real single-kernel regression caught, and no false alarm on an unchanged build.

For one suite model and variant (its tuning database from ``--cache-dir``),
this builds a regressed pair and an unchanged pair, each a current build
against a baseline build, and times each pair in ``--runs`` fresh processes
exactly as a suite item times its build against its baseline
(``bench.stages.measure.interleaved_pairs``, ``bench.stages.paired``, the suite's
``timing.paired`` and ``gate.threshold``).

* ``--variant tuned``: baseline A is the case's tuned build; the unchanged
  current A2 is A exported again (the same code in its own library); the
  regressed current B is built from the database without the best ``r``
  records of one task, so that kernel runs a worse schedule of its own
  tuning.
* ``--variant untuned``: the unchanged pair is the untuned build U against
  itself exported again. The regressed pair's baseline is U with one task
  on its best tuned record (every other kernel as untuned); its current
  build has lost that schedule (U itself), or, where that costs too much,
  runs a worse record of the same task.

The regression is picked among ``--candidates`` tasks (largest FLOPs first)
(or ``--tasks``) and ``--ranks`` ranks each (tuned: the best 1, 2, 4, ...
records dropped; untuned: records spread from the task's worst to its best): each candidate is timed against its
baseline in a fresh process (``--pick-pairs`` pairs), and the first whose
cost lands in [target, 1.4 target] is taken (else the one nearest 1.1
target). The interval's alpha is the one a run of the whole suite uses
(``timing.paired.alpha`` split across its cases), which is also the gate's.

    .venv/bin/python docs/studies/paired_power.py suites/smoke.yaml mobilenet_v2 --cache-dir /tmp/smoke-cache \\
        --variant tuned --runs 20
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "docs" / "studies"))

def _records(work_dir: Path) -> list[str]:
    return (work_dir / "database_tuning_record.json").read_text().splitlines()


def _cost(record: Any) -> float:
    secs = [float(s) for s in (record[1][1] or [])]
    return statistics.fmean(secs) if secs else math.inf


def _ranked(lines: list[str], workload: int) -> list[int]:
    """Line indexes of one workload's records, fastest first."""
    mine = [(i, json.loads(line)) for i, line in enumerate(lines) if line.strip() and json.loads(line)[0] == workload]
    return [i for i, rec in sorted(mine, key=lambda item: _cost(item[1])) if math.isfinite(_cost(rec))]


def database_variant(work_dir: Path, workload: int, rank: int, out: Path, only: bool) -> bool:
    """A copy of a MetaSchedule JSON database: without the ``rank`` fastest records of ``workload``
    (``only`` False), or holding only its record of that rank (``only`` True). False if it has too few."""
    lines = _records(work_dir)
    ranked = _ranked(lines, workload)
    if len(ranked) <= rank:
        return False
    out.mkdir(parents=True, exist_ok=True)
    (out / "database_workload.json").write_bytes((work_dir / "database_workload.json").read_bytes())
    if only:
        kept = [ranked[rank]]
    else:
        dropped = set(ranked[:rank])
        kept = [i for i, line in enumerate(lines) if line.strip() and i not in dropped]
    (out / "database_tuning_record.json").write_text("".join(lines[i] + "\n" for i in kept))
    return True


def workloads_by_flops(work_dir: Path, limit: int) -> list[int]:
    """Workload indexes with records, largest FLOPs first."""
    from tvm.s_tir.analysis import estimate_tir_flops
    from tvm.s_tir.meta_schedule.database import Workload

    workloads = [json.loads(line) for line in (work_dir / "database_workload.json").read_text().splitlines() if line]
    have = {json.loads(line)[0] for line in _records(work_dir) if line.strip()}
    sized = []
    for index, entry in enumerate(workloads):
        if index not in have:
            continue
        try:
            flops = float(estimate_tir_flops(Workload.from_json(entry).mod))
        except Exception:  # a workload the estimator cannot read is left out
            continue
        sized.append((flops, index))
    return [index for _, index in sorted(sized, reverse=True)[:limit]]


def time_pair(current: Path, baseline: Path, args: argparse.Namespace, seed: int,
              pairs: int | None = None) -> dict[str, Any]:
    """``current`` against ``baseline`` as a suite item times its build against its baseline build."""
    from bench.stages import build, paired
    from bench.stages.measure import interleaved_pairs

    cases, session = open_case(args)
    case = cases["tuned"]
    model = session.model(case)
    spec = case.timing.paired
    threshold = case.suite.model_gate(case.model_index).threshold
    a = build.load_exported(current, model, case.target)
    b = build.load_exported(baseline, model, case.target)
    # Seconds per call as a suite item knows it (its rounds' median, after warm-up): calls timed for 0.5 s,
    # after 5 warm-up calls. A few probes in a fresh process can catch its cold start and size blocks wrong.
    for _ in range(5):
        a.run()
    calls, began = 0, time.perf_counter()
    while time.perf_counter() - began < 0.5:
        a.run()
        calls += 1
    per_call = (time.perf_counter() - began) / calls
    block_calls = max(1, math.ceil(spec.block_time / per_call))
    alpha = args.alpha  # what a suite run's worker uses: timing.paired.alpha / the run's cases
    began = time.perf_counter()
    result, capped = interleaved_pairs(
        a.run, b.run, block_calls, min_pairs=pairs or spec.min_pairs, max_pairs=pairs or spec.max_pairs,
        max_time=spec.max_time if not pairs else 600, seed=seed,
        settled=(lambda logs: False) if pairs else
        (lambda logs: paired.settled(paired.estimate(logs, alpha), threshold)))
    seconds = time.perf_counter() - began
    logs = [math.log(c / b) for c, b in result]
    est = paired.estimate(logs, alpha)
    return {"ratio": est.ratio, "low": est.low, "high": est.high, "pairs": est.pairs, "capped": capped,
            "log_ratios": logs, "block_calls": block_calls, "per_call_s": per_call, "alpha": alpha,
            "decision": paired.decide(est, threshold), "visible": est.visible, "seconds": seconds,
            "threshold": threshold}


def open_case(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from kernel_profile import open_model

    return open_model(argparse.ArgumentParser(), args, "tuned")


def child(args: argparse.Namespace, current: Path, baseline: Path, seed: int, pairs: int | None = None
          ) -> dict[str, Any]:
    """One fresh process timing ``current`` against ``baseline``."""
    cmd = [sys.executable, __file__, str(args.suite), args.model, "--cache-dir", str(args.cache_dir),
           "--alpha", repr(args.alpha), "--child", str(current), str(baseline), "--seed", str(seed)]
    if pairs:
        cmd += ["--child-pairs", str(pairs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"child failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line[7:])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("model", help="model name in the suite; its first tuned budget is used")
    parser.add_argument("--cache-dir", type=Path, required=True, help="tuning cache holding the case's database")
    parser.add_argument("--variant", choices=("tuned", "untuned"), default="tuned",
                        help="the item whose build is regressed (default tuned)")
    parser.add_argument("--runs", type=int, default=20, help="fresh processes for each pair (default 20)")
    parser.add_argument("--target", type=float, default=0.05, help="slowdown the regression should cost (0.05)")
    parser.add_argument("--candidates", type=int, default=8, help="tasks tried, largest first (default 8)")
    parser.add_argument("--ranks", type=int, default=3,
                        help="ranks tried per task: records dropped (tuned) or worse records used (untuned) (3)")
    parser.add_argument("--tasks", type=int, nargs="+", help="workload indexes to try instead of the largest")
    parser.add_argument("--pick-pairs", type=int, default=40, help="pairs timing each candidate (default 40)")
    parser.add_argument("--alpha", type=float, default=None,
                        help="the paired interval's alpha (default: the suite's timing.paired.alpha / its cases, "
                             "as in a run of the whole suite)")
    parser.add_argument("--workdir", type=Path, default=Path("results/paired-power"))
    parser.add_argument("--child", nargs=2, type=Path, metavar=("CURRENT", "BASELINE"), help=argparse.SUPPRESS)
    parser.add_argument("--child-pairs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print("RESULT " + json.dumps(time_pair(args.child[0], args.child[1], args, args.seed, args.child_pairs)),
              flush=True)
        return 0

    from bench.stages import build
    from bench.suite.case import expand
    from bench.suite.schema import load_suite

    if args.alpha is None:
        expanded = expand(load_suite(args.suite))
        args.alpha = expanded[0].timing.paired.alpha / len(expanded)
    cases, session = open_case(args)
    case = cases["tuned"]
    model = session.model(case)
    tuned, compiled = session.tuned_compiled(case, model)
    prepared = session.prepared(case, model)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    item = case.id if args.variant == "tuned" else case.id.rsplit("-", 2)[0] + "-untuned"
    if args.variant == "tuned":
        steady = build.export_library(compiled, case.target, work / "A.so", "", "")
    else:
        steady = build.export_library(session.untuned_compiled(case, model, prepared), case.target, work / "U.so", "",
                                      "")
    # the same code exported again, in a library of its own
    again = build.export_library(compiled if args.variant == "tuned" else
                                 session.untuned_compiled(case, model, prepared), case.target,
                                 work / f"{steady.stem}2.so", "", "")
    print(f"{item}: {tuned.trials} trials, {tuned.tasks} tasks; database {tuned.work_dir}; alpha "
          f"{args.alpha:.5f}", flush=True)

    def variant_lib(workload: int, rank: int, only: bool) -> Path:
        db = work / f"db-{workload}-{rank}{'-only' if only else ''}"
        database_variant(tuned.work_dir, workload, rank, db, only=only)
        built = build.compile_executable(prepared, model, case.target, "", "", work_dir=db,
                                         prepack=case.weight_prepack)
        return build.export_library(built, case.target, work / f"{db.name}.so", "", "")

    picked: tuple[float, Path, Path, str] | None = None
    tried: list[tuple[float, Path, Path, str]] = []
    tasks = args.tasks or workloads_by_flops(tuned.work_dir, args.candidates)
    for workload in tasks:
        n = len(_ranked(_records(tuned.work_dir), workload))
        best = variant_lib(workload, 0, True) if args.variant == "untuned" else steady
        if args.variant == "tuned":
            # current: the database without the task's best 1, 2, 4, ... records; baseline: the tuned build
            plan = [(rank, f"task {workload} without its {rank} best record(s)")
                    for rank in (2**i for i in range(args.ranks)) if rank < n]
        else:
            # baseline: untuned but for the task's best record; current: the task on no record at all (the
            # untuned build itself: the most this task can cost), then, if that costs too much, on worse records
            # of its own, worst first, each costing more than the one before
            worse = sorted({round(1 + i * (n - 2) / max(1, args.ranks - 1)) for i in range(args.ranks)}, reverse=True)
            plan = [(-1, f"task {workload}'s tuned record lost (untuned)")]
            plan += [(rank, f"task {workload} on its record of rank {rank + 1} instead of its best")
                     for rank in worse if 0 < rank < n]
        for rank, what in plan:
            if args.variant == "tuned":
                current, baseline = variant_lib(workload, rank, False), steady
            else:
                current, baseline = (steady if rank < 0 else variant_lib(workload, rank, True)), best
            cost = child(args, current, baseline, seed=workload * 10 + rank, pairs=args.pick_pairs)["ratio"] - 1
            print(f"  {what}: costs {cost:+.2%} side by side", flush=True)
            tried.append((cost, current, baseline, what))
            if args.target <= cost <= args.target * 1.4:
                picked = tried[-1]
                break
            if args.variant == "untuned" and rank < 0 and cost < args.target:
                break  # losing the task's record altogether costs less than the target: no record of it can
            if rank >= 0 and cost > args.target * 1.4:
                break  # further along the plan only costs more
        if picked:
            break
    if picked is None:
        if not tried:
            print("no candidate regression could be built", file=sys.stderr)
            return 1
        picked = min(tried, key=lambda t: abs(t[0] - args.target * 1.1))
    cost, b_current, b_baseline, what = picked
    print(f"regression: {what}, {cost:+.2%} side by side when picked", flush=True)

    pairs = {"regressed": (b_current, b_baseline), "unchanged": (again, steady)}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in pairs}
    for run in range(args.runs):
        for name, (current, baseline) in pairs.items():
            r = child(args, current, baseline, seed=zlib.crc32(f"{name}{run}".encode()))
            rows[name].append(r)
            print(f"  run {run + 1:2d} {name}: {r['ratio'] - 1:+.2%} (CI {r['low'] - 1:+.2%} .. "
                  f"{r['high'] - 1:+.2%}), {r['pairs']} pairs, {r['seconds']:.1f} s: {r['decision']}", flush=True)

    threshold = rows["regressed"][0]["threshold"]
    print(f"\n{item}: regression = {what} ({cost:+.2%} when picked), threshold {threshold:.0%}, "
          f"{args.runs} fresh processes each, alpha {args.alpha:.5f}")
    print(f"{'pair':<10} {'slower':>7} {'interval > 1':>12} {'median change':>13} {'range':>18} "
          f"{'visible med/max':>16} {'pairs':>6} {'capped':>6} {'seconds':>8}")
    for name, results in rows.items():
        ratios = [r["ratio"] - 1 for r in results]
        vis = [r["visible"] for r in results]
        print(f"{name:<10} {sum(r['decision'] == 'slower' for r in results):>4}/{len(results):<2} "
              f"{sum(r['low'] > 1 for r in results):>9}/{len(results):<2} "
              f"{statistics.median(ratios):>+13.2%} {f'{min(ratios):+.2%} .. {max(ratios):+.2%}':>18} "
              f"{f'{statistics.median(vis):.2%}/{max(vis):.2%}':>16} "
              f"{statistics.median(r['pairs'] for r in results):>6.0f} {sum(r['capped'] for r in results):>6} "
              f"{statistics.median(r['seconds'] for r in results):>8.1f}")
    (work / "power.json").write_text(json.dumps({"item": item, "regression": what, "picked_cost": cost,
                                                 "alpha": args.alpha, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
