"""Sufficient statistics: the few sums every result is computed from.

Each statistic is a frozen dataclass that adds up, so statistics from days, shards or segments
combine with ``+`` and the engine never needs unit-level rows again (gbstats'
``models/statistics.py`` is the model). They are produced by SQL aggregation in
:mod:`experiments.source`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "BinaryStatistic",
    "MeanStatistic",
    "PropensityStatistic",
    "Statistic",
    "WeightedStatistic",
]


@dataclass(frozen=True, slots=True)
class BinaryStatistic:
    """Units and successes of a 0/1 metric.

    Examples
    --------
    >>> s = BinaryStatistic(100, 7) + BinaryStatistic(100, 3)
    >>> s, s.rate
    (BinaryStatistic(n=200, successes=10), 0.05)
    """

    n: int
    successes: int

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.successes <= self.n:
            raise ValueError(
                f"need 0 <= successes <= n, got n={self.n}, successes={self.successes}"
            )

    def __add__(self, other: BinaryStatistic) -> BinaryStatistic:
        return BinaryStatistic(self.n + other.n, self.successes + other.successes)

    @property
    def rate(self) -> float:
        """Observed success rate (NaN with no units)."""
        return self.successes / self.n if self.n else math.nan


@dataclass(frozen=True, slots=True)
class MeanStatistic:
    """Count, sum, sum of squares and non-zero count of a numeric metric (e.g. revenue).

    ``nonzero`` is kept because revenue is zero-inflated: the conversion rate and the mean
    order value are estimated separately (see :func:`experiments.bayes.mean_lift`).

    Examples
    --------
    >>> s = MeanStatistic(4, 10.0, 58.0, 2)
    >>> s.mean, s.variance, s.nonzero_mean, round(s.nonzero_variance, 6)
    (2.5, 11.0, 5.0, 8.0)
    """

    n: int
    total: float
    total_sq: float
    nonzero: int

    def __add__(self, other: MeanStatistic) -> MeanStatistic:
        return MeanStatistic(
            self.n + other.n,
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.nonzero + other.nonzero,
        )

    @property
    def mean(self) -> float:
        """Mean per unit (NaN with no units)."""
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance per unit (n - 1 denominator; NaN below two units)."""
        if self.n < 2:
            return math.nan
        # Sums of squares lose precision when mean² ≫ variance; clamp the rounding error at 0.
        return max(self.total_sq - self.total**2 / self.n, 0.0) / (self.n - 1)

    @property
    def nonzero_mean(self) -> float:
        """Mean over non-zero units only (e.g. average order value)."""
        return self.total / self.nonzero if self.nonzero else math.nan

    @property
    def nonzero_variance(self) -> float:
        """Sample variance over non-zero units (zeros add nothing to the sums)."""
        k = self.nonzero
        if k < 2:
            return math.nan
        return max(self.total_sq - self.total**2 / k, 0.0) / (k - 1)


@dataclass(frozen=True, slots=True)
class WeightedStatistic:
    """Inverse-propensity-weighted sums of one metric for one arm (weights ``w = 1/pscore``).

    The self-normalised (Hájek) mean ``Σwy / Σw`` estimates the arm's mean over *all* units,
    undoing a bandit's drifting allocation; its linearised variance needs the ``w²`` sums.

    Examples
    --------
    >>> s = WeightedStatistic(2, 6.0, 2.0, 20.0, 4.0, 4.0)
    >>> s.mean
    0.3333333333333333
    """

    n: int
    sum_w: float
    sum_wy: float
    sum_w2: float
    sum_w2y: float
    sum_w2y2: float

    def __add__(self, other: WeightedStatistic) -> WeightedStatistic:
        return WeightedStatistic(
            self.n + other.n,
            self.sum_w + other.sum_w,
            self.sum_wy + other.sum_wy,
            self.sum_w2 + other.sum_w2,
            self.sum_w2y + other.sum_w2y,
            self.sum_w2y2 + other.sum_w2y2,
        )

    @property
    def mean(self) -> float:
        """Self-normalised IPW mean (NaN without weight)."""
        return self.sum_wy / self.sum_w if self.sum_w > 0 else math.nan

    @property
    def mean_variance(self) -> float:
        """Linearised variance of :attr:`mean`: ``Σ w²(y - μ)² / (Σ w)²``."""
        if self.sum_w <= 0:
            return math.nan
        mu = self.mean
        ss = self.sum_w2y2 - 2 * mu * self.sum_w2y + mu * mu * self.sum_w2
        return max(ss, 0.0) / self.sum_w**2


@dataclass(frozen=True, slots=True)
class PropensityStatistic:
    """Logged propensities of the units that received one arm.

    ``expected`` is the sum over *all* units of the probability of this arm, available when the
    full allocation vector was logged (``pscore_<arm>`` columns); otherwise it is NaN and the
    sample-ratio check uses the Horvitz–Thompson sums ``sum_inv`` (Σ 1/p, which estimates the
    total number of units) and ``sum_inv_var`` (Σ (1-p)/p², its variance estimate).
    """

    n: int
    sum_inv: float
    sum_inv_var: float
    expected: float = math.nan

    def __add__(self, other: PropensityStatistic) -> PropensityStatistic:
        return PropensityStatistic(
            self.n + other.n,
            self.sum_inv + other.sum_inv,
            self.sum_inv_var + other.sum_inv_var,
            self.expected + other.expected,
        )


Statistic = BinaryStatistic | MeanStatistic
