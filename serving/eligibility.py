"""Eligibility rules: consent, holdouts, frequency caps and fatigue, as pure functions.

Every rule that fires adds a reason; the action follows from the reasons. A suppression wins
over a holdout: a held-out recipient who could not have been sent anyway is not a valid
counterfactual for the treated group, so counting them as ``holdout`` would bias the lift.

Examples
--------
>>> from datetime import UTC, datetime
>>> config = EligibilityConfig(holdout_salt="s", max_sends_7d=3)
>>> now = datetime(2026, 3, 1, tzinfo=UTC)
>>> evaluate(config, RecipientState(unsubscribed=True), recipient_id="r-1", now=now)
Eligibility(action=<Action.SUPPRESS: 'suppress'>, reasons=('unsubscribed',))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from inboxlab.records import Action
from serving.assignment import in_holdout

__all__ = [
    "Eligibility",
    "EligibilityConfig",
    "RecipientState",
    "evaluate",
    "fatigue_score",
]

GLOBAL_HOLDOUT_SCOPE = "global"


class EligibilityConfig(BaseModel):
    """The eligibility rules of a deployment (immutable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    holdout_salt: str = Field(min_length=1, description="Secret salt of the holdout hash.")
    global_holdout_pct: float = Field(default=0.0, ge=0, le=100)
    max_sends_1d: int | None = Field(default=None, ge=1, description="Sends allowed per 24 h.")
    max_sends_7d: int | None = Field(default=None, ge=1, description="Sends allowed per 7 days.")
    fatigue_threshold: float | None = Field(
        default=None, gt=0, description="Suppress when the fatigue score reaches this."
    )
    fatigue_half_life_hours: float = Field(default=72.0, gt=0)
    engagement_relief: float = Field(
        default=1.0, ge=0, description="How much one engagement offsets one send in fatigue."
    )


@dataclass(frozen=True, slots=True)
class RecipientState:
    """What the rules need to know about one recipient (UTC timestamps)."""

    unsubscribed: bool = False
    complained: bool = False
    hard_bounced: bool = False
    send_times: tuple[datetime, ...] = ()
    engagement_times: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The outcome of the rules: an action and every reason behind it."""

    action: Action
    reasons: tuple[str, ...]


def fatigue_score(
    state: RecipientState, *, now: datetime, half_life_hours: float, engagement_relief: float
) -> float:
    """Exponentially decayed sends minus decayed engagements, never below zero.

    Each send adds 1 and each human engagement (open, click, convert) subtracts
    ``engagement_relief``, both halving every ``half_life_hours``. Someone who keeps engaging
    tolerates more email than someone who ignores it, and old history fades.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 3, 1, tzinfo=UTC)
    >>> state = RecipientState(send_times=(now, now - timedelta(hours=24)))
    >>> fatigue_score(state, now=now, half_life_hours=24, engagement_relief=1)
    1.5
    """
    rate = math.log(2) / (half_life_hours * 3600.0)

    def decayed(times: tuple[datetime, ...]) -> float:
        # Future timestamps (clock skew) count as now rather than growing without bound.
        return math.fsum(math.exp(-rate * max((now - t).total_seconds(), 0.0)) for t in times)

    return max(decayed(state.send_times) - engagement_relief * decayed(state.engagement_times), 0.0)


def _sends_within(state: RecipientState, now: datetime, window: timedelta) -> int:
    return sum(1 for t in state.send_times if now - window < t <= now)


def evaluate(
    config: EligibilityConfig,
    state: RecipientState,
    *,
    recipient_id: str,
    now: datetime,
    experiment_id: str | None = None,
    experiment_holdout_pct: float = 0.0,
) -> Eligibility:
    """Apply every rule to one recipient and return the action with all reasons.

    Reasons, in order: ``unsubscribed``, ``complained``, ``hard_bounced``,
    ``holdout:global``, ``holdout:experiment``, ``frequency_cap:1d``, ``frequency_cap:7d``,
    ``fatigue``. Any consent, cap or fatigue reason gives ``suppress``; otherwise any holdout
    reason gives ``holdout``; otherwise ``send``.
    """
    consent: list[str] = []
    holdout: list[str] = []
    frequency: list[str] = []
    if state.unsubscribed:
        consent.append("unsubscribed")
    if state.complained:
        consent.append("complained")
    if state.hard_bounced:
        consent.append("hard_bounced")
    if config.global_holdout_pct > 0 and in_holdout(
        config.holdout_salt,
        GLOBAL_HOLDOUT_SCOPE,
        recipient_id,
        percentage=config.global_holdout_pct,
    ):
        holdout.append("holdout:global")
    if (
        experiment_id is not None
        and experiment_holdout_pct > 0
        and in_holdout(
            config.holdout_salt, experiment_id, recipient_id, percentage=experiment_holdout_pct
        )
    ):
        holdout.append("holdout:experiment")
    caps = (
        ("1d", config.max_sends_1d, timedelta(days=1)),
        ("7d", config.max_sends_7d, timedelta(days=7)),
    )
    for label, cap, window in caps:
        if cap is not None and _sends_within(state, now, window) >= cap:
            frequency.append(f"frequency_cap:{label}")
    if config.fatigue_threshold is not None:
        score = fatigue_score(
            state,
            now=now,
            half_life_hours=config.fatigue_half_life_hours,
            engagement_relief=config.engagement_relief,
        )
        if score >= config.fatigue_threshold:
            frequency.append("fatigue")
    reasons = (*consent, *holdout, *frequency)
    if consent or frequency:
        return Eligibility(Action.SUPPRESS, reasons)
    if holdout:
        return Eligibility(Action.HOLDOUT, reasons)
    return Eligibility(Action.SEND, reasons)
