"""The plain-language recommendation and the rule that produced it.

Rules, checked in order (the first that applies wins):

1. **srm** — the sample-ratio check is flagged: *stop* and fix assignment or logging; no
   effect estimate can be trusted.
2. **minimum-sample** — an arm has fewer units than the minimum: *keep running*.
3. **guardrail** — every variant likely harms a guardrail beyond its margin: *stop*.
4. **winner** — a variant with no flagged guardrail has a chance to beat control of at least
   95 % and an expected loss (the rate you give up if it is in fact not the best) of at most
   1 % of the control's value: *ship* it (highest probability of being best among those).
5. **control-wins** — every variant has at most a 5 % chance to beat control: *stop* and keep
   the control.
6. **undecided** — otherwise: *keep running*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from experiments.analysis import GuardrailResult, MetricResult
    from experiments.srm import SrmResult

__all__ = ["CHANCE_TO_SHIP", "RELATIVE_LOSS_TO_SHIP", "Recommendation", "recommend"]

CHANCE_TO_SHIP = 0.95
#: Expected loss tolerated, relative to the control's value (1 % of the control click rate).
RELATIVE_LOSS_TO_SHIP = 0.01

Decision = Literal["ship", "keep running", "stop"]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What to do, which arm it concerns, the rule that fired and one sentence for people."""

    decision: Decision
    arm: str | None
    rule: str
    text: str


def _pct(x: float) -> str:
    # "100.0%" would overstate certainty: a posterior probability is never exactly one.
    return ">99.9%" if 0.999 < x < 1 else f"{x:.1%}"


def recommend(
    primary: MetricResult,
    guardrails: Sequence[GuardrailResult],
    srm: SrmResult,
    *,
    warnings_blocking: str | None = None,
) -> Recommendation:
    """Apply the rules of the module docstring to a primary-metric result."""
    if srm.flagged:
        return Recommendation(
            "stop",
            None,
            "srm",
            f"Stop: traffic split does not match the design (sample ratio mismatch, "
            f"p = {srm.p_value:.2g} < 0.001). Fix assignment or logging before reading results.",
        )
    if warnings_blocking:
        return Recommendation(
            "keep running", None, "minimum-sample", f"Keep running: {warnings_blocking}."
        )
    control = next(a for a in primary.arms if a.is_control)
    treatments = [a for a in primary.arms if not a.is_control]
    harmed = {g.arm: g for g in guardrails if g.flagged}
    if treatments and all(t.arm in harmed for t in treatments):
        g = harmed[treatments[0].arm]
        return Recommendation(
            "stop",
            None,
            "guardrail",
            f"Stop: every variant is likely to raise {g.metric} by more than "
            f"{g.margin:.0%} over control.",
        )
    scale = abs(control.posterior_mean) if math.isfinite(control.posterior_mean) else math.nan
    winners = [
        t
        for t in treatments
        if t.arm not in harmed
        and t.lift is not None
        and t.lift.chance_to_beat >= CHANCE_TO_SHIP
        and t.expected_loss <= RELATIVE_LOSS_TO_SHIP * scale
    ]
    if winners:
        w = max(winners, key=lambda t: t.probability_best)
        assert w.lift is not None  # filtered above
        return Recommendation(
            "ship",
            w.arm,
            "winner",
            f"Ship {w.arm}: {_pct(w.lift.chance_to_beat)} chance to beat {control.arm} on "
            f"{primary.metric}, lift {w.lift.estimate:+.1%} "
            f"(95% interval {w.lift.ci_low:+.1%} to {w.lift.ci_high:+.1%}), "
            f"no guardrail flagged.",
        )
    chances = [t.lift.chance_to_beat for t in treatments if t.lift is not None]
    if chances and all(c <= 1 - CHANCE_TO_SHIP for c in chances):
        return Recommendation(
            "stop",
            control.arm,
            "control-wins",
            f"Stop and keep {control.arm}: no variant has more than a "
            f"{1 - CHANCE_TO_SHIP:.0%} chance to beat it on {primary.metric}.",
        )
    lead = max(
        (t for t in treatments if t.lift is not None),
        key=lambda t: t.lift.chance_to_beat if t.lift else 0.0,
        default=None,
    )
    detail = (
        f" Leading variant {lead.arm} has a {_pct(lead.lift.chance_to_beat)} chance to beat "
        f"{control.arm}; {CHANCE_TO_SHIP:.0%} and an expected loss under "
        f"{RELATIVE_LOSS_TO_SHIP:.0%} of control are needed to ship."
        if lead is not None and lead.lift is not None
        else ""
    )
    harm = "".join(f" {g.arm} is flagged on {g.metric}." for g in harmed.values())
    return Recommendation(
        "keep running", None, "undecided", "Keep running: no clear winner yet." + detail + harm
    )
