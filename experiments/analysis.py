"""From sufficient statistics to one frozen :class:`ExperimentResult`.

Degenerate data (an arm without units, no conversions, too few units) never raises: the result
carries plain-language ``warnings`` and the recommendation says to keep running. Only inputs
that break a contract (unknown control arm, missing metric) raise
:class:`~inboxlab.errors.InvalidInputError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from experiments.bayes import (
    ApproxPosterior,
    Posterior,
    beta_posterior,
    chance_to_beat,
    expected_loss,
    lift_interval,
    probability_best,
    ratio_exceeds,
)
from experiments.decision import Recommendation, recommend
from experiments.means import Lift, mean_lift, mean_posterior, weighted_lift
from experiments.segments import SegmentLift, log_lift, shrink_segments
from experiments.source import ExperimentData, MetricKind, TimelinePoint
from experiments.srm import SrmResult, srm_check, srm_from_propensities
from experiments.statistics import BinaryStatistic, MeanStatistic, Statistic, WeightedStatistic
from inboxlab.errors import InvalidInputError
from inboxlab.experiment import DEFAULT_GUARDRAILS, GuardrailSpec

__all__ = [
    "ArmResult",
    "ExperimentResult",
    "GuardrailResult",
    "MetricResult",
    "analyze",
]

PRIMARY_CANDIDATES = ("click", "convert", "open", "revenue")


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm on one metric. ``lift`` and ``ipw_lift`` are None for the control."""

    arm: str
    is_control: bool
    units: int
    value: float
    posterior_mean: float
    ci_low: float
    ci_high: float
    lift: Lift | None
    probability_best: float
    expected_loss: float
    successes: int | None = None
    ipw_value: float | None = None
    ipw_lift: Lift | None = None


@dataclass(frozen=True, slots=True)
class MetricResult:
    """Every arm's result on one metric."""

    metric: str
    kind: MetricKind
    arms: tuple[ArmResult, ...]

    def arm(self, name: str) -> ArmResult:
        """The result of the arm called ``name``."""
        return next(a for a in self.arms if a.arm == name)


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """P(arm's guardrail rate > control's × (1 + margin)), flagged above a threshold."""

    metric: str
    arm: str
    margin: float
    control_rate: float
    arm_rate: float
    probability_worse: float
    flagged: bool


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """The whole analysis of an experiment: what reports render."""

    experiment_id: str
    experiment_type: Literal["ab", "bandit"]
    control: str
    primary: MetricResult
    secondary: tuple[MetricResult, ...]
    guardrails: tuple[GuardrailResult, ...]
    srm: SrmResult
    segments: tuple[SegmentLift, ...]
    recommendation: Recommendation
    warnings: tuple[str, ...]
    timeline: tuple[TimelinePoint, ...] = ()
    posteriors: tuple[tuple[str, float, float], ...] = ()  # (arm, alpha, beta) for plots

    @property
    def arms(self) -> tuple[str, ...]:
        """Arm names, control first."""
        return tuple(a.arm for a in self.primary.arms)


def _binary_metric(
    name: str,
    stats: Mapping[str, Statistic],
    arms: Sequence[str],
    control: str,
    weighted: Mapping[str, object] | None,
) -> tuple[MetricResult, dict[str, tuple[float, float]]]:
    posts = {a: beta_posterior(_as_binary(stats[a])) for a in arms}
    ordered: list[Posterior] = [posts[a] for a in arms]
    best = probability_best(ordered)
    loss = expected_loss(ordered)
    results, overall = [], {}
    for i, a in enumerate(arms):
        s, p = _as_binary(stats[a]), posts[a]
        lift = None
        if a != control:
            lo, hi = lift_interval(p, posts[control])
            lift = Lift(p.mean / posts[control].mean - 1, lo, hi, chance_to_beat(p, posts[control]))
            overall[a] = log_lift(s, stats[control])
        ipw_value, ipw = _ipw(weighted, a, control)
        results.append(
            ArmResult(
                a,
                a == control,
                s.n,
                s.rate,
                p.mean,
                p.ci_low,
                p.ci_high,
                lift,
                best[i],
                loss[i],
                s.successes,
                ipw_value,
                ipw,
            )
        )
    return MetricResult(name, "binary", tuple(results)), overall


def _numeric_metric(
    name: str,
    stats: Mapping[str, Statistic],
    arms: Sequence[str],
    control: str,
    weighted: Mapping[str, object] | None,
) -> tuple[MetricResult, dict[str, tuple[float, float]]]:
    posts = {a: mean_posterior(_as_mean(stats[a])) for a in arms}
    approx: list[Posterior] = []
    for a in arms:
        p = posts[a]
        if math.isfinite(p.log_sd) and p.log_sd > 0:
            approx.append(ApproxPosterior(math.log(p.mean) - p.log_sd**2 / 2, p.log_sd, log=True))
        elif math.isfinite(p.sd) and p.sd > 0:
            approx.append(ApproxPosterior(p.mean, p.sd))
    usable = len(approx) == len(arms)
    best = probability_best(approx) if usable else (math.nan,) * len(arms)
    loss = expected_loss(approx) if usable else (math.nan,) * len(arms)
    results, overall = [], {}
    for i, a in enumerate(arms):
        s, p = _as_mean(stats[a]), posts[a]
        lift = None
        if a != control:
            lift = mean_lift(p, posts[control])
            overall[a] = log_lift(s, stats[control])
        ipw_value, ipw = _ipw(weighted, a, control)
        results.append(
            ArmResult(
                a,
                a == control,
                s.n,
                s.mean,
                p.mean,
                p.ci_low,
                p.ci_high,
                lift,
                best[i],
                loss[i],
                None,
                ipw_value,
                ipw,
            )
        )
    return MetricResult(name, "numeric", tuple(results)), overall


def _ipw(
    weighted: Mapping[str, object] | None, arm: str, control: str
) -> tuple[float | None, Lift | None]:
    if weighted is None:
        return None, None
    w, c = weighted.get(arm), weighted.get(control)
    if not isinstance(w, WeightedStatistic) or not isinstance(c, WeightedStatistic):
        return None, None
    return w.mean, (weighted_lift(w, c) if arm != control else None)


def _as_binary(s: Statistic) -> BinaryStatistic:
    return s if isinstance(s, BinaryStatistic) else BinaryStatistic(s.n, s.nonzero)


def _as_mean(s: Statistic) -> MeanStatistic:
    if isinstance(s, MeanStatistic):
        return s
    return MeanStatistic(s.n, float(s.successes), float(s.successes), s.successes)


def _empty(kind: MetricKind, n: int = 0) -> Statistic:
    return BinaryStatistic(n, 0) if kind == "binary" else MeanStatistic(n, 0.0, 0.0, 0)


def _metric(
    data: ExperimentData, name: str, arms: Sequence[str], control: str
) -> tuple[MetricResult, dict[str, tuple[float, float]]]:
    kind = data.metrics[name]
    stats = {a: data.stats[name].get(a, _empty(kind)) for a in arms}
    weighted = data.weighted.get(name) if data.weighted else None
    if kind == "binary":
        return _binary_metric(name, stats, arms, control, weighted)
    return _numeric_metric(name, stats, arms, control, weighted)


def _guardrails(
    data: ExperimentData,
    specs: Sequence[GuardrailSpec],
    arms: Sequence[str],
    control: str,
    warnings: list[str],
    explicit: bool,
) -> tuple[GuardrailResult, ...]:
    out = []
    for g in specs:
        if g.metric not in data.metrics:
            if explicit:
                warnings.append(f"guardrail {g.metric!r} is not in the data; not checked")
            continue
        stats = data.stats[g.metric]
        c = beta_posterior(_as_binary(stats.get(control, _empty("binary"))))
        for a in arms:
            if a == control:
                continue
            s = _as_binary(stats.get(a, _empty("binary")))
            if s.n == 0:  # the prior alone would "exceed" a low rate: no data, no verdict
                continue
            t = beta_posterior(s)
            # "Worse by more than the margin": the arm's rate exceeds control's × (1 + margin).
            p = ratio_exceeds(t, c, 1.0 + g.margin)
            out.append(
                GuardrailResult(g.metric, a, g.margin, c.mean, t.mean, p, p > g.flag_probability)
            )
    return tuple(out)


def analyze(
    data: ExperimentData,
    *,
    control: str,
    primary: str | None = None,
    secondary: Sequence[str] = (),
    guardrails: Sequence[GuardrailSpec] | None = None,
    experiment_id: str = "experiment",
    experiment_type: Literal["ab", "bandit"] | None = None,
    arms: Sequence[str] = (),
    weights: Mapping[str, float] | None = None,
    min_units: int = 100,
) -> ExperimentResult:
    """Analyse aggregated data: every statistic of the report, the SRM check and a decision.

    ``arms`` adds arms that should exist but have no data (they get zero units and a warning).
    ``weights`` are the A/B traffic shares (equal by default). ``experiment_type`` defaults to
    ``bandit`` when the data carries logged propensities.

    Raises
    ------
    InvalidInputError
        When the control arm or a requested metric is not in the data.
    """
    warnings: list[str] = []
    all_arms = list(dict.fromkeys([*arms, *data.arms]))
    if control not in all_arms:
        raise InvalidInputError(
            f"control arm {control!r} is not in the data; arms are {sorted(data.arms)}",
            field="control",
        )
    names = [control, *sorted(a for a in all_arms if a != control)]
    guard_specs = DEFAULT_GUARDRAILS if guardrails is None else tuple(guardrails)
    guard_names = {g.metric for g in guard_specs}
    if primary is None:
        candidates = [m for m in data.metrics if m not in guard_names]
        primary = next((m for m in PRIMARY_CANDIDATES if m in candidates), None) or (
            candidates[0] if candidates else next(iter(data.metrics))
        )
    for m in [primary, *secondary]:
        if m not in data.metrics:
            raise InvalidInputError(
                f"metric {m!r} is not in the data; metrics are {sorted(data.metrics)}",
                field="metric",
            )
    units = {a: data.units.get(a, 0) for a in names}
    for a in names:
        if units[a] == 0:
            warnings.append(f"arm {a!r} has no units; its results are the prior only")
        elif units[a] < min_units:
            warnings.append(f"arm {a!r} has {units[a]} units, fewer than the minimum {min_units}")
    kind = data.metrics[primary]
    for a in names:
        s = data.stats[primary].get(a)
        if s is not None and s.n > 0 and _as_mean(s).nonzero == 0:
            warnings.append(f"arm {a!r} has no {primary} events yet")
    primary_result, overall = _metric(data, primary, names, control)
    secondary_results = tuple(_metric(data, m, names, control)[0] for m in secondary)
    guards = _guardrails(data, guard_specs, names, control, warnings, guardrails is not None)

    etype = experiment_type or ("bandit" if data.propensity else "ab")
    if etype == "bandit" and data.propensity:
        srm = srm_from_propensities(data.propensity)
    else:
        if etype == "bandit":
            warnings.append(
                "bandit data without logged propensities: SRM checked against equal weights"
            )
        w = dict(weights) if weights else dict.fromkeys(names, 1.0)
        srm = srm_check(units, w)
    if srm.flagged:
        warnings.append(f"sample ratio mismatch (p = {srm.p_value:.2g}); results are not reliable")
    if etype == "bandit" and not data.weighted:
        warnings.append("no logged propensities: bandit effects are naive (not re-weighted)")

    segs: tuple[SegmentLift, ...] = ()
    if data.segments and data.segment_metric == primary:
        segs = shrink_segments(data.segments, control, names[1:], overall, warnings)

    posteriors: tuple[tuple[str, float, float], ...] = ()
    if kind == "binary":
        posteriors = tuple(
            (a.arm, 1.0 + (a.successes or 0), 1.0 + a.units - (a.successes or 0))
            for a in primary_result.arms
        )
    decision = recommend(primary_result, guards, srm, warnings_blocking=_blocking(units, min_units))
    return ExperimentResult(
        experiment_id=experiment_id,
        experiment_type=etype,
        control=control,
        primary=primary_result,
        secondary=secondary_results,
        guardrails=guards,
        srm=srm,
        segments=segs,
        recommendation=decision,
        warnings=tuple(warnings),
        timeline=data.timeline,
        posteriors=posteriors,
    )


def _blocking(units: Mapping[str, int], min_units: int) -> str | None:
    small = [a for a, n in units.items() if n < min_units]
    if small:
        return f"arm(s) {', '.join(small)} have fewer than {min_units} units"
    return None
