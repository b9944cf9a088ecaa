"""Synthetic pytest-benchmark result files shaped like the harness writes them, for tests and studies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

CPU_A = {"brand_raw": "AMD EPYC 9B14", "count": 2}
CPU_B = {"brand_raw": "Intel Xeon Platinum 8480", "count": 2}


def bench_entry(case: str, model: str, variant: str, samples: list[float], *, budget: str | None = "b64",
                check_ok: bool = True, speedup: float | None = None, tuning_s: float | None = None,
                target: str = "native", threads: int | None = None, tvm: str = "0.27.0") -> dict[str, Any]:
    arr = np.asarray(samples)
    q1, q3 = np.percentile(arr, [25, 75])
    info = {"bench_schema": 1, "suite": "smoke", "case": case, "model": model, "target_name": target,
            "budget": budget if variant == "tuned" else None, "variant": variant, "tvm_version": tvm,
            "tvm_label": tvm,
            "compile_s": 1.0, "kernels": 7, "kernels_scheduled": 7 if variant == "tuned" else 0,
            "samples_s": list(map(float, arr)), "check": {"onnxruntime": "pass" if check_ok else "fail"},
            "check_ok": check_ok, "topk": [{"class": 1, "prob": 0.5}]}
    if variant == "ort":
        info.update({"runtime": "onnxruntime", "ort_threads": threads})
    elif threads is not None:
        info["tvm_threads"] = threads
    if variant == "tuned":
        info.update({"speedup_median": speedup, "speedup_mean": speedup, "tuning_s": tuning_s, "trials": 64,
                     "tuning_cached": tuning_s is None})
    return {"name": f"test_case[{case}]", "fullname": f"suites/smoke.yaml::test_case[{case}]",
            "group": None, "extra_info": info,
            "stats": {"min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()),
                      "median": float(np.median(arr)), "stddev": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
                      "iqr": float(q3 - q1), "rounds": int(arr.size), "ops": float(1 / arr.mean())}}


def run_file(path: Path, when: datetime, benchmarks: list[dict[str, Any]], *, cpu: dict[str, Any] = CPU_A,
             commit: str = "abc123", outcomes: list[dict[str, Any]] | None = None,
             confirms: str | None = None) -> Path:
    data = {"machine_info": {"node": "host", "processor": "x86_64", "machine": "x86_64", "system": "Linux",
                             "cpu": cpu},
            "commit_info": {"id": commit, "dirty": False, "branch": "main"},
            "benchmarks": benchmarks, "datetime": when.isoformat(), "version": "5.3.1"}
    if outcomes is not None or confirms is not None:
        block: dict[str, Any] = {"schema": 1, "outcomes": outcomes or []}
        if confirms is not None:
            block["confirms"] = confirms
        data["tvm_bench"] = block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def synthetic_history(folder: Path, runs: int, cases: int = 2, seed: int = 0,
                      slowdown_at: int | None = None) -> list[Path]:
    """``runs`` nightly files with ``cases`` models, untuned and tuned, noisy samples."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 10, 1, 2, 0)
    paths = []
    for r in range(runs):
        benches = []
        for c in range(cases):
            base_u, base_t = 0.010 * (c + 1), 0.002 * (c + 1)
            factor = 1.15 if slowdown_at is not None and r >= slowdown_at else 1.0
            su = list(base_u * (1 + 0.01 * rng.standard_normal(10)))
            st = list(base_t * factor * (1 + 0.01 * rng.standard_normal(10)))
            model = f"model{c}"
            benches.append(bench_entry(f"{model}-native-untuned", model, "untuned", su))
            benches.append(bench_entry(f"{model}-native-b64-tuned", model, "tuned", st,
                                       speedup=float(np.median(su) / np.median(st)), tuning_s=30.0 + r))
        paths.append(run_file(folder / f"run{r:04d}.json", start + timedelta(days=r), benches,
                              commit=f"c{r:04d}"))
    return paths
