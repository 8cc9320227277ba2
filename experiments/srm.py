"""Sample-ratio-mismatch check: did each arm get the traffic it was meant to get?

A mismatch means assignment or logging is broken (redirects that drop users, bot filtering that
hits one arm, a crashing variant), and then no effect estimate can be trusted.

* Fixed-weight A/B test: Pearson χ² of the arm counts against ``N · weight`` (K − 1 dof).
* Bandit with the whole allocation logged (``pscore_<arm>`` columns): the expected count of an
  arm is the sum over units of its allocation probability, ``E_a = Σ_i π_i(a)``; Pearson χ²
  against those. Each unit is an independent categorical draw with its own probabilities, so
  the true variance ``Σ π(1-π)`` is at most the multinomial one the χ² assumes: the test is
  conservative, never anti-conservative.
* Bandit with only the chosen arm's propensity ``p_i`` logged: if the propensities are right,
  ``X_a = Σ_{i: A_i = a} 1/p_i`` is an unbiased estimate of the total number of units ``N``
  for *every* arm (Horvitz–Thompson), with variance estimated by ``Σ_{i: A_i=a} (1-p_i)/p_i²``.
  Each arm gets a two-sided z-test of ``X_a = N`` and the smallest p-value is
  Bonferroni-corrected. The counts an arm "should" have had are shown as ``n_a · N / X_a``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from experiments.statistics import PropensityStatistic

__all__ = ["SRM_THRESHOLD", "SrmResult", "srm_check", "srm_from_propensities"]

#: Flag below this p-value: SRM tests run on every report refresh, so a strict bar avoids
#: crying wolf while real assignment bugs (p ≈ 1e-10 and below at email volumes) still show.
SRM_THRESHOLD = 1e-3


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Outcome of a sample-ratio check."""

    method: Literal["chi-square (weights)", "chi-square (logged allocation)", "horvitz-thompson"]
    statistic: float
    p_value: float
    flagged: bool
    observed: dict[str, int]
    expected: dict[str, float]


def srm_check(observed: Mapping[str, int], weights: Mapping[str, float]) -> SrmResult:
    """Pearson χ² of arm counts against fixed traffic weights (normalised).

    Examples
    --------
    >>> r = srm_check({"a": 52_000, "b": 48_000}, {"a": 0.5, "b": 0.5})
    >>> r.flagged, f"{r.p_value:.1e}"
    (True, '1.1e-36')
    """
    total_w = sum(weights.values())
    n = sum(observed.get(a, 0) for a in weights)
    expected = {a: n * w / total_w for a, w in weights.items()}
    return _pearson("chi-square (weights)", observed, expected)


def _pearson(
    method: Literal["chi-square (weights)", "chi-square (logged allocation)"],
    observed: Mapping[str, int],
    expected: Mapping[str, float],
) -> SrmResult:
    cells = [(observed.get(a, 0), e) for a, e in expected.items() if e > 0]
    stat = sum((o - e) ** 2 / e for o, e in cells)
    dof = len(cells) - 1
    p = float(stats.chi2.sf(stat, dof)) if dof > 0 else 1.0
    return SrmResult(method, float(stat), p, p < SRM_THRESHOLD, dict(observed), dict(expected))


def srm_from_propensities(propensity: Mapping[str, PropensityStatistic]) -> SrmResult:
    """Sample-ratio check of a bandit against its logged propensities.

    Uses the logged allocation when every arm has it, otherwise the Horvitz–Thompson check
    (see the module docstring).

    Examples
    --------
    >>> ok = {"a": PropensityStatistic(300, 1000.0, 2000.0),
    ...       "b": PropensityStatistic(700, 1000.0, 400.0)}
    >>> r = srm_from_propensities(ok)
    >>> r.method, r.flagged, round(r.expected["a"])
    ('horvitz-thompson', False, 300)
    """
    observed = {a: p.n for a, p in propensity.items()}
    n = sum(observed.values())
    if all(math.isfinite(p.expected) for p in propensity.values()):
        alloc = {a: p.expected for a, p in propensity.items()}
        return _pearson("chi-square (logged allocation)", observed, alloc)
    z_max, p_min = 0.0, 1.0
    expected: dict[str, float] = {}
    for a, p in propensity.items():
        if p.n == 0 or p.sum_inv <= 0:
            expected[a] = math.nan
            continue
        expected[a] = p.n * n / p.sum_inv
        if p.sum_inv_var <= 0:  # every unit had propensity 1: X_a = n_a exactly
            continue
        z = (p.sum_inv - n) / math.sqrt(p.sum_inv_var)
        pv = float(2 * stats.norm.sf(abs(z)))
        if pv < p_min:
            z_max, p_min = abs(z), pv
    p_adj = min(1.0, p_min * len(propensity))
    return SrmResult("horvitz-thompson", z_max, p_adj, p_adj < SRM_THRESHOLD, observed, expected)
