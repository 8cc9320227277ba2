"""Per-segment lifts shrunk toward the overall effect (empirical-Bayes normal model).

With ten segments, one will look like a big winner by chance. Each segment's log-lift
``y_i`` (standard error ``s_i``) is modelled as ``y_i ~ N(θ_i, s_i²)``, ``θ_i ~ N(μ, τ²)``,
with ``μ`` the overall log-lift and ``τ²`` the between-segment variance estimated by the
DerSimonian–Laird moment estimator. The posterior mean of ``θ_i`` pulls ``y_i`` toward ``μ``
by the factor ``B_i = s_i² / (s_i² + τ²)``: small, noisy segments move most, and when the
segments differ no more than noise would make them (``τ² = 0``) they all collapse onto ``μ``.
The posterior variance ``(1 - B_i)·s_i² + B_i²·s_μ²`` carries the uncertainty of ``μ`` as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

from experiments.bayes import beta_posterior
from experiments.means import mean_posterior
from experiments.statistics import BinaryStatistic, Statistic

__all__ = ["SegmentLift", "log_lift", "shrink", "shrink_segments"]

_Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True, slots=True)
class SegmentLift:
    """One segment level's lift of one arm over control, raw and shrunk."""

    column: str
    level: str
    arm: str
    units: int
    raw_lift: float
    lift: float
    ci_low: float
    ci_high: float
    chance_to_beat: float
    shrinkage: float


def log_lift(treatment: Statistic, control: Statistic) -> tuple[float, float]:
    """Log of the ratio of posterior means and its delta-method standard error.

    Examples
    --------
    >>> y, s = log_lift(BinaryStatistic(1000, 120), BinaryStatistic(1000, 100))
    >>> round(y, 4), round(s, 4)
    (0.1807, 0.1271)
    """
    if isinstance(treatment, BinaryStatistic) and isinstance(control, BinaryStatistic):
        pt, pc = beta_posterior(treatment), beta_posterior(control)

        def var_log(a: float, b: float) -> float:
            # Var(θ)/E[θ]² for Beta(a, b) simplifies to b / (a (a + b + 1)).
            return b / (a * (a + b + 1))

        return (
            math.log(pt.mean) - math.log(pc.mean),
            math.sqrt(var_log(pt.alpha, pt.beta) + var_log(pc.alpha, pc.beta)),
        )
    if isinstance(treatment, BinaryStatistic) or isinstance(control, BinaryStatistic):
        raise TypeError("treatment and control must be statistics of the same kind")
    mt, mc = mean_posterior(treatment), mean_posterior(control)
    if not (mt.mean > 0 and mc.mean > 0 and math.isfinite(mt.log_sd + mc.log_sd)):
        return math.nan, math.nan
    return math.log(mt.mean) - math.log(mc.mean), math.hypot(mt.log_sd, mc.log_sd)


def shrink(
    estimates: Sequence[float], std_errors: Sequence[float], overall: float, overall_se: float
) -> tuple[list[float], list[float], list[float]]:
    """Empirical-Bayes shrinkage of estimates toward ``overall``.

    Returns the shrunk means, their posterior standard deviations and the shrinkage factors.

    Examples
    --------
    >>> m, s, b = shrink([0.5, -0.1, 0.1], [0.3, 0.3, 0.05], 0.1, 0.04)
    >>> [round(x, 3) for x in m], [round(x, 2) for x in b]
    ([0.121, 0.09, 0.1], [0.95, 0.95, 0.34])
    """
    y = list(estimates)
    v = [s * s for s in std_errors]
    k = len(y)
    if k < 2:
        tau2 = math.inf
    else:
        w = [1 / vi for vi in v]
        sw = sum(w)
        ybar = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sw
        q = sum(wi * (yi - ybar) ** 2 for wi, yi in zip(w, y, strict=True))
        denom = sw - sum(wi * wi for wi in w) / sw
        tau2 = max(0.0, (q - (k - 1)) / denom) if denom > 0 else 0.0
    means, sds, factors = [], [], []
    for yi, vi in zip(y, v, strict=True):
        b = 0.0 if math.isinf(tau2) else vi / (vi + tau2)
        means.append(overall + (1 - b) * (yi - overall))
        sds.append(math.sqrt((1 - b) * vi + b * b * overall_se**2))
        factors.append(b)
    return means, sds, factors


def shrink_segments(
    segments: Mapping[str, Mapping[str, Mapping[str, Statistic]]],
    control: str,
    treatments: Sequence[str],
    overall: Mapping[str, tuple[float, float]],
    warnings: list[str],
) -> tuple[SegmentLift, ...]:
    """Shrunk lifts for every segment column, level and treatment arm.

    ``overall`` maps each treatment arm to its overall (log-lift, standard error). Levels where
    an arm has no units or the lift is undefined are skipped with a warning.
    """
    out: list[SegmentLift] = []
    for column, levels in segments.items():
        for arm in treatments:
            if arm not in overall or not all(map(math.isfinite, overall[arm])):
                continue
            rows: list[tuple[str, int, float, float]] = []
            for level, by_arm in levels.items():
                t, c = by_arm.get(arm), by_arm.get(control)
                if t is None or c is None or t.n == 0 or c.n == 0:
                    warnings.append(f"segment {column}={level}: no units in {arm} or {control}")
                    continue
                y, s = log_lift(t, c)
                if not (math.isfinite(y) and math.isfinite(s) and s > 0):
                    warnings.append(f"segment {column}={level}: lift of {arm} is undefined")
                    continue
                rows.append((level, t.n + c.n, y, s))
            mu, mu_se = overall[arm]
            means, sds, factors = shrink([r[2] for r in rows], [r[3] for r in rows], mu, mu_se)
            for (level, n, y, _), m, sd, b in zip(rows, means, sds, factors, strict=True):
                out.append(
                    SegmentLift(
                        column=column,
                        level=level,
                        arm=arm,
                        units=n,
                        raw_lift=math.expm1(y),
                        lift=math.expm1(m),
                        ci_low=math.expm1(m - _Z95 * sd),
                        ci_high=math.expm1(m + _Z95 * sd),
                        chance_to_beat=float(stats.norm.cdf(m / sd)) if sd > 0 else float(m > 0),
                        shrinkage=b,
                    )
                )
    return tuple(out)
