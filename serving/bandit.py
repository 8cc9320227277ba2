"""Thompson sampling over Beta posteriors, with a weight floor, discounting and segments.

The expensive part of Thompson sampling, the probability that each arm is best, is computed by
Monte Carlo only when the posteriors change (:class:`ThompsonSampler` caches it by a posterior
version). A request then costs one uniform draw against the cached probabilities
(:meth:`Allocation.draw`), and the probability of the drawn arm is logged as its propensity, so
that reports and off-policy estimators can reweight the logged data.

Examples
--------
>>> import numpy as np
>>> config = BanditConfig(arms=("a", "b"), floor=0.05, n_draws=20_000)
>>> sampler = ThompsonSampler(config, rng=np.random.default_rng(0))
>>> allocation = sampler.allocation({"a": ArmCounts(10, 100), "b": ArmCounts(30, 100)})
>>> [round(p, 2) for p in allocation.probabilities]
[0.05, 0.95]
>>> arm, propensity = allocation.draw(np.random.default_rng(1))
>>> arm, round(propensity, 2)
('b', 0.95)
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from inboxlab.errors import InvalidInputError

__all__ = [
    "Allocation",
    "ArmCounts",
    "BanditConfig",
    "ThompsonSampler",
    "apply_floor",
    "best_arm_probabilities",
    "discounted_counts",
    "segment_posteriors",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """Immutable settings of one Thompson-sampling experiment.

    Parameters
    ----------
    arms : tuple of str
        The variant ids, in a fixed order.
    prior_alpha, prior_beta : float
        Beta prior pseudo-counts of successes and failures (``1, 1`` is uniform).
    floor : float
        Minimum allocation probability of every arm; ``floor * len(arms)`` must be ``<= 1``.
    discount : float
        Per-day weight ``gamma`` in ``(0, 1]`` of past data: a day ``k`` days old counts
        ``gamma ** k``. ``1`` keeps all history; below 1 the bandit follows a drifting best arm.
    n_draws : int
        Joint posterior draws used to estimate each arm's probability of being best.
    shrinkage : float
        Contextual mode: fraction of the other segments' counts lent to a segment as prior.
    max_prior_trials : float
        Cap on the pseudo-trials lent by ``shrinkage``, so that a segment's own data can
        always outweigh the pooled prior once it has a few hundred trials.
    """

    arms: tuple[str, ...]
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    floor: float = 0.01
    discount: float = 1.0
    n_draws: int = 20_000
    shrinkage: float = 0.1
    max_prior_trials: float = 200.0

    def __post_init__(self) -> None:
        if len(self.arms) < 2:
            raise InvalidInputError(
                f"arms needs at least 2 variants, got {list(self.arms)}", field="arms"
            )
        if len(set(self.arms)) != len(self.arms):
            raise InvalidInputError(f"arms must be unique, got {list(self.arms)}", field="arms")
        if self.prior_alpha <= 0 or self.prior_beta <= 0:
            raise InvalidInputError("prior_alpha and prior_beta must be > 0", field="prior_alpha")
        if not 0 <= self.floor * len(self.arms) <= 1:
            raise InvalidInputError(
                f"floor must be in [0, 1/len(arms)] = [0, {1 / len(self.arms):.3g}], "
                f"got {self.floor}",
                field="floor",
            )
        if not 0 < self.discount <= 1:
            raise InvalidInputError(
                f"discount must be in (0, 1], got {self.discount}", field="discount"
            )
        if self.n_draws < 100:
            raise InvalidInputError(f"n_draws must be >= 100, got {self.n_draws}", field="n_draws")
        if self.shrinkage < 0 or self.max_prior_trials < 0:
            raise InvalidInputError(
                "shrinkage and max_prior_trials must be >= 0", field="shrinkage"
            )


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """Sufficient statistics of one arm: (possibly discounted) successes and trials."""

    successes: float
    trials: float

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.trials:
            raise InvalidInputError(
                f"need 0 <= successes <= trials, got {self.successes} of {self.trials}",
                field="successes",
            )

    def __add__(self, other: ArmCounts) -> ArmCounts:
        return ArmCounts(self.successes + other.successes, self.trials + other.trials)


def best_arm_probabilities(
    alpha: FloatArray, beta: FloatArray, *, n_draws: int, rng: np.random.Generator
) -> FloatArray:
    """Monte Carlo probability that each arm has the highest Beta-distributed rate.

    Parameters
    ----------
    alpha, beta : ndarray of shape (n_arms,)
        Beta posterior parameters.
    n_draws : int
        Joint draws; the standard error of each probability is at most ``0.5 / sqrt(n_draws)``.
    rng : numpy.random.Generator
        Source of randomness.

    Examples
    --------
    >>> p = best_arm_probabilities(
    ...     np.array([1.0, 1.0]), np.array([1.0, 1.0]), n_draws=40_000,
    ...     rng=np.random.default_rng(0))
    >>> bool(abs(p[0] - 0.5) < 0.01), float(p.sum())
    (True, 1.0)
    """
    draws = rng.beta(alpha, beta, size=(n_draws, alpha.shape[0]))
    winners = np.argmax(draws, axis=1)
    counts = np.bincount(winners, minlength=alpha.shape[0])
    return counts.astype(np.float64) / n_draws


def apply_floor(probabilities: FloatArray, floor: float) -> FloatArray:
    """Raise every probability to at least ``floor`` and renormalize.

    This is the rule of GrowthBook's gbstats (``bayesian/bandits.py``): arms below the floor
    are set to it and the vector is renormalized. A floor matters for two reasons. Thompson
    sampling can starve an arm whose posterior is unlucky early; with drift (or delayed
    rewards) that arm must keep receiving traffic to recover. And every logged propensity
    stays ``>= floor``, which bounds the inverse-propensity weights ``1 / pscore`` of the
    reports and off-policy estimators (their variance grows with the largest weight).
    gbstats renormalizes once, which can leave a clamped arm slightly under the floor; here
    the clamp is repeated on the remaining arms until it holds exactly (at most ``n`` rounds).

    Examples
    --------
    >>> apply_floor(np.array([0.999, 0.001, 0.0]), 0.05).round(3).tolist()
    [0.9, 0.05, 0.05]
    """
    p: FloatArray = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum()
    if floor <= 0:
        return p
    clamped = np.zeros(p.shape, dtype=bool)
    for _ in range(p.shape[0]):
        newly = (p < floor) & ~clamped
        if not newly.any():
            break
        clamped |= newly
        free = ~clamped
        free_mass = p[free].sum()
        p = np.where(clamped, floor, p)
        remaining = 1.0 - floor * clamped.sum()
        if free_mass > 0:
            p[free] = p[free] * remaining / free_mass
        else:  # every arm clamped: only possible when floor * n == 1
            p[free] = remaining / max(int(free.sum()), 1)
    return p


def discounted_counts(
    rows: Iterable[tuple[str, date, float, float]], *, today: date, discount: float
) -> dict[str, ArmCounts]:
    """Sum per-day ``(arm, day, successes, trials)`` rows, a day ``k`` old weighted ``discount**k``.

    Discounting by age, rather than multiplying stored counts on every update, keeps the
    stored statistics plain counts (recomputable from the outcome table, and erasable).

    Examples
    --------
    >>> rows = [("a", date(2026, 1, 1), 5, 10), ("a", date(2026, 1, 2), 1, 10)]
    >>> discounted_counts(rows, today=date(2026, 1, 2), discount=0.5)["a"]
    ArmCounts(successes=3.5, trials=15.0)
    """
    totals: dict[str, ArmCounts] = {}
    for arm, day, successes, trials in rows:
        age = max((today - day).days, 0)
        w = discount**age
        totals[arm] = totals.get(arm, ArmCounts(0.0, 0.0)) + ArmCounts(w * successes, w * trials)
    return totals


def segment_posteriors(
    config: BanditConfig,
    segment: Mapping[str, ArmCounts],
    others: Mapping[str, ArmCounts] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Beta parameters of each arm for one segment, shrunk toward the other segments.

    The prior of each arm is ``config``'s prior plus ``shrinkage`` times the pooled counts of
    the *other* segments (capped at ``max_prior_trials`` pseudo-trials). Leaving the segment
    itself out of the pool avoids counting its data twice. With ``others=None`` (no contextual
    mode) the posterior is the plain Beta-Binomial update.

    Examples
    --------
    >>> cfg = BanditConfig(arms=("a", "b"), shrinkage=0.5)
    >>> a, b = segment_posteriors(cfg, {"a": ArmCounts(1, 2)}, {"a": ArmCounts(10, 20)})
    >>> a.tolist(), b.tolist()
    ([7.0, 1.0], [7.0, 1.0])
    """
    empty = ArmCounts(0.0, 0.0)
    own = [segment.get(arm, empty) for arm in config.arms]
    alpha = np.array([config.prior_alpha + c.successes for c in own], dtype=np.float64)
    beta = np.array([config.prior_beta + c.trials - c.successes for c in own], dtype=np.float64)
    if others is not None and config.shrinkage > 0:
        for i, arm in enumerate(config.arms):
            pool = others.get(arm, empty)
            if pool.trials <= 0:
                continue
            lent = min(config.shrinkage * pool.trials, config.max_prior_trials)
            rate = pool.successes / pool.trials
            alpha[i] += lent * rate
            beta[i] += lent * (1.0 - rate)
    return alpha, beta


@dataclass(frozen=True, slots=True)
class Allocation:
    """Arm probabilities at one posterior version; :meth:`draw` serves one request."""

    arms: tuple[str, ...]
    probabilities: tuple[float, ...]
    version: Hashable
    _cumulative: FloatArray = field(repr=False, compare=False)

    @classmethod
    def from_probabilities(
        cls, arms: tuple[str, ...], probabilities: FloatArray, version: Hashable
    ) -> Allocation:
        """Freeze ``probabilities`` (already floored and normalized) for drawing."""
        cumulative = np.cumsum(probabilities)
        # Renormalize so the last edge is exactly 1: a uniform in [0, 1) then always lands.
        cumulative = cumulative / cumulative[-1]
        cumulative.setflags(write=False)
        return cls(arms, tuple(float(p) for p in probabilities), version, cumulative)

    def draw(self, rng: np.random.Generator) -> tuple[str, float]:
        """One weighted draw: the chosen arm and its probability (the logged propensity)."""
        # side="right" skips arms of probability 0, whose edge equals the previous one.
        index = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        return self.arms[index], self.probabilities[index]

    def probability(self, arm: str) -> float:
        """The allocation probability of ``arm``."""
        return self.probabilities[self.arms.index(arm)]


class ThompsonSampler:
    """Allocation probabilities per (segment, posterior version), computed once and cached.

    Parameters
    ----------
    config : BanditConfig
        The experiment's immutable settings.
    rng : numpy.random.Generator
        Used for the Monte Carlo estimate only; requests draw with their own generator.
    """

    def __init__(self, config: BanditConfig, rng: np.random.Generator) -> None:
        self.config = config
        self._rng = rng
        self._lock = threading.Lock()
        self._cache: dict[str | None, Allocation] = {}

    def allocation(
        self,
        counts: Mapping[str, ArmCounts],
        *,
        segment: str | None = None,
        others: Mapping[str, ArmCounts] | None = None,
        version: Hashable | None = None,
    ) -> Allocation:
        """The allocation for ``segment`` given its counts, recomputed only on a new version.

        ``version`` is any value that changes whenever the counts change (e.g. a store
        revision); by default the posterior parameters themselves are the version.
        """
        alpha, beta = segment_posteriors(self.config, counts, others)
        key = version if version is not None else (tuple(alpha), tuple(beta))
        cached = self._cache.get(segment)
        if cached is not None and cached.version == key:
            return cached
        # The generator is not thread-safe, and one recompute per version is enough.
        with self._lock:
            cached = self._cache.get(segment)
            if cached is not None and cached.version == key:
                return cached
            p = best_arm_probabilities(alpha, beta, n_draws=self.config.n_draws, rng=self._rng)
            allocation = Allocation.from_probabilities(
                self.config.arms, apply_floor(p, self.config.floor), key
            )
            self._cache[segment] = allocation
            return allocation
