"""The run-to-run spread of every memory figure an item records, over result files of unchanged runs.

    .venv/bin/python docs/studies/memory_spread.py results/run1.json results/run2.json ...

Exact figures (``library.bytes``, ``weight_bytes``, ``planned_memory``) should not move at all; the sampled
ones (the worker tree's resident MiB per stage: its peak, and its growth ``peak - start``) move with what
earlier items left in the worker; the highest run over the median is what the gate's
``peak_memory_threshold`` must stay above. See docs/studies/README.md#memory-figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def figures(info: dict[str, Any]) -> dict[str, float]:
    found = {"weight_bytes": float(info["weight_bytes"])}
    if isinstance(info.get("library"), dict):
        found["library bytes"] = float(info["library"]["bytes"])
    for name, value in (info.get("planned_memory") or {}).items():
        found[name.replace("_", " ")] = float(value)
    for stage, mem in (info.get("memory") or {}).get("stages", {}).items():
        found[f"{stage} peak MiB"] = mem["peak_mib"]
        found[f"{stage} growth MiB"] = mem["peak_mib"] - mem["start_mib"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="the run-to-run spread of every memory figure over unchanged runs")
    parser.add_argument("results", nargs="+", type=Path, help="pytest-benchmark JSON files of unchanged runs")
    args = parser.parse_args()
    by_case: dict[str, dict[str, list[float]]] = {}
    for path in args.results:
        for bench in json.loads(path.read_text())["benchmarks"]:
            info = bench["extra_info"]
            for name, value in figures(info).items():
                by_case.setdefault(info["case"], {}).setdefault(name, []).append(value)
    print(f"{len(args.results)} runs")
    for case, found in by_case.items():
        print(case)
        for name, values in found.items():
            spread = max(values) - min(values)
            mean = statistics.mean(values)
            share = f"{spread / mean:.1%}" if mean else "-"
            median = statistics.median(values)
            # what gate.peak_memory_threshold must stay above: the highest run over the runs' median
            over = f"{max(values) / median - 1:+.1%}" if median else "-"
            print(f"  {name:20s} {min(values):>12,.1f} .. {max(values):>12,.1f}  spread {spread:>9,.1f} ({share})"
                  f"  max over median {over}  n={len(values)}")


if __name__ == "__main__":
    main()
