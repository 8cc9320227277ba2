"""Experiment definitions: what is tested, against what, and which harms to watch.

A definition is written in YAML (``inboxlab experiments create FILE``)::

    id: subject-line-2026-03
    type: ab                  # or bandit
    arms:
      - {id: control, control: true}
      - {id: emoji, weight: 1}
    primary_metric: click     # open (human opens only), click, convert or revenue
    guardrails:               # default: unsubscribe, complaint, bounce with a 10 % margin
      - {metric: unsubscribe, margin: 0.05}
    holdout_pct: 5
    attribution_window_hours: 72
    segment_columns: [engagement_tier, device]
    bandit:                   # only for type: bandit
      weight_floor: 0.02      # every arm keeps at least this share while learning
      discount_per_day: 0.98  # forget old evidence when tastes drift (1 = never)
      contextual: true        # posteriors per engagement tier, shrunk toward the global one

The definition crosses package boundaries: the API stores it and decides with it, the reports
read it. It lives here so that ``serving`` and ``experiments`` depend only on ``inboxlab``.

Invalid definitions raise :class:`~inboxlab.errors.InvalidInputError` naming the field and the
rule that was broken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inboxlab.errors import InvalidInputError

__all__ = [
    "DEFAULT_GUARDRAILS",
    "ArmSpec",
    "BanditOptions",
    "ExperimentDefinition",
    "ExperimentType",
    "GuardrailSpec",
    "PrimaryMetric",
    "load_definition",
    "parse_definition",
]

ExperimentType = Literal["ab", "bandit"]
#: ``open`` counts human opens only: machine opens (e.g. Apple MPP) are excluded upstream.
PrimaryMetric = Literal["open", "click", "convert", "revenue"]
GuardrailMetric = Literal["unsubscribe", "complaint", "bounce"]

Identifier = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]


class ArmSpec(BaseModel):
    """One variant. ``weight`` is its share of traffic in an A/B test (normalised)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier
    control: bool = False
    weight: float = Field(default=1.0, gt=0, description="Relative traffic share (A/B only).")


class GuardrailSpec(BaseModel):
    """A harm that must not grow: flagged when it is likely worse than control by ``margin``.

    ``margin`` is relative to the control rate: 0.1 means "10 % more unsubscribes than control".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: GuardrailMetric
    margin: float = Field(default=0.1, ge=0, le=10)
    flag_probability: float = Field(
        default=0.95, gt=0.5, lt=1, description="Flag when P(worse by > margin) exceeds this."
    )


DEFAULT_GUARDRAILS: tuple[GuardrailSpec, ...] = (
    GuardrailSpec(metric="unsubscribe"),
    GuardrailSpec(metric="complaint"),
    GuardrailSpec(metric="bounce"),
)


class BanditOptions(BaseModel):
    """How a bandit experiment allocates traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight_floor: float = Field(
        default=0.01, ge=0, lt=0.5, description="Minimum share of traffic of every arm."
    )
    discount_per_day: float = Field(
        default=1.0, gt=0, le=1, description="Weight of one-day-old evidence (1: no decay)."
    )
    contextual: bool = Field(
        default=False, description="Per-segment posteriors (engagement tier), shrunk globally."
    )


class ExperimentDefinition(BaseModel):
    """An A/B test or a bandit, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier
    type: ExperimentType
    arms: tuple[ArmSpec, ...] = Field(min_length=2, max_length=50)
    primary_metric: PrimaryMetric = "click"
    guardrails: tuple[GuardrailSpec, ...] = DEFAULT_GUARDRAILS
    holdout_pct: float = Field(default=0.0, ge=0, lt=100)
    attribution_window_hours: int = Field(default=72, gt=0, le=24 * 90)
    segment_columns: tuple[Identifier, ...] = ()
    min_units_per_arm: int = Field(default=100, ge=1)
    bandit: BanditOptions = BanditOptions()

    @model_validator(mode="after")
    def _check_arms_and_guardrails(self) -> ExperimentDefinition:
        ids = [arm.id for arm in self.arms]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"arm ids must be unique; repeated: {duplicates}")
        controls = [arm.id for arm in self.arms if arm.control]
        if len(controls) != 1:
            raise ValueError(f"exactly one arm must have control: true, found {len(controls)}")
        metrics = [g.metric for g in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"each guardrail metric may appear once; got {metrics}")
        if len(set(self.segment_columns)) != len(self.segment_columns):
            raise ValueError("segment_columns must be unique")
        return self

    @property
    def control(self) -> str:
        """The id of the control arm."""
        return next(arm.id for arm in self.arms if arm.control)

    @property
    def weights(self) -> dict[str, float]:
        """Traffic shares of the arms, summing to one."""
        total = sum(arm.weight for arm in self.arms)
        return {arm.id: arm.weight / total for arm in self.arms}


def _field_of(error: dict[str, object]) -> str:
    loc = error.get("loc", ())
    parts = [str(p) for p in loc] if isinstance(loc, tuple) else []
    return ".".join(parts) or "definition"


def parse_definition(data: object, *, source: str = "definition") -> ExperimentDefinition:
    """Validate a parsed YAML/JSON mapping.

    Raises
    ------
    InvalidInputError
        With ``field`` set to the first offending field and a message listing every problem.

    Examples
    --------
    >>> d = parse_definition({"id": "t1", "type": "ab",
    ...                       "arms": [{"id": "a", "control": True}, {"id": "b"}]})
    >>> d.control, d.weights
    ('a', {'a': 0.5, 'b': 0.5})
    """
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{source}: an experiment definition must be a mapping, got {type(data).__name__}",
            field="definition",
        )
    try:
        return ExperimentDefinition.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [f"  {_field_of(dict(e))}: {e['msg']}" for e in errors]
        raise InvalidInputError(
            f"{source}: invalid experiment definition\n" + "\n".join(lines),
            field=_field_of(dict(errors[0])),
        ) from None


def load_definition(path: Path) -> ExperimentDefinition:
    """Read and validate an experiment definition from a YAML file.

    Raises
    ------
    InvalidInputError
        When the file is not valid YAML or breaks a rule of :class:`ExperimentDefinition`.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: not valid YAML: {exc}", field="definition") from None
    return parse_definition(data, source=str(path))
