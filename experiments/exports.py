"""Analyse an exported unit-level file: ``inboxlab report --data FILE --control ARM``.

Experiment owners also analyse tests run elsewhere; the export has one row per unit with an
arm column, optional segment columns and 0/1 or numeric metric columns (see
:mod:`experiments.source`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments.analysis import ExperimentResult, analyze
from experiments.source import aggregate
from inboxlab.errors import InvalidInputError
from inboxlab.experiment import DEFAULT_GUARDRAILS, ExperimentDefinition

__all__ = ["analyze_file"]


def analyze_file(
    path: Path,
    *,
    control: str | None = None,
    metrics: Sequence[str] = (),
    segments: Sequence[str] = (),
    definition: ExperimentDefinition | None = None,
    arm_column: str = "arm",
    experiment_id: str | None = None,
) -> ExperimentResult:
    """Aggregate a unit-level CSV/Parquet export and analyse it (``inboxlab report --data``).

    The first of ``metrics`` is the primary metric (default: the definition's, else the first
    of click, convert, open, revenue found); the others are reported as secondary metrics.
    A ``definition`` supplies the control, arms, weights, guardrails and segment columns.

    Raises
    ------
    InvalidInputError
        When no control is given, or the file lacks the arm, a metric or a segment column.
    """
    control = control or (definition.control if definition else None)
    if control is None:
        raise InvalidInputError("name the control arm (--control ARM)", field="control")
    segs = tuple(segments) or (definition.segment_columns if definition else ())
    primary = metrics[0] if metrics else (definition.primary_metric if definition else None)
    guards = definition.guardrails if definition else DEFAULT_GUARDRAILS
    data = aggregate(
        path,
        arm_column=arm_column,
        metrics=metrics,
        optional_metrics=[g.metric for g in guards],
        segments=segs,
        segment_metric=primary,
    )
    return analyze(
        data,
        control=control,
        primary=primary,
        secondary=tuple(metrics[1:]),
        guardrails=definition.guardrails if definition else None,
        experiment_id=experiment_id or (definition.id if definition else path.stem),
        experiment_type=definition.type if definition else None,
        arms=tuple(a.id for a in definition.arms) if definition else (),
        weights=definition.weights if definition and definition.type == "ab" else None,
        min_units=definition.min_units_per_arm if definition else 100,
    )
