"""Where a tuned build's time goes: each kernel's share, GFLOP/s and % of the peak, inside the network.

Builds one suite case from its tuning cache (give the cache of a run that
tuned it), measures the machine's peak (best of ``--peak-probes`` probes, as
bench.stages.peak does once), and times every kernel inside the network by VM
instrumentation (median of ``--repeats`` runs of 20 calls). Per kernel: ms per
inference, calls, GFLOP/s from MetaSchedule's FLOP estimate of its task, % of
the peak, and what its best tuning record said. It ends with what the
network's kernels would take if each ran at the peak: the most that better
kernels could still win.

    .venv/bin/python docs/studies/kernel_profile.py suites/nightly.yaml resnet50 --cache-dir /tmp/nightly-cache
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "docs" / "studies"))


def open_model(parser: argparse.ArgumentParser, args: argparse.Namespace, *variants: str) -> tuple[Any, Any]:
    """The suite model's first case of each variant (e.g. tuned, ort), and a session on ``--cache-dir``, in a
    process running TVM on the target's thread count (exits with the reason otherwise)."""
    from bench.run.session import BenchSession
    from bench.suite.case import expand
    from bench.suite.schema import load_suite
    from bench.suite.target import THREADS_ENV, tvm_threads

    cases: dict[str, Any] = {}
    for case in expand(load_suite(args.suite)):
        if case.model.name == args.model:
            cases.setdefault(case.variant, case)
    if missing := [v for v in variants if v not in cases]:
        parser.error(f"{args.suite}: model {args.model!r} has no {' or '.join(missing)} case")
    threads = cases[variants[0]].target.threads
    os.environ.setdefault(THREADS_ENV, str(threads))
    if tvm_threads() != threads:
        parser.error(f"TVM runs {tvm_threads()} threads here, the target needs {threads}")
    return cases, BenchSession(args.cache_dir, progress=print)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("model", help="model name in the suite; its first tuned budget is used")
    parser.add_argument("--cache-dir", type=Path, required=True, help="tuning cache holding the case's database")
    parser.add_argument("--repeats", type=int, default=3, help="instrumented runs of 20 calls (default 3)")
    parser.add_argument("--peak-probes", type=int, default=3, help="peak measurements, best kept (default 3)")
    parser.add_argument("--top", type=int, default=0, help="print only the N slowest kernels (default all)")
    args = parser.parse_args()

    from tuning_curve import kernel_profile, recorded_ms
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    from bench.stages import build
    from bench.stages.peak import measure_peak

    cases, session = open_model(parser, args, "tuned")
    tuned = cases["tuned"]
    model = session.model(tuned)
    prepared = session.prepared(tuned, model)
    result, compiled = session.tuned_compiled(tuned, model)
    peak = max(measure_peak(tuned.target.threads).measured_gflops for _ in range(args.peak_probes))
    tasks = ms.relax_integration.extract_tasks(build.tuning_module(prepared, tuned.weight_prepack),
                                               tuned.target.tvm(), {})
    flops = {t.task_name: float(estimate_tir_flops(t.dispatched[0])) for t in tasks}
    records = recorded_ms(prepared, tuned, result.work_dir)
    runs = [{name: (s, n) for name, s, n in kernel_profile(compiled, model)} for _ in range(args.repeats)]
    rows = []
    for name in runs[0]:
        seconds = statistics.median(run[name][0] for run in runs if name in run)
        calls = runs[0][name][1]
        task = name.removesuffix("_prepacked")
        work = flops[task] * calls if task in flops else None
        said = records[task] * calls if task in records else None
        rows.append((name, seconds * 1e3, calls, work / seconds / 1e9 if work else None, said, work))
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    work_total = sum(r[5] for r in rows if r[5])
    print(f"\n{tuned.id}: {total:.2f} ms in kernels, {work_total / 1e9:.2f} GFLOP, "
          f"{work_total / total / 1e6:.1f} GFLOP/s; peak {peak:.1f} GFLOP/s (best of {args.peak_probes})")
    print(f"{'ms':>8} {'share':>6} {'calls':>5} {'GFLOP/s':>8} {'% peak':>6} {'records ms':>10}  kernel")
    for name, ms_, calls, gflops, said, _ in rows[:args.top or None]:
        rate = f"{gflops:8.1f} {100 * gflops / peak:5.0f}%" if gflops else f"{'-':>8} {'-':>6}"
        print(f"{ms_:8.3f} {ms_ / total:6.1%} {calls:>5} {rate} {f'{said:.3f}' if said else '-':>10}  {name}")
    at_peak = sum(min(ms_, work / peak / 1e6) if work else ms_ for _, ms_, _, _, _, work in rows)
    below = [(ms_, work) for _, ms_, _, g, _, work in rows if g and work and g < 0.85 * peak]
    print(f"\nevery kernel at min(its own rate, the peak): {at_peak:.2f} ms ({at_peak / total - 1:+.1%})")
    print(f"kernels under 85% of the peak: {len(below)}, {sum(m for m, _ in below):.2f} ms; "
          f"at the peak {sum(w / peak / 1e6 for _, w in below):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
