"""Paired statistics: Hodges-Lehmann estimate, signed-rank interval and the gate's rule on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stages import paired


def test_walsh_averages_and_the_estimate_are_exact_on_a_small_sample() -> None:
    """[0, 1, 3]: Walsh averages 0, .5, 1, 1.5, 2, 3; the estimate is their median, 1.25, as a ratio e^1.25."""
    assert paired.walsh_averages(np.array([0.0, 1.0, 3.0])).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    assert paired.estimate([0.0, 1.0, 3.0], 0.05).ratio == pytest.approx(math.exp(1.25))


def test_interval_ends_are_the_signed_rank_critical_walsh_averages() -> None:
    """n = 10, alpha 0.05: the lower critical value of the signed-rank statistic is 8 (Hollander & Wolfe's
    table), so the interval runs from the 9th smallest to the 9th largest of the 55 Walsh averages."""
    logs = np.array([0.3, -0.1, 0.8, 0.25, 0.5, -0.4, 0.9, 0.05, 0.6, 0.35])
    walsh = paired.walsh_averages(logs)
    est = paired.estimate(logs, 0.05)
    assert est.pairs == 10
    assert (math.log(est.low), math.log(est.high)) == pytest.approx((walsh[8], walsh[46]))


def test_decisions_follow_the_gate_rule() -> None:
    """Slower needs the interval above 1, reaching the threshold, and the estimate at half of it; the mirror for
    faster; a narrow interval short of the threshold is within, whichever side it lies on."""
    t = 0.05
    assert paired.decide(paired.PairedEstimate(1.06, 1.04, 1.08, 40), t) == "slower"
    assert paired.decide(paired.PairedEstimate(1.04, 1.035, 1.045, 40), t) == "within"
    assert paired.decide(paired.PairedEstimate(1.01, 0.99, 1.06, 40), t) == "within"
    assert paired.decide(paired.PairedEstimate(0.94, 0.92, 0.96, 40), t) == "faster"


@pytest.mark.parametrize(("shift", "decision"), [(0.0, "within"), (0.06, "slower"), (-0.08, "faster")])
def test_synthetic_pairs_are_decided_and_a_burst_does_not_move_the_estimate(shift: float, decision: str) -> None:
    """40 pairs with a 3% per-pair spread, 5 of them in a burst that slowed only the current build by 40%: the
    estimate stays within 1.5% of the true ratio, the interval covers it, and the decision is the truth's."""
    rng = np.random.default_rng(0)
    logs = math.log(1 + shift) + rng.normal(0, 0.03, 40)
    logs[::8] += math.log(1.4)
    est = paired.estimate(logs, 0.01)
    assert abs(est.ratio / (1 + shift) - 1) < 0.015
    assert est.low <= 1 + shift <= est.high * 1.01
    assert paired.decide(est, 0.05) == decision


def test_settled_stops_once_more_pairs_cannot_change_the_kind_of_decision() -> None:
    """Inside (1 - t, 1 + t) and at most t/2 wide: within for good; above 1 + t/2: slower for good; straddling
    1 + t, or inside but wider than t/2 a side: go on."""
    assert paired.settled(paired.PairedEstimate(1.00, 0.99, 1.01, 12), 0.05)
    assert not paired.settled(paired.PairedEstimate(1.003, 0.962, 1.049, 12), 0.05)
    assert paired.settled(paired.PairedEstimate(1.10, 1.06, 1.14, 12), 0.05)
    assert not paired.settled(paired.PairedEstimate(1.03, 0.99, 1.07, 12), 0.05)
    assert paired.PairedEstimate(1.0, 0.98, 1.02, 12).visible == pytest.approx(0.02, abs=1e-3)


def test_too_few_pairs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired.estimate([0.1], 0.05)
