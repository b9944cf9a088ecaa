"""Two TVMs timed in pairs, each in a worker of its own: the A/A spread, and whether the idle worker steals cores.

``aa RUN.json ...``: runs of a suite with the same TVM under test twice (``--bench-tvm a=0.27.0.post1
--bench-tvm b=0.27.0.post1``); for every case, b's ratio to a per run (``vs_tvm``), the interval's half-width,
and the spread of the ratios over the runs: what a TVM-against-TVM comparison shows when nothing differs.

``spin SUITE CASE LIBRARY``: two workers on the harness's TVM hold the same build; worker B times blocks right
after worker A ran a block (A's thread pool may still spin, TVM_THREAD_POOL_SPIN_COUNT), ``--gap`` seconds after
it, and after A ran a block and was then stopped (SIGSTOP: it cannot spin), the three interleaved in random
order. B's medians against the stopped case are what A's idle threads cost B, at one call per block and at the
paired timing's block of ``--block-time`` seconds.

Write-up: docs/studies/README.md#two-tvms-in-pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import time
from pathlib import Path
from typing import Any


def aa(paths: list[Path]) -> None:
    ratios: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for bench in json.loads(path.read_text())["benchmarks"]:
            pairs = bench["extra_info"].get("vs_tvm")
            if isinstance(pairs, dict) and pairs.get("ratio") is not None:
                ratios.setdefault(bench["extra_info"]["case"], []).append(pairs)
    print("| case | runs | ratio per run | half-width of the interval (median) | pairs (median) | SD of the ratios |")
    print("|---|---|---|---|---|---|")
    for case, runs in ratios.items():
        values = [r["ratio"] for r in runs]
        widths = [(r["high"] / r["low"]) ** 0.5 - 1 for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        print(f"| {case} | {len(runs)} | {', '.join(f'{v - 1:+.2%}' for v in values)} "
              f"| {statistics.median(widths):.2%} | {statistics.median(r['pairs'] for r in runs):.0f} | {sd:.2%} |")


def spin(suite: Path, case_id: str, library: Path, cache: Path, rounds: int, block_time: float,
         gap: float) -> None:
    from bench.run.worker import Options, Worker
    from bench.suite.case import expand
    from bench.suite.schema import load_suite
    from bench.suite.target import physical_cores

    [case] = [c for c in expand(load_suite(suite)) if c.id == case_id]
    options = Options(cache, retune=False, max_time=None, use_reference=False)
    threads = case.target.local_threads or physical_cores()
    a, b = (Worker(options, lambda m: None, threads) for _ in range(2))
    try:
        one = a.hold(case, library)
        b.hold(case, library)
        assert a.proc is not None
        rng = random.Random(0)
        for calls in (1, max(1, round(block_time / one))):
            seconds: dict[str, list[float]] = {"right after": [], "gap": [], "stopped": []}
            for _ in range(rounds):
                for kind in rng.sample(list(seconds), len(seconds)):
                    a.block(case, calls)
                    if kind == "stopped":
                        os.killpg(a.proc.pid, signal.SIGSTOP)
                    if kind != "right after":
                        time.sleep(gap)
                    seconds[kind].append(b.block(case, calls))
                    if kind == "stopped":
                        os.killpg(a.proc.pid, signal.SIGCONT)
            base = statistics.median(seconds["stopped"])
            print(f"{calls:6d} calls per block ({calls * one * 1e3:.2f} ms), {rounds} blocks each: B's ms per call "
                  + ", ".join(f"{kind} A's block {statistics.median(v) * 1e3:.4f} "
                              f"({statistics.median(v) / base - 1:+.2%}, SD of log "
                              f"{statistics.stdev([math.log(x) for x in v]):.3f})" for kind, v in seconds.items()))
    finally:
        a.stop()
        b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_aa = sub.add_parser("aa", help="the A/A spread from runs with the same TVM under test twice")
    p_aa.add_argument("runs", type=Path, nargs="+")
    p_spin = sub.add_parser("spin", help="what an idle worker's thread pool costs the other worker")
    p_spin.add_argument("suite", type=Path)
    p_spin.add_argument("case", help="a case id of the suite (its TVM is the harness's own)")
    p_spin.add_argument("library", type=Path, help="the case's exported library (CACHE/builds/<case>/...so)")
    p_spin.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "tvm-bench")
    p_spin.add_argument("--rounds", type=int, default=200)
    p_spin.add_argument("--block-time", type=float, default=0.1)
    p_spin.add_argument("--gap", type=float, default=0.02, help="seconds between A's block and B's ('gap', 'stopped')")
    args = parser.parse_args()
    if args.command == "aa":
        aa(args.runs)
    else:
        spin(args.suite, args.case, args.library, args.cache_dir, args.rounds, args.block_time, args.gap)


if __name__ == "__main__":
    main()
