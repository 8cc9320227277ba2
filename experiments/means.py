"""Numeric metrics (revenue per recipient) and inverse-propensity-weighted effects.

Revenue per recipient is zero-inflated (most recipients buy nothing) and heavy-tailed (a few
orders are large). A normal approximation on the raw per-recipient mean mixes the two sources
of noise, and its standard error is dominated by the rare large orders. We therefore split it::

    revenue per recipient = conversion rate p × mean order value m

and put an approximate posterior on the *logarithm*: ``log RPR = log p + log m``, with ``p``
from its Beta posterior (exact even for a handful of conversions) and ``m`` from the central
limit theorem over converters only. By the delta method::

    Var(log RPR) ≈ Var(p)/E[p]² + s²_m / (k · m²)         (k = number of converters)

A flat prior on the log scale makes the posterior of ``log RPR_t - log RPR_c`` normal, so the
relative lift ``exp(·) - 1`` has an asymmetric interval (as ratios should) and the chance to
beat control is ``Φ(mean / sd)``. When a metric can be negative the log does not exist and the
plain normal approximation on means with the delta method for the ratio is used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from experiments.statistics import MeanStatistic, WeightedStatistic

__all__ = ["Lift", "MeanPosterior", "mean_lift", "mean_posterior", "weighted_lift"]

_Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True, slots=True)
class MeanPosterior:
    """Approximate posterior of a per-unit mean.

    ``log_sd`` is the posterior sd of ``log(mean)`` (NaN when the mean is not positive); the
    conversion rate and order value are the two factors of the decomposition.
    """

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    log_sd: float
    conversion_rate: float
    order_value: float


@dataclass(frozen=True, slots=True)
class Lift:
    """Relative lift against control with its 95 % interval and chance to beat control."""

    estimate: float
    ci_low: float
    ci_high: float
    chance_to_beat: float


def mean_posterior(stat: MeanStatistic) -> MeanPosterior:
    """Posterior of a numeric metric's mean per unit (see the module docstring).

    Examples
    --------
    >>> p = mean_posterior(MeanStatistic(n=1000, total=500.0, total_sq=12500.0, nonzero=50))
    >>> round(p.mean, 3), round(p.log_sd, 3), round(p.conversion_rate, 4), p.order_value
    (0.509, 0.222, 0.0509, 10.0)
    """
    nan = math.nan
    if stat.n == 0:
        return MeanPosterior(nan, nan, nan, nan, nan, nan, nan)
    k = stat.nonzero
    # Conversion rate: Beta(1 + k, 1 + n - k) posterior moments.
    a, b = 1.0 + k, 1.0 + stat.n - k
    p = a / (a + b)
    var_p = a * b / ((a + b) ** 2 * (a + b + 1))
    m = stat.nonzero_mean
    if k >= 2 and m > 0 and stat.total_sq >= 0:
        var_log = var_p / p**2 + stat.nonzero_variance / (k * m * m)
        log_sd = math.sqrt(var_log)
        centre = p * m
        lo, hi = centre * math.exp(-_Z95 * log_sd), centre * math.exp(_Z95 * log_sd)
        return MeanPosterior(centre, centre * log_sd, lo, hi, log_sd, p, m)
    # Negative values or too few non-zero units: plain normal approximation on the mean.
    mean = stat.mean
    sd = math.sqrt(stat.variance / stat.n) if stat.n >= 2 else nan
    return MeanPosterior(mean, sd, mean - _Z95 * sd, mean + _Z95 * sd, nan, p, m)


def _lift_from(mt: float, sdt: float, lt: float, mc: float, sdc: float, lc: float) -> Lift:
    nan = math.nan
    if math.isfinite(lt) and math.isfinite(lc) and mt > 0 and mc > 0:
        d = math.log(mt) - math.log(mc)
        sd = math.hypot(lt, lc)
        if sd == 0:
            return Lift(math.expm1(d), math.expm1(d), math.expm1(d), float(d > 0))
        return Lift(
            math.expm1(d),
            math.expm1(d - _Z95 * sd),
            math.expm1(d + _Z95 * sd),
            float(stats.norm.cdf(d / sd)),
        )
    if not (math.isfinite(sdt) and math.isfinite(sdc)) or mc == 0:
        return Lift(nan, nan, nan, nan)
    # Delta method for the ratio: Var(mt/mc) ≈ sdt²/mc² + mt²·sdc²/mc⁴.
    lift = mt / mc - 1
    sd = math.sqrt(sdt**2 / mc**2 + mt**2 * sdc**2 / mc**4)
    diff_sd = math.hypot(sdt, sdc)
    chance = float(stats.norm.cdf((mt - mc) / diff_sd)) if diff_sd > 0 else float(mt > mc)
    return Lift(lift, lift - _Z95 * sd, lift + _Z95 * sd, chance)


def mean_lift(treatment: MeanPosterior, control: MeanPosterior) -> Lift:
    """Relative lift of a numeric metric's mean against control.

    Examples
    --------
    >>> c = mean_posterior(MeanStatistic(1000, 500.0, 12500.0, 50))
    >>> t = mean_posterior(MeanStatistic(1000, 700.0, 17500.0, 70))
    >>> lift = mean_lift(t, c)
    >>> round(lift.estimate, 3), round(lift.chance_to_beat, 3)
    (0.392, 0.873)
    """
    return _lift_from(
        treatment.mean, treatment.sd, treatment.log_sd, control.mean, control.sd, control.log_sd
    )


def weighted_lift(treatment: WeightedStatistic, control: WeightedStatistic) -> Lift:
    """Lift of self-normalised IPW means (bandit data), by the delta method on the log ratio.

    The Hájek means estimate what each arm would have averaged over *all* units, so a bandit
    that moved traffic between arms while the audience changed (weekday/weekend, fresh vs
    fatigued recipients) does not bias the comparison as the naive per-arm means can.

    Examples
    --------
    >>> c = WeightedStatistic(100, 200.0, 20.0, 400.0, 40.0, 40.0)
    >>> t = WeightedStatistic(100, 200.0, 30.0, 400.0, 60.0, 60.0)
    >>> round(weighted_lift(t, c).estimate, 3)
    0.5
    """
    mt, mc = treatment.mean, control.mean
    sdt, sdc = math.sqrt(treatment.mean_variance), math.sqrt(control.mean_variance)
    lt = sdt / mt if mt > 0 else math.nan
    lc = sdc / mc if mc > 0 else math.nan
    return _lift_from(mt, sdt, lt, mc, sdc, lc)
