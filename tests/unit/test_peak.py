"""The machine's peak: a measured SGEMM figure and a theoretical one with its assumptions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from bench.stages.peak import Peak, measure_peak, theoretical


def test_measured_peak_is_the_best_of_both_libraries_and_all_shapes() -> None:
    """One thread of float32 GEMM runs between 1 and 1000 GFLOP/s on any CPU this harness targets; the peak is
    the best candidate, and it names the library and shape that set it."""
    peak = measure_peak(1)
    assert 1 < peak.measured_gflops < 1000
    assert peak.threads == 1 and peak.best_s > 0
    assert len(peak.candidates) == 8  # 4 shapes x (numpy's BLAS, ONNX Runtime)
    assert peak.measured_gflops == max(peak.candidates.values())
    assert peak.candidates[peak.source] == peak.measured_gflops
    assert {k.split()[0] for k in peak.candidates} == {"numpy-blas", "onnxruntime"}


@pytest.mark.parametrize(
    ("vendor", "flags", "expected", "isa"),
    [
        # Zen 4 runs AVX-512 on 256-bit units: 8 fp32 lanes, 2 FMA units -> 2 x 2.6 x 8 x 2 x 2
        ("AuthenticAMD", "sse avx avx2 fma avx512f", 166.4, "AVX-512 on 256-bit units"),
        # Sapphire Rapids: 16 lanes
        ("GenuineIntel", "sse avx avx2 fma avx512f", 332.8, "AVX-512"),
        ("GenuineIntel", "sse avx avx2 fma", 166.4, "AVX2/AVX"),
        # no FMA: a multiply unit and an add unit, 4 lanes each
        ("GenuineIntel", "sse sse2", 41.6, "SSE"),
    ],
)
def test_theoretical_peak_from_known_cpus(monkeypatch: pytest.MonkeyPatch, vendor: str, flags: str,
                                          expected: float, isa: str) -> None:
    """Known CPUs give their known theoretical peaks (2 cores at 2.6 GHz), and the basis says what was assumed."""
    from bench.stages import peak

    monkeypatch.setattr(peak, "_cpuinfo", lambda: {"vendor_id": vendor, "flags": flags})
    monkeypatch.setattr(peak, "_max_ghz", lambda info: (2.6, "cpufreq max"))
    gflops, basis = theoretical(2)
    assert gflops == pytest.approx(expected)
    assert basis.startswith("2 cores x 2.60 GHz (cpufreq max)") and f"({isa})" in basis
    assert "FMA units per core (assumed)" in basis


def test_theoretical_peak_without_cpu_facts_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.stages import peak

    monkeypatch.setattr(peak, "_cpuinfo", lambda: {})
    monkeypatch.setattr(peak, "_max_ghz", lambda info: (None, "unknown"))
    assert theoretical(2) == (None, "CPU flags or clock not readable")


def _peak(gflops: float) -> Peak:
    return Peak(gflops, 2, "numpy-blas 2048x2048x2048", 0.1, None, "", {})


def test_an_item_near_the_peak_has_it_measured_again_and_keeps_the_better(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    """A probe that fell in a slow period understates the limit; an item at 90% of it triggers another probe
    (at most REPROBES per session), and the session keeps the best figure measured."""
    from bench.stages.peak import SessionPeaks

    probes = iter([150.0, 200.0, 180.0, 210.0, 230.0])
    said: list[str] = []
    peaks = SessionPeaks(lambda threads: _peak(next(probes)), said.append)
    gflops = [peaks.for_item("m-native-b1-tuned", 2, g)["measured_gflops"] for g in (100.0, 140.0, 190.0, 195.0,
                                                                                      209.0)]
    # 67% of the first probe: no second one; 93%: measured again, higher; 95%: again, 180 is lower, 200 stays;
    # the third and last probe; no more probes this session
    assert gflops == [150.0, 200.0, 200.0, 210.0, 210.0]
    assert peaks.best[2]["measured_gflops"] == 210.0 and len(said) == 3
    assert said[0] == ("[peak] m-native-b1-tuned: 140.0 GFLOP/s is 93% of the peak measured so far (150.0); "
                       "measured again: 200.0")


def test_every_item_of_a_run_is_restated_against_the_sessions_best_peak() -> None:
    """Workers report the peak they measured; the run keeps the best, and items timed against a lower one
    have their % of peak restated at the end, so one run's items share one limit."""
    from bench.run.runner import CaseResult, Runner
    from bench.run.session import Measured

    runner = Runner(options=None, progress=lambda m: None, isolate=False)  # type: ignore[arg-type]
    peaks = iter([150.0, 200.0, 180.0])

    class Executor:
        def run(self, case: object) -> Measured:
            return Measured({}, [0.1], 1, [], {2: _peak(next(peaks)).as_dict()})

    runner.executor, runner._threads = Executor(), 2  # type: ignore[assignment]
    case = NS(target=NS(local_threads=2))
    for _ in range(3):
        runner.measure(case)  # type: ignore[arg-type]
    assert runner.peaks.best[2]["measured_gflops"] == 200.0
    tvm = {"tvm_threads": 2, "gflops_per_s": 190.0, "peak_gflops": 150.0, "pct_of_peak": 126.67}
    ort = {"ort_threads": 2, "gflops_per_s": 100.0, "peak_gflops": 200.0, "pct_of_peak": 50.0}
    remote = {"gflops_per_s": 5.0}  # a device's item has no peak from this host
    runner.results = [CaseResult(NS(), info, {}, []) for info in (tvm, ort, remote)]  # type: ignore[arg-type]
    runner.settle_peaks()
    assert (tvm["peak_gflops"], tvm["pct_of_peak"]) == (200.0, 95.0)
    assert (ort["peak_gflops"], ort["pct_of_peak"]) == (200.0, 50.0)
    assert remote == {"gflops_per_s": 5.0}
