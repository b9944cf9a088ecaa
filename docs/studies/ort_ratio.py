"""Tuned against ONNX Runtime: the two items' ratio against the side-by-side one, repeated over minutes.

A suite times the ``ort`` item and the tuned item minutes apart, so their
medians' ratio carries the machine's drift over that gap. The tuned item also
times the two in turn (``timing.side_by_side``). This script builds one suite
case (tuning cache reused, so give the cache of a run that tuned it), then
``--reps`` times, ``--pause`` seconds apart: times each build as its item does
(the suite's plan, slices and gaps), then both side by side as the tuned item
does. It prints the items' ratio within each rep (seconds apart), across reps
(minutes apart, as in a suite) and the side-by-side ratio of each rep.

    .venv/bin/python docs/studies/ort_ratio.py suites/nightly.yaml resnet50 --cache-dir /tmp/nightly-cache \\
        --reps 5 --turns 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "docs" / "studies"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("model", help="model name in the suite; its first tuned budget is used")
    parser.add_argument("--cache-dir", type=Path, required=True, help="tuning cache holding the case's database")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--turns", type=int, default=5, help="side-by-side turns per rep (default 5)")
    parser.add_argument("--pause", type=float, default=30.0, help="seconds between reps (default 30)")
    args = parser.parse_args()

    from kernel_profile import open_model

    from bench.stages.measure import plan_timing, probe, side_by_side, time_rounds

    cases, session = open_model(parser, args, "tuned", "ort")
    tuned, ort_case = cases["tuned"], cases["ort"]
    model = session.model(tuned)
    _, tvm_build = session.tuned(tuned, model)
    ort_build = session.ort_build(ort_case, model)
    plans = {"tuned": plan_timing(tuned.timing, probe(tvm_build.run)),
             "ort": plan_timing(ort_case.timing, probe(ort_build.run))}
    item_ms: list[tuple[float, float]] = []
    paired: list[float] = []
    for rep in range(args.reps):
        if rep:
            time.sleep(args.pause)
        tuned_s, ort_s = (statistics.median(time_rounds(b.run, plans[k]))
                          for k, b in (("tuned", tvm_build), ("ort", ort_build)))
        turns = side_by_side({"tuned": (tvm_build.run, plans["tuned"]), "ort": (ort_build.run, plans["ort"])},
                             args.turns, min(tuned.timing.min_time, tuned.timing.max_time))
        ratios = [t / o for t, o in zip(turns["tuned"], turns["ort"], strict=True)]
        item_ms.append((tuned_s * 1e3, ort_s * 1e3))
        paired.append(statistics.median(ratios))
        print(json.dumps({"rep": rep, "tuned_ms": item_ms[-1][0], "ort_ms": item_ms[-1][1],
                          "items": tuned_s / ort_s, "side_by_side": paired[-1],
                          "turn_ratios": [round(r, 3) for r in ratios],
                          "turn_ms": {k: [round(v * 1e3, 3) for v in vs] for k, vs in turns.items()}}), flush=True)
    across = [t / o for i, (t, _) in enumerate(item_ms) for j, (_, o) in enumerate(item_ms) if i != j]

    def spread(values: list[float]) -> str:
        return f"{min(values):.3f} .. {max(values):.3f} (median {statistics.median(values):.3f})"

    print(f"items' ratio, same rep:       {spread([t / o for t, o in item_ms])}")
    if across:
        print(f"items' ratio, across reps:    {spread(across)}")
    print(f"side by side, {args.turns} turns:     {spread(paired)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
