"""Paired statistics: a build against its baseline build, timed in interleaved blocks in one process.

A slow period of a shared host slows both builds of a pair alike, so the
per-pair log ratio cancels it (duet benchmarking: Bulej et al., ICPE 2020;
randomized multiple interleaved trials: Abedi & Brecht, ICPE 2017). One
pair's log ratio still spreads several percent; what is stable is a location
over many pairs. Location: the Hodges-Lehmann estimator (the median of the
Walsh averages); interval: the Wilcoxon signed-rank confidence interval for
it, from the normal approximation of the signed-rank statistic's
distribution (Hollander, Wolfe & Chicken, Nonparametric Statistical Methods,
3rd ed., sec. 3.3). Both are distribution-free for symmetric pair
differences and robust to the odd pair that one build's block spent in a
burst.

Decision, with threshold t, as the history gate's (bench.history.gate): slower when
the interval is above 1, its upper end reaches 1 + t and the estimate at
least 1 + t/2; faster is the mirror image; else within. Timing stops once
more pairs are not worth their time: the interval lies entirely beyond
1 +- t/2, or inside (1 - t, 1 + t) and at most t/2 wide on each side; or at
the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

Decision = Literal["slower", "faster", "within"]


@dataclass(frozen=True)
class PairedEstimate:
    """current / baseline from ``pairs`` log ratios: the estimate and its (1 - alpha) interval."""

    ratio: float
    low: float
    high: float
    pairs: int

    @property
    def visible(self) -> float:
        """The smallest slowdown these pairs can show: the interval's half-width, as a ratio - 1."""
        return math.exp((math.log(self.high) - math.log(self.low)) / 2) - 1


def walsh_averages(logs: np.ndarray) -> np.ndarray:
    """(x_i + x_j) / 2 for every i <= j, sorted."""
    i, j = np.triu_indices(logs.size)
    out: np.ndarray = np.sort((logs[i] + logs[j]) / 2)
    return out


def estimate(log_ratios: list[float] | np.ndarray, alpha: float) -> PairedEstimate:
    """Hodges-Lehmann estimate and signed-rank interval of the pairs' log ratios, as ratios."""
    logs = np.asarray(log_ratios, dtype=float)
    n = logs.size
    if n < 2:
        raise ValueError(f"a paired estimate needs at least 2 pairs (got {n})")
    walsh = walsh_averages(logs)
    m = walsh.size  # n (n + 1) / 2
    z = NormalDist().inv_cdf(1 - alpha / 2)
    # The interval's ends are the k-th smallest and largest Walsh averages, k from the signed-rank statistic's
    # lower critical value: mean n(n+1)/4, variance n(n+1)(2n+1)/24.
    k = math.floor(n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    k = min(max(k, 0), (m - 1) // 2)
    hl = float(np.median(walsh))
    return PairedEstimate(math.exp(hl), math.exp(float(walsh[k])), math.exp(float(walsh[m - 1 - k])), n)


def decide(est: PairedEstimate, threshold: float) -> Decision:
    """The gate's rule on a paired interval (see the module docstring)."""
    if est.low > 1 and est.high >= 1 + threshold and est.ratio >= 1 + threshold / 2:
        return "slower"
    if est.high < 1 and est.low <= 1 - threshold and est.ratio <= 1 - threshold / 2:
        return "faster"
    return "within"


def settled(est: PairedEstimate, threshold: float) -> bool:
    """Whether more pairs are worth their time: an interval entirely beyond 1 +- t/2 stays slower (faster)
    however it narrows; one inside the band (1 - t, 1 + t) is within, and is taken once it can also show a
    slowdown of half the threshold (``visible`` <= t/2), so a within says more than "not above t"."""
    inside = est.high < 1 + threshold and est.low > 1 - threshold and est.visible <= threshold / 2
    beyond = est.low > 1 + threshold / 2 or est.high < 1 - threshold / 2
    return inside or beyond


def summary(pairs: list[tuple[float, float]], alpha: float, threshold: float, *, capped: bool,
            block_calls: int) -> dict[str, Any]:
    """What a record keeps of a paired timing (``vs_baseline``, ``vs_tvm``): estimate, interval, decision, the
    settings and the seconds per call of each side in each pair (``current_s``; the other side ``other_s``)."""
    est = estimate([math.log(c / b) for c, b in pairs], alpha)
    return {"ratio": round(est.ratio, 5), "low": round(est.low, 5), "high": round(est.high, 5), "pairs": est.pairs,
            "alpha": round(alpha, 6), "threshold": threshold, "decision": decide(est, threshold),
            "visible": round(est.visible, 5), "capped": capped, "block_calls": block_calls,
            "current_s": [round(c, 9) for c, _ in pairs], "other_s": [round(b, 9) for _, b in pairs]}
