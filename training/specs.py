"""What each model predicts, from which feature service, under which registered name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from training.context import ENGAGEMENT_CONTEXT, PROFILE_COLUMNS

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
    #: Stored features read only to derive context columns, not fed to the model.
    derive_only: tuple[str, ...] = ()
    #: Monotone constraints of LightGBM, ``(column, 1 | -1)``: the score may only rise (1) or
    #: only fall (-1) with the column, all else equal.
    monotone: tuple[tuple[str, int], ...] = ()

    @property
    def registered_name(self) -> str:
        return f"inboxlab-{self.kind.value}"

    @property
    def lgbm_params(self) -> dict[str, Any]:
        """LightGBM parameters of this model on top of the defaults (see ``make_lightgbm``)."""
        return {"monotone": dict(self.monotone)} if self.monotone else {}


SPECS: dict[ModelKind, ModelSpec] = {
    ModelKind.ENGAGEMENT: ModelSpec(
        kind=ModelKind.ENGAGEMENT,
        label="clicked",
        feature_service="engagement_v2",
        context_numeric=ENGAGEMENT_CONTEXT,
        context_categorical=("variant_id",),
        description="Probability of a human click within 72 h of a send, given the "
        "recipient's history with the send's variant and their affinity to its local hour.",
        derive_only=PROFILE_COLUMNS,
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
            "late_hour_relative",
            "late_peak_distance",
        ),
        context_categorical=(),
        description="Probability of a human open within 24 h, given the local send hour.",
        # The hour's standing in the recipient's own profiles may only raise the score, the
        # distance from their best late-open hour only lower it: the argmax over hours then
        # follows the person's profile instead of noise in sparse cells.
        monotone=(
            ("hour_affinity", 1),
            ("weekday_affinity", 1),
            ("send_hour_rate", 1),
            ("late_hour_affinity", 1),
            ("late_hour_relative", 1),
            ("late_peak_distance", -1),
        ),
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
