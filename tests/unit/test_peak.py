"""The machine's peak: a measured SGEMM figure and a theoretical one with its assumptions."""

from __future__ import annotations

import pytest

from bench.peak import measure_peak, theoretical


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
    from bench import peak

    monkeypatch.setattr(peak, "_cpuinfo", lambda: {"vendor_id": vendor, "flags": flags})
    monkeypatch.setattr(peak, "_max_ghz", lambda info: (2.6, "cpufreq max"))
    gflops, basis = theoretical(2)
    assert gflops == pytest.approx(expected)
    assert basis.startswith("2 cores x 2.60 GHz (cpufreq max)") and f"({isa})" in basis
    assert "FMA units per core (assumed)" in basis


def test_theoretical_peak_without_cpu_facts_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import peak

    monkeypatch.setattr(peak, "_cpuinfo", lambda: {})
    monkeypatch.setattr(peak, "_max_ghz", lambda info: (None, "unknown"))
    assert theoretical(2) == (None, "CPU flags or clock not readable")
