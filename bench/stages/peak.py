"""The limit: the machine's single-precision GFLOP/s, measured and (where readable) theoretical.

Measured: the best GFLOP/s of float32 GEMMs of several shapes through two
tuned libraries, numpy's BLAS (OpenBLAS in the numpy wheel) and ONNX
Runtime's MatMul (MLAS), on the target's core count, best of several calls
each. One library and one shape is not the limit: ONNX Runtime reached 105%
of a 2048x2048 OpenBLAS figure on a real model here. The best of both
libraries over square and model-shaped GEMMs is what well-scheduled code
reaches on this machine; which one set it is recorded (``source``).

Theoretical: cores x clock x FLOPs per cycle per core, where FLOPs per cycle
= fp32 lanes of the widest vector unit x 2 (a fused multiply-add) x FMA units.
Lane width comes from the CPU flags; the FMA unit count cannot be read from
the OS, so it is assumed (2 per core on current x86 server cores; AMD Zen 4
executes AVX-512 on 256-bit units) and the assumption is part of the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: (M, K, N) of the GEMMs timed: square ones, and the shape of a late ResNet-50 1x1 conv as a GEMM.
SHAPES = ((2048, 2048, 2048), (1024, 1024, 1024), (196, 1024, 256), (3136, 64, 256))


@dataclass(frozen=True)
class Peak:
    measured_gflops: float
    threads: int
    #: Which library and GEMM shape gave the best figure, e.g. "onnxruntime 2048x2048x2048".
    source: str
    best_s: float
    theoretical_gflops: float | None
    theoretical_basis: str
    #: Every library and shape timed, GFLOP/s.
    candidates: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _best(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm up: thread pool, caches, clocks
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def measure_sgemm(threads: int, shape: tuple[int, int, int] = (2048, 2048, 2048),
                  repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of an (M x K) @ (K x N) float32 matmul on ``threads`` BLAS threads, and its seconds."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        best = _best(lambda: np.matmul(a, b, out=out), repeats)
    return 2 * m * k * n / best / 1e9, best


def measure_ort_matmul(threads: int, shape: tuple[int, int, int], repeats: int = 5) -> tuple[float, float] | None:
    """The same GEMM through ONNX Runtime's MatMul (MLAS), with ``threads`` intra-op threads; None without ORT."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    m, k, n = shape
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"a": rng.standard_normal((m, k), dtype=np.float32)}
    best = _best(lambda: sess.run(None, feed), repeats)
    return 2 * m * k * n / best / 1e9, best


def measure_peak(threads: int) -> Peak:
    candidates: dict[str, tuple[float, float]] = {}
    for shape in SHAPES:
        name = "x".join(map(str, shape))
        candidates[f"numpy-blas {name}"] = measure_sgemm(threads, shape)
        ort = measure_ort_matmul(threads, shape)
        if ort is not None:
            candidates[f"onnxruntime {name}"] = ort
    source, (gflops, best) = max(candidates.items(), key=lambda kv: kv[1][0])
    theo, basis = theoretical(threads)
    return Peak(round(gflops, 2), threads, source, best, round(theo, 1) if theo else None, basis,
                {k: round(v[0], 2) for k, v in candidates.items()})


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




#: An item at this share of the peak measured so far has the peak measured again (at most ``REPROBES`` times per
#: thread count and session), keeping the better: a probe that falls in a slow period of a shared VM understates
#: the limit, and items then time above 100% of it (docs/guide.md#work-and-limit).
REPROBE_SHARE = 0.9
REPROBES = 3


class SessionPeaks:
    """The peak policy of a session, in one place: which peak an item's GFLOP/s is stated against.

    In a worker, ``for_item`` measures the peak once per thread count, again when an item comes near it
    (is it the machine's limit, or a probe that fell in a slow moment?), and keeps the better. In the parent,
    ``merge`` keeps the best any worker measured and ``restate`` puts every item of the run against that one
    limit, so one run's items share it.
    """

    def __init__(self, measure: Callable[[int], Peak] | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self._measure = measure
        self.progress = progress
        self.best: dict[int, dict[str, Any]] = {}
        self._reprobes: dict[int, int] = {}

    def for_item(self, label: str, threads: int, gflops: float) -> dict[str, Any]:
        """The peak to state ``gflops`` against (a worker measures; see the class docstring)."""
        measure = self._measure or measure_peak
        if threads not in self.best:
            self.best[threads] = measure(threads).as_dict()
        peak = self.best[threads]
        if gflops < REPROBE_SHARE * peak["measured_gflops"] or self._reprobes.get(threads, 0) >= REPROBES:
            return peak
        self._reprobes[threads] = self._reprobes.get(threads, 0) + 1
        again = measure(threads).as_dict()
        self.progress(f"[peak] {label}: {gflops:.1f} GFLOP/s is {100 * gflops / peak['measured_gflops']:.0f}% of "
                      f"the peak measured so far ({peak['measured_gflops']:.1f}); measured again: "
                      f"{again['measured_gflops']:.1f}")
        self.merge({threads: again})
        return self.best[threads]

    def merge(self, peaks: dict[int, dict[str, Any]]) -> None:
        """Keep the best of these and the ones seen so far, per thread count."""
        for threads, peak in peaks.items():
            if threads not in self.best or peak["measured_gflops"] > self.best[threads]["measured_gflops"]:
                self.best[threads] = peak

    def restate(self, info: dict[str, Any]) -> None:
        """An item's % of peak against the best peak of its thread count (a device's item has none)."""
        peak = self.best.get(info.get("ort_threads") or info.get("tvm_threads") or 0)
        gflops = info.get("gflops_per_s")
        if peak is None or gflops is None or info.get("peak_gflops") in (None, peak["measured_gflops"]):
            return
        info["peak_gflops"] = peak["measured_gflops"]
        info["pct_of_peak"] = round(100 * gflops / peak["measured_gflops"], 2)
