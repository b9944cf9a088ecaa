"""The limit: the machine's single-precision GFLOP/s, measured and (where readable) theoretical.

Measured: a float32 GEMM through numpy's BLAS (OpenBLAS in the numpy wheel)
on the target's core count, best of several calls. A tuned BLAS SGEMM of this
size runs close to the FMA units' limit, so it is a practical peak: what
well-scheduled code can reach here.

Theoretical: cores x clock x FLOPs per cycle per core, where FLOPs per cycle
= fp32 lanes of the widest vector unit x 2 (a fused multiply-add) x FMA units.
Lane width comes from the CPU flags; the FMA unit count cannot be read from
the OS, so it is assumed (2 per core on current x86 server cores; AMD Zen 4
executes AVX-512 on 256-bit units) and the assumption is part of the record.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Peak:
    measured_gflops: float
    threads: int
    matrix: int
    best_s: float
    theoretical_gflops: float | None
    theoretical_basis: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_sgemm(threads: int, n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of an n x n float32 matmul on ``threads`` BLAS threads, and its seconds."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm up: thread pool, caches, clocks
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9, best


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if k}


def _max_ghz(info: dict[str, str]) -> tuple[float | None, str]:
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return khz / 1e6, "cpufreq max"
    except (OSError, ValueError):
        pass
    try:
        return float(info["cpu MHz"]) / 1e3, "/proc/cpuinfo cpu MHz"
    except (KeyError, ValueError):
        return None, "unknown"


def theoretical(cores: int) -> tuple[float | None, str]:
    """Cores x GHz x lanes x 2 (FMA) x FMA units, with the basis spelled out."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    ghz, clock_src = _max_ghz(info)
    if ghz is None or not flags:
        return None, "CPU flags or clock not readable"
    amd = info.get("vendor_id") == "AuthenticAMD"
    if "avx512f" in flags and not amd:
        lanes, isa = 16, "AVX-512"
    elif "avx512f" in flags or "avx2" in flags or "avx" in flags:
        lanes, isa = 8, "AVX-512 on 256-bit units" if "avx512f" in flags else "AVX2/AVX"
    else:
        lanes, isa = 4, "SSE"
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    units = 2
    gflops = cores * ghz * lanes * fma * units
    basis = (f"{cores} cores x {ghz:.2f} GHz ({clock_src}) x {lanes} fp32 lanes ({isa}) x {fma} (FMA) "
             f"x {units} FMA units per core (assumed)")
    return gflops, basis


def measure_peak(threads: int) -> Peak:
    gflops, best = measure_sgemm(threads)
    theo, basis = theoretical(threads)
    return Peak(round(gflops, 2), threads, 2048, best, round(theo, 1) if theo else None, basis)
