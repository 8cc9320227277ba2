"""Records that cross package boundaries: events, decisions, outcomes.

Field names are the contract of DESIGN.md ("Event record", "HTTP API"); fields may be added,
none renamed without a version bump. Decisions use Open Bandit Pipeline's vocabulary where it
fits (``action``, ``pscore``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "EMAIL_PATTERN",
    "ENGAGEMENT_KINDS",
    "EVENT_COLUMNS",
    "Action",
    "DecisionRecord",
    "EventKind",
    "EventRecord",
    "RecipientId",
    "UtcDatetime",
    "looks_like_email",
]

#: Anything shaped like ``local@domain.tld`` is refused as a recipient id: PII must not enter.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)


class EventKind(StrEnum):
    """What happened to an email."""

    SEND = "send"
    DELIVER = "deliver"
    OPEN = "open"
    CLICK = "click"
    CONVERT = "convert"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    BOUNCE = "bounce"


#: Kinds that count as a person engaging (machine opens excluded separately).
ENGAGEMENT_KINDS = frozenset({EventKind.OPEN, EventKind.CLICK, EventKind.CONVERT})

#: Column order of the event log and of import files.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "recipient_id",
    "kind",
    "occurred_at",
    "campaign_id",
    "variant_id",
    "decision_id",
    "value",
    "is_machine_open",
)


def looks_like_email(value: str) -> bool:
    """True when ``value`` is shaped like an email address.

    >>> looks_like_email("ann@example.com"), looks_like_email("r-000123")
    (True, False)
    """
    return _EMAIL_RE.match(value) is not None


def _not_email(value: str) -> str:
    if looks_like_email(value):
        raise ValueError("recipient_id must be an opaque id, not an email address")
    return value


def _aware_to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-03-01T09:30:00+01:00")
    return value.astimezone(UTC)


RecipientId = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_not_email)]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_to_utc)]


class EventRecord(BaseModel):
    """One thing that happened to one email sent to one recipient."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str | None = Field(default=None, max_length=256, description="Deduplication key.")
    recipient_id: RecipientId
    kind: EventKind
    occurred_at: UtcDatetime = Field(description="ISO 8601 with offset; stored in UTC.")
    campaign_id: str | None = None
    variant_id: str | None = None
    decision_id: str | None = None
    value: float | None = Field(default=None, ge=0, description="Revenue, for conversions.")
    is_machine_open: bool | None = Field(
        default=None, description="True when the open was made by a machine (e.g. Apple MPP)."
    )


class Action(StrEnum):
    """What the send system should do with this recipient now."""

    SEND = "send"
    SUPPRESS = "suppress"
    HOLDOUT = "holdout"


class DecisionRecord(BaseModel):
    """A decision as stored in the decision log: what was chosen and with what probability."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str
    recipient_id: RecipientId
    campaign_id: str
    experiment_id: str | None = None
    decided_at: UtcDatetime
    action: Action
    reasons: tuple[str, ...] = ()
    variant_id: str | None = None
    variant_propensity: float | None = Field(default=None, ge=0, le=1)
    send_at: UtcDatetime | None = None
    send_time_propensity: float | None = Field(default=None, ge=0, le=1)
    scores: dict[str, float] = Field(default_factory=dict)
    model_versions: dict[str, str] = Field(default_factory=dict)
    segment: str | None = None
    policy: Literal["bandit", "ab", "fixed", "none"] = "none"
