"""The machine's peak: a measured SGEMM figure and a theoretical one with its assumptions."""

from __future__ import annotations

from bench.peak import measure_peak, theoretical


def test_measured_peak_is_plausible() -> None:
    """One thread of float32 GEMM runs between 1 and 1000 GFLOP/s on any CPU this harness targets."""
    peak = measure_peak(1)
    assert 1 < peak.measured_gflops < 1000
    assert peak.threads == 1 and peak.matrix == 2048 and peak.best_s > 0


def test_theoretical_peak_states_its_basis() -> None:
    """The theoretical figure scales with cores and says what it assumed."""
    one, basis = theoretical(1)
    two, _ = theoretical(2)
    if one is None:  # no /proc/cpuinfo (not Linux): the reason is given instead
        assert basis
        return
    assert two == 2 * one
    assert "FMA units per core (assumed)" in basis and "GHz" in basis
