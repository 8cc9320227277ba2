"""Unit-level export of an experiment: one row per sent decision with what followed it.

This is the table format the reports read (``experiments.source``): ``arm``, metric columns
named after the metrics (``open`` counts human opens only), the logged propensity ``pscore``,
``timestamp`` and the segment column ``engagement_tier``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, select

from inboxlab.errors import NotFoundError
from inboxlab.experiment import ExperimentDefinition
from inboxlab.records import Action
from serving.store.experiments import ExperimentStore
from serving.store.feature_codec import decode_features, stored_layouts
from serving.store.schema import decisions, outcomes

__all__ = ["experiment_units", "stored_experiment_units"]


#: Outcomes counted once per decision, as 0/1 columns: the rewards, then the guardrails.
_REWARDS = ("open", "click", "convert")
_GUARDRAILS = ("unsubscribe", "complaint", "bounce")


def _flag(kind: str) -> Any:
    return func.max(case((outcomes.c.dedup_kind == kind, 1), else_=0)).label(kind)


def experiment_units(
    engine: Engine, experiment_id: str, *, with_features: bool = False
) -> pd.DataFrame:
    """Every sent decision of ``experiment_id`` with its outcomes, as a unit table.

    ``with_features`` adds ``send_at`` and the features each decision used (one column per
    feature), which a model needs to score the arms the recipient did not get.
    """
    revenue = func.coalesce(
        func.sum(case((outcomes.c.kind == "convert", outcomes.c.value), else_=0.0)), 0.0
    ).label("revenue")
    query = (
        select(
            decisions.c.decision_id,
            decisions.c.recipient_id,
            decisions.c.variant_id.label("arm"),
            decisions.c.variant_propensity.label("pscore"),
            decisions.c.decided_at.label("timestamp"),
            func.coalesce(decisions.c.segment, "all").label("engagement_tier"),
            *map(_flag, _REWARDS),
            revenue,
            *map(_flag, _GUARDRAILS),
            *((decisions.c.send_at, decisions.c.features) if with_features else ()),
        )
        .select_from(
            decisions.outerjoin(outcomes, and_(outcomes.c.decision_id == decisions.c.decision_id))
        )
        .where(
            decisions.c.experiment_id == experiment_id,
            decisions.c.action == Action.SEND.value,
            decisions.c.variant_id.is_not(None),
        )
        .group_by(decisions.c.decision_id)
    )
    features: list[dict[str, Any]] = []
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
        if with_features and not frame.empty:
            stored = frame.pop("features").tolist()
            names = stored_layouts(conn, stored)
            features = [decode_features(value, names) for value in stored]
    if frame.empty:
        return _empty_units([c.name for c in query.selected_columns])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    if with_features:
        frame["send_at"] = pd.to_datetime(frame["send_at"], utc=True)
        feature_frame = pd.json_normalize(features).add_prefix("f_")
        frame = pd.concat([frame.reset_index(drop=True), feature_frame], axis=1)
    return frame


#: Column types of a unit table, for one without rows (the report still needs to see the
#: metric columns as numbers to analyse an experiment that has no sent decision yet).
_EMPTY_DTYPES = {
    "pscore": "float64",
    "timestamp": "datetime64[ns, UTC]",
    "send_at": "datetime64[ns, UTC]",
    "revenue": "float64",
    **dict.fromkeys((*_REWARDS, *_GUARDRAILS), "int64"),
}


def _empty_units(columns: list[str]) -> pd.DataFrame:
    """A unit table without rows, each column of the type its rows would have."""
    return pd.DataFrame({c: pd.Series(dtype=_EMPTY_DTYPES.get(c, "object")) for c in columns})


def stored_experiment_units(
    engine: Engine, experiment_id: str, *, with_features: bool = False
) -> tuple[ExperimentDefinition, pd.DataFrame]:
    """The stored definition of ``experiment_id`` and its :func:`experiment_units`.

    Raises
    ------
    NotFoundError
        When no experiment has that id.
    """
    definition = ExperimentStore(engine).get(experiment_id)
    if definition is None:
        raise NotFoundError(f"experiment {experiment_id!r} does not exist")
    return definition, experiment_units(engine, experiment_id, with_features=with_features)
