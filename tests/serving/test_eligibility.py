from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from inboxlab.records import Action
from serving.assignment import in_holdout
from serving.eligibility import EligibilityConfig, RecipientState, evaluate, fatigue_score

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SALT = "holdout-salt"


def hours_ago(*hours: float) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(hours=h) for h in hours)


def recipient(*, global_holdout: bool, experiment_holdout: bool) -> str:
    """The first recipient id in (or out of) the 10 % global and experiment holdouts."""
    return next(
        f"r-{i}"
        for i in range(10_000)
        if in_holdout(SALT, "global", f"r-{i}", percentage=10) == global_holdout
        and in_holdout(SALT, "exp-1", f"r-{i}", percentage=10) == experiment_holdout
    )


HELD_GLOBAL = recipient(global_holdout=True, experiment_holdout=False)
HELD_EXPERIMENT = recipient(global_holdout=False, experiment_holdout=True)
FREE = recipient(global_holdout=False, experiment_holdout=False)

CASES = [
    # (name, state, recipient, config overrides, action, reasons)
    ("nothing fires", RecipientState(), FREE, {}, Action.SEND, ()),
    (
        "unsubscribed",
        RecipientState(unsubscribed=True),
        FREE,
        {},
        Action.SUPPRESS,
        ("unsubscribed",),
    ),
    ("complained", RecipientState(complained=True), FREE, {}, Action.SUPPRESS, ("complained",)),
    ("bounced", RecipientState(hard_bounced=True), FREE, {}, Action.SUPPRESS, ("hard_bounced",)),
    (
        "every consent reason",
        RecipientState(unsubscribed=True, complained=True, hard_bounced=True),
        FREE,
        {},
        Action.SUPPRESS,
        ("unsubscribed", "complained", "hard_bounced"),
    ),
    ("global holdout", RecipientState(), HELD_GLOBAL, {}, Action.HOLDOUT, ("holdout:global",)),
    (
        "experiment holdout",
        RecipientState(),
        HELD_EXPERIMENT,
        {},
        Action.HOLDOUT,
        ("holdout:experiment",),
    ),
    (
        "both holdouts",
        RecipientState(),
        recipient(global_holdout=True, experiment_holdout=True),
        {},
        Action.HOLDOUT,
        ("holdout:global", "holdout:experiment"),
    ),
    (
        "suppression wins over holdout",
        RecipientState(unsubscribed=True),
        HELD_GLOBAL,
        {},
        Action.SUPPRESS,
        ("unsubscribed", "holdout:global"),
    ),
    (
        "1-day cap",
        RecipientState(send_times=hours_ago(2)),
        FREE,
        {"max_sends_1d": 1},
        Action.SUPPRESS,
        ("frequency_cap:1d",),
    ),
    (
        "send older than a day",
        RecipientState(send_times=hours_ago(25)),
        FREE,
        {"max_sends_1d": 1},
        Action.SEND,
        (),
    ),
    (
        "7-day cap",
        RecipientState(send_times=hours_ago(30, 50, 100)),
        FREE,
        {"max_sends_7d": 3},
        Action.SUPPRESS,
        ("frequency_cap:7d",),
    ),
    (
        "under the 7-day cap",
        RecipientState(send_times=hours_ago(30, 200)),
        FREE,
        {"max_sends_7d": 2},
        Action.SEND,
        (),
    ),
    (
        "both caps",
        RecipientState(send_times=hours_ago(1, 2)),
        FREE,
        {"max_sends_1d": 2, "max_sends_7d": 2},
        Action.SUPPRESS,
        ("frequency_cap:1d", "frequency_cap:7d"),
    ),
    (
        "fatigued",
        RecipientState(send_times=hours_ago(1, 5, 10)),
        FREE,
        {"fatigue_threshold": 2.5},
        Action.SUPPRESS,
        ("fatigue",),
    ),
    (
        "engagement relieves fatigue",
        RecipientState(send_times=hours_ago(1, 5, 10), engagement_times=hours_ago(2, 6)),
        FREE,
        {"fatigue_threshold": 2.5},
        Action.SEND,
        (),
    ),
]


@pytest.mark.parametrize(
    ("state", "recipient", "overrides", "action", "reasons"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rules_give_the_action_and_every_reason(
    state: RecipientState,
    recipient: str,
    overrides: dict[str, float],
    action: Action,
    reasons: tuple[str, ...],
) -> None:
    config = EligibilityConfig(holdout_salt=SALT, global_holdout_pct=10, **overrides)
    result = evaluate(
        config,
        state,
        recipient_id=recipient,
        now=NOW,
        experiment_id="exp-1",
        experiment_holdout_pct=10,
    )
    assert (result.action, result.reasons) == (action, reasons)


def test_experiment_holdout_needs_an_experiment() -> None:
    config = EligibilityConfig(holdout_salt=SALT)
    result = evaluate(config, RecipientState(), recipient_id=HELD_EXPERIMENT, now=NOW)
    assert result.action == Action.SEND


def test_fatigue_halves_every_half_life() -> None:
    state = RecipientState(send_times=hours_ago(0, 72, 144))
    score = fatigue_score(state, now=NOW, half_life_hours=72, engagement_relief=1)
    assert score == pytest.approx(1 + 0.5 + 0.25)


def test_fatigue_is_never_negative() -> None:
    state = RecipientState(engagement_times=hours_ago(1, 2))
    assert fatigue_score(state, now=NOW, half_life_hours=72, engagement_relief=1) == 0.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"holdout_salt": ""},
        {"global_holdout_pct": 101},
        {"global_holdout_pct": -1},
        {"max_sends_1d": 0},
        {"max_sends_7d": -3},
        {"fatigue_threshold": 0},
        {"fatigue_half_life_hours": 0},
        {"engagement_relief": -1},
        {"unknown_rule": 1},
    ],
)
def test_invalid_config_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EligibilityConfig(**{"holdout_salt": SALT, **overrides})


def test_config_is_immutable() -> None:
    config = EligibilityConfig(holdout_salt=SALT)
    with pytest.raises(ValidationError):
        config.max_sends_1d = 3  # type: ignore[misc]
