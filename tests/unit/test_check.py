"""Top-k agreement with near-ties, sequence outputs, and allclose for dense outputs."""

from __future__ import annotations

import numpy as np

from bench.stages.check import compare, softmax, summary_topk, top_k
from bench.suite.schema import CheckSpec

PROBS = CheckSpec(softmax=False, top_k=3, tolerance=1e-4)


def row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


def test_identical_outputs_agree() -> None:
    """The same output agrees with itself."""
    a = row(0.5, 0.2, 0.15, 0.1, 0.05)
    assert compare(a, a, PROBS, ("a", "b")).ok


def test_near_tie_swap_is_tolerated() -> None:
    """Classes whose probabilities differ by less than the tolerance may swap."""
    a = row(0.5, 0.2, 0.15000, 0.14995, 0.00005)
    b = row(0.5, 0.2, 0.14995, 0.15000, 0.00005)
    assert compare(a, b, PROBS, ("a", "b")).ok


def test_near_tie_at_the_boundary_is_tolerated() -> None:
    """The k-th and (k+1)-th classes swapping within tolerance is not a failure."""
    a = row(0.5, 0.2, 0.14996, 0.15, 0.00004)
    b = row(0.5, 0.2, 0.15, 0.14996, 0.00004)
    assert compare(a, b, PROBS, ("a", "b")).ok


def test_real_change_fails_with_both_rankings_and_labels() -> None:
    """A class that leaves the top-k fails, and the message shows both rankings with labels."""
    a = row(0.5, 0.2, 0.15, 0.1, 0.05)
    b = row(0.5, 0.2, 0.05, 0.1, 0.15)
    v = compare(a, b, PROBS, ("tuned", "untuned"), labels=["cat", "dog", "eel", "fox", "gnu"])
    assert not v.ok
    assert "tuned: 0:cat=0.50000, 1:dog=0.20000, 2:eel=0.15000" in v.message
    assert "untuned: 0:cat=0.50000, 1:dog=0.20000, 4:gnu=0.15000" in v.message


def test_order_change_beyond_tolerance_inside_topk_passes() -> None:
    """Set membership, not order, is checked: a reordering inside the top-k is the same answer."""
    a = row(0.5, 0.3, 0.1, 0.06, 0.04)
    b = row(0.3, 0.5, 0.1, 0.06, 0.04)
    assert compare(a, b, PROBS, ("a", "b")).ok


def test_sequence_outputs_checked_at_every_position() -> None:
    """For (batch, seq, classes) every position is compared; the failure names it."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 4, 20))
    b = a.copy()
    b[0, 2] = b[0, 2][::-1]
    v = compare(a, b, CheckSpec(top_k=5), ("x", "y"))
    assert not v.ok and "at position 2" in v.message
    assert compare(a, a + 1e-7, CheckSpec(top_k=5), ("x", "y")).ok


def test_logits_go_through_softmax() -> None:
    """With softmax on, a constant shift of the logits changes nothing."""
    logits = row(3.0, 1.0, 0.2, -1.0, -2.0)
    assert compare(logits, logits + 5.0, CheckSpec(top_k=3), ("a", "b")).ok
    np.testing.assert_allclose(softmax(logits).sum(), 1.0)


def test_shape_mismatch_fails() -> None:
    """Outputs of different shapes never agree."""
    assert not compare(row(1, 2, 3), row(1, 2), PROBS, ("a", "b")).ok


def test_allclose_mode_reports_worst_difference() -> None:
    """Dense outputs use allclose; the message counts mismatches and shows the worst."""
    spec = CheckSpec(mode="allclose", rtol=0, atol=1e-3)
    a = np.zeros((2, 3))
    b = a.copy()
    b[1, 2] = 0.5
    v = compare(a, b, spec, ("tuned", "untuned"))
    assert not v.ok and "1 of 6 values" in v.message and "(1, 2)" in v.message
    assert compare(a, a + 1e-4, spec, ("tuned", "untuned")).ok


def test_top_k_and_summary() -> None:
    """top_k orders by probability and attaches labels."""
    r = top_k(np.array([0.1, 0.6, 0.3]), 2, ["a", "b", "c"])
    assert r.classes == [1, 2] and r.labels == ["b", "c"]
    s = summary_topk(np.array([[0.1, 0.6, 0.3]]), CheckSpec(top_k=2, softmax=False), None)
    assert s == [{"class": 1, "prob": 0.6}, {"class": 2, "prob": 0.3}]
