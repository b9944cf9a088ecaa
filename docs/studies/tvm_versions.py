"""The same models on several TVMs, side by side: untuned and tuned medians, speedup, tuning cost and the checks.

Reads the benchmark JSON of one session that measured several TVMs (``--bench-tvm`` repeated) and prints a
Markdown table, one row per model and TVM. The tuning seconds are those the database cost when it was tuned
(a warm run reads them from the tuning cache).

    pytest suites/smoke.yaml --bench-tvm 0.25.0.post1 --bench-tvm 0.26.0 --bench-tvm 0.27.0.post1 \\
        --benchmark-json versions.json
    python docs/studies/tvm_versions.py versions.json

Write-up: docs/studies/README.md#tvm-versions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def rows(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(model, TVM label, variant) -> the item's record and median; the ort item under TVM label ``-``."""
    data = json.loads(path.read_text())
    out = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        tvm = "-" if info["variant"] == "ort" else info.get("tvm_label") or info["tvm_version"]
        out[(info["model"], tvm, info["variant"])] = {**info, "median_s": bench["stats"]["median"]}
    return out


def table(items: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    lines = ["| model | TVM | untuned ms | tuned ms | speedup | tuned / ORT | untuned vs 1st TVM (paired) "
             "| tuned vs 1st TVM (paired) | trials | tuning s | s / trial | check |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    models = list(dict.fromkeys(m for m, _, _ in items))
    for model in models:
        ort = items.get((model, "-", "ort"))
        tvms = [t for m, t, v in items if m == model and v == "untuned"]
        for tvm in tvms:
            untuned, tuned = items.get((model, tvm, "untuned")), items.get((model, tvm, "tuned"))

            def ms(item: dict[str, Any] | None) -> str:
                return "-" if item is None else f"{item['median_s'] * 1e3:.3f}"

            speedup = f"{untuned['median_s'] / tuned['median_s']:.1f}x" if untuned and tuned else "-"
            vs_ort = f"{tuned['median_s'] / ort['median_s']:.2f}x" if tuned and ort else "-"
            side = tuned.get("tuned_vs_ort_side_by_side") if tuned else None
            if side:
                vs_ort += f" ({side:.2f}x side by side)"
            def vs_first(item: dict[str, Any] | None) -> str:
                pairs = item.get("vs_tvm") if item else None
                if not isinstance(pairs, dict) or pairs.get("ratio") is None:
                    return "-"
                return (f"{pairs['ratio'] - 1:+.1%} ({pairs['low'] - 1:+.1%} .. {pairs['high'] - 1:+.1%}, "
                        f"{pairs['pairs']} pairs)")

            trials = str(tuned.get("trials", "-")) if tuned else "-"
            tuning = f"{tuned['tuning_s']:.0f}" if tuned and tuned.get("tuning_s") else "-"
            per = f"{tuned['seconds_per_trial']:.2f}" if tuned and tuned.get("seconds_per_trial") else "-"
            ok = all(i.get("check_ok", False) for i in (untuned, tuned) if i is not None)
            lines.append(f"| {model} | {tvm} | {ms(untuned)} | {ms(tuned)} | {speedup} | {vs_ort} "
                         f"| {vs_first(untuned)} | {vs_first(tuned)} | {trials} "
                         f"| {tuning} | {per} | {'ok' if ok else 'FAIL'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="benchmark JSON of a session with several TVMs under test")
    args = parser.parse_args()
    print("\n".join(table(rows(args.run))))


if __name__ == "__main__":
    main()
