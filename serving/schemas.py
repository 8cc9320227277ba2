"""Request and response bodies of the decision endpoints (the HTTP contract of DESIGN.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inboxlab.records import Action, RecipientId, UtcDatetime
from serving.scoring.send_time import zone

__all__ = [
    "MAX_BATCH",
    "MAX_WINDOW",
    "DecisionRequest",
    "DecisionResponse",
    "RequestContext",
    "Scores",
    "SendWindow",
]

#: Longest send window a decision may scan (hours are scored one by one).
MAX_WINDOW = timedelta(days=14)
#: Most decisions one batch call may ask for.
MAX_BATCH = 100_000

Identifier = Annotated[str, Field(min_length=1, max_length=256)]


class SendWindow(BaseModel):
    """When the email may go out; every whole hour inside is a candidate."""

    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError(f"the window may span at most {MAX_WINDOW.days} days")
        return self


class RequestContext(BaseModel):
    """What the send system knows at render time."""

    model_config = ConfigDict(extra="allow")

    timezone: str | None = Field(default=None, description="IANA zone, e.g. Europe/Berlin.")
    device: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and zone(value).key == "UTC" and value not in ("UTC", "Etc/UTC"):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin")
        return value


class DecisionRequest(BaseModel):
    """``POST /v1/decisions``: one recipient about to receive one campaign."""

    model_config = ConfigDict(extra="forbid")

    recipient_id: RecipientId
    campaign_id: Identifier
    experiment_id: Identifier | None = None
    variants: list[Identifier] | None = Field(default=None, min_length=1, max_length=50)
    send_window: SendWindow | None = None
    # A factory, not a shared instance: pydantic deep-copies a model default on every request.
    context: RequestContext = Field(default_factory=RequestContext)
    now: UtcDatetime | None = None

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("variants must be unique")
        return value


class Scores(BaseModel):
    """Calibrated probabilities of the models (``None`` when a model is unavailable)."""

    p_open: float | None = None
    p_click: float | None = None
    p_convert: float | None = None


class DecisionResponse(BaseModel):
    """What to do with this recipient, and the probabilities behind it."""

    decision_id: str
    recipient_id: str
    action: Action
    reasons: list[str]
    variant_id: str | None = None
    variant_propensity: float | None = None
    send_at: datetime | None = None
    send_time_propensity: float | None = None
    scores: Scores = Scores()
    model_versions: dict[str, str] = Field(default_factory=dict)
