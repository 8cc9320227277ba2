"""Beta-binomial engine for 0/1 metrics: posteriors, lift, chance to beat, P(best), loss.

Every probability here is computed by one-dimensional numerical integration, not by sampling,
so two runs of a report always agree and the error is far below what a reader can see.

The integrals are taken in the *quantile domain* of one posterior: with ``u = F_c(x)``,
``P(θ_t > r·θ_c) = ∫₀¹ S_t(r·F_c⁻¹(u)) du``. The integrand is bounded by 0 and 1 and the
integration range is the unit interval whatever the sample size, so the same code is accurate
for a 50-unit pilot and for a 10-million-unit send where both densities are needle-thin and a
direct integral over ``x`` would miss the mass entirely.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import integrate, optimize, special, stats

from experiments.statistics import BinaryStatistic

__all__ = [
    "ApproxPosterior",
    "BetaPosterior",
    "Posterior",
    "beta_posterior",
    "chance_to_beat",
    "expected_loss",
    "lift_interval",
    "probability_best",
    "ratio_exceeds",
]

_EPS = 1e-15  # tail mass ignored when bounding integration ranges
_QUAD_TOL = 1e-10  # absolute and relative tolerance of reported probabilities
# Credible-interval end points only need ~6 significant digits; root-finding calls the CDF of
# the ratio a dozen times, so it integrates with a looser tolerance.
_QUANTILE_TOL = 1e-8


class Posterior(Protocol):
    """A one-dimensional posterior: what :func:`probability_best` and :func:`expected_loss` need."""

    @property
    def mean(self) -> float: ...

    def cdf(self, x: float) -> float: ...

    def ppf(self, q: float) -> float: ...


@dataclass(frozen=True, slots=True)
class ApproxPosterior:
    """Normal (``log=False``) or log-normal (``log=True``) posterior of a mean.

    Used for numeric metrics (see :mod:`experiments.means`): ``loc``/``scale`` are the mean and
    sd of the metric, or of its logarithm.

    Examples
    --------
    >>> p = ApproxPosterior(math.log(2.0), 0.1, log=True)
    >>> round(p.ppf(0.5), 6), round(p.cdf(2.0), 6)
    (2.0, 0.5)
    """

    loc: float
    scale: float
    log: bool = False

    @property
    def mean(self) -> float:
        """Posterior mean."""
        return math.exp(self.loc + self.scale**2 / 2) if self.log else self.loc

    def cdf(self, x: float) -> float:
        """Posterior probability of a value at most ``x``."""
        if self.log:
            return 0.0 if x <= 0 else float(special.ndtr((math.log(x) - self.loc) / self.scale))
        return float(special.ndtr((x - self.loc) / self.scale))

    def ppf(self, q: float) -> float:
        """Posterior quantile."""
        z = float(special.ndtri(q))
        return math.exp(self.loc + self.scale * z) if self.log else self.loc + self.scale * z


@dataclass(frozen=True, slots=True)
class BetaPosterior:
    """Beta(α, β) posterior of a rate with its mean and equal-tailed credible interval."""

    alpha: float
    beta: float
    mean: float
    ci_low: float
    ci_high: float

    def cdf(self, x: float) -> float:
        """Posterior probability that the rate is at most ``x``."""
        return float(special.betainc(self.alpha, self.beta, min(max(x, 0.0), 1.0)))

    def sf(self, x: float) -> float:
        """Posterior probability that the rate exceeds ``x``."""
        return float(special.betaincc(self.alpha, self.beta, min(max(x, 0.0), 1.0)))

    def ppf(self, q: float) -> float:
        """Posterior quantile."""
        return float(special.betaincinv(self.alpha, self.beta, q))


def beta_posterior(
    stat: BinaryStatistic, *, prior: tuple[float, float] = (1.0, 1.0), level: float = 0.95
) -> BetaPosterior:
    """Posterior of a success rate under a Beta prior (uniform by default).

    Examples
    --------
    >>> p = beta_posterior(BinaryStatistic(1000, 100))
    >>> round(p.mean, 4), round(p.ci_low, 4), round(p.ci_high, 4)
    (0.1008, 0.0829, 0.1202)
    """
    a = prior[0] + stat.successes
    b = prior[1] + stat.n - stat.successes
    tail = (1.0 - level) / 2
    lo, hi = stats.beta.ppf([tail, 1 - tail], a, b)
    return BetaPosterior(a, b, a / (a + b), float(lo), float(hi))


def _quad(
    f: Callable[[float], float],
    lo: float,
    hi: float,
    points: Sequence[float],
    tol: float = _QUAD_TOL,
) -> float:
    inner = sorted({p for p in points if lo < p < hi})
    # full_output silences quad's warnings: our integrands are bounded by [0, 1] on a bounded
    # range, so a "bad behaviour" notice (a near-step integrand) still leaves a tiny error.
    out = integrate.quad(
        f, lo, hi, points=inner or None, full_output=1, epsabs=tol, epsrel=tol, limit=200
    )
    return float(out[0])


def ratio_exceeds(
    treatment: BetaPosterior, control: BetaPosterior, ratio: float = 1.0, *, tol: float = _QUAD_TOL
) -> float:
    """Posterior probability that ``θ_treatment > ratio · θ_control``.

    Examples
    --------
    >>> c = beta_posterior(BinaryStatistic(1000, 100))
    >>> t = beta_posterior(BinaryStatistic(1000, 120))
    >>> round(ratio_exceeds(t, c, 1.1), 4)
    0.7503
    """

    def integrand(u: float) -> float:
        return treatment.sf(ratio * control.ppf(u))

    # The integrand steps down where r·θ_c crosses θ_t's bulk: tell quad where that is.
    kink = control.cdf(treatment.mean / ratio) if ratio > 0 else 0.5
    return min(max(_quad(integrand, 0.0, 1.0, [kink], tol), 0.0), 1.0)


def chance_to_beat(treatment: BetaPosterior, control: BetaPosterior) -> float:
    """Posterior probability that the treatment's rate exceeds the control's, by integration.

    Examples
    --------
    >>> c = beta_posterior(BinaryStatistic(1000, 100))
    >>> t = beta_posterior(BinaryStatistic(1000, 120))
    >>> round(chance_to_beat(t, c), 4)
    0.9232
    """
    return ratio_exceeds(treatment, control, 1.0)


def lift_interval(
    treatment: BetaPosterior, control: BetaPosterior, level: float = 0.95
) -> tuple[float, float]:
    """Equal-tailed credible interval of the relative lift ``θ_t / θ_c - 1``.

    The quantiles of the ratio are found by root-finding on its exact CDF
    ``P(θ_t/θ_c ≤ r) = 1 - ratio_exceeds(r)``.

    Examples
    --------
    >>> c = beta_posterior(BinaryStatistic(1000, 100))
    >>> t = beta_posterior(BinaryStatistic(1000, 120))
    >>> [round(x, 3) for x in lift_interval(t, c)]
    [-0.065, 0.541]
    """
    tail = (1.0 - level) / 2
    # Bracket from far marginal quantiles: P(ratio outside) <= 2e-10, far below ``tail``.
    far = 1e-10
    lo_r = treatment.ppf(far) / max(control.ppf(1 - far), 1e-300)
    hi_r = min(treatment.ppf(1 - far) / max(control.ppf(far), 1e-300), 1e12)

    def quantile(q: float) -> float:
        def f(r: float) -> float:
            return (1.0 - ratio_exceeds(treatment, control, r, tol=_QUANTILE_TOL)) - q

        return float(optimize.brentq(f, lo_r, hi_r, xtol=1e-10, rtol=1e-7))

    return quantile(tail) - 1.0, quantile(1 - tail) - 1.0


def probability_best(posteriors: Sequence[Posterior]) -> tuple[float, ...]:
    """Posterior probability that each arm has the highest rate.

    ``P(k best) = ∫₀¹ Π_{j≠k} F_j(F_k⁻¹(u)) du`` (independent posteriors). The results are
    renormalised to sum to one; before that they sum to one within ~1e-9.

    Examples
    --------
    >>> ps = [beta_posterior(BinaryStatistic(1000, k)) for k in (100, 120, 110)]
    >>> [round(p, 3) for p in probability_best(ps)]
    [0.046, 0.727, 0.227]
    """
    if len(posteriors) == 1:
        return (1.0,)
    out = []
    for k, pk in enumerate(posteriors):
        others = [p for j, p in enumerate(posteriors) if j != k]

        def integrand(u: float, pk: Posterior = pk, others: list[Posterior] = others) -> float:
            x = pk.ppf(u)
            return float(np.prod([o.cdf(x) for o in others]))

        kinks = [pk.cdf(o.mean) for o in others]
        out.append(max(_quad(integrand, 0.0, 1.0, kinks), 0.0))
    total = sum(out)
    return tuple(v / total for v in out)


def expected_loss(posteriors: Sequence[Posterior]) -> tuple[float, ...]:
    """Expected loss of choosing each arm: ``E[max_j θ_j - θ_k]`` (in rate units).

    ``E[max_j θ_j] = ∫ (1 - Π_j F_j(x)) dx``; below the highest lower tail the integrand is 1
    and above the highest upper tail it is 0, so only that window is integrated.

    Examples
    --------
    >>> ps = [beta_posterior(BinaryStatistic(1000, k)) for k in (100, 120)]
    >>> [round(x, 5) for x in expected_loss(ps)]
    [0.02044, 0.00048]
    """
    lo = max(p.ppf(_EPS) for p in posteriors)
    hi = max(p.ppf(1 - _EPS) for p in posteriors)

    def integrand(x: float) -> float:
        return 1.0 - float(np.prod([p.cdf(x) for p in posteriors]))

    e_max = lo + (_quad(integrand, lo, hi, [p.mean for p in posteriors]) if hi > lo else 0.0)
    return tuple(max(e_max - p.mean, 0.0) for p in posteriors)
