"""What each model predicts, from which feature service, under which registered name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["SPECS", "ModelKind", "ModelSpec", "spec_for"]


class ModelKind(StrEnum):
    """The models inboxlab trains."""

    ENGAGEMENT = "engagement"
    SEND_TIME = "send-time"
    PROPENSITY = "propensity"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its label, feature service, request-time columns and registry name."""

    kind: ModelKind
    label: str
    feature_service: str
    #: Columns known at request time (not from the feature store).
    context_numeric: tuple[str, ...]
    context_categorical: tuple[str, ...]
    description: str

    @property
    def registered_name(self) -> str:
        return f"inboxlab-{self.kind.value}"


SPECS: dict[ModelKind, ModelSpec] = {
    ModelKind.ENGAGEMENT: ModelSpec(
        kind=ModelKind.ENGAGEMENT,
        label="clicked",
        feature_service="engagement_v1",
        context_numeric=("local_hour", "local_weekday"),
        context_categorical=("variant_id",),
        description="Probability of a human click within 72 h of a send.",
    ),
    ModelKind.SEND_TIME: ModelSpec(
        kind=ModelKind.SEND_TIME,
        label="opened",
        feature_service="send_time_v2",
        context_numeric=(
            "local_hour",
            "local_weekday",
            "hour_affinity",
            "weekday_affinity",
            "send_hour_rate",
            "late_hour_affinity",
        ),
        context_categorical=(),
        description="Probability of a human open within 24 h, given the local send hour.",
    ),
    ModelKind.PROPENSITY: ModelSpec(
        kind=ModelKind.PROPENSITY,
        label="converted",
        feature_service="propensity_v1",
        context_numeric=(),
        context_categorical=(),
        description="Probability of a conversion within 14 days of a send.",
    ),
}


def spec_for(kind: str) -> ModelSpec:
    """The spec of ``kind`` (``engagement``, ``send-time`` or ``propensity``)."""
    try:
        return SPECS[ModelKind(kind)]
    except ValueError:
        allowed = ", ".join(k.value for k in ModelKind)
        raise ValueError(f"unknown model {kind!r}; allowed: {allowed}") from None
