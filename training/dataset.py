"""Point-in-time training sets: labelled sends joined to the features of their service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.events import EventLog
from features.retrieval import training_frame
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings
from training.context import context_features, engagement_inputs
from training.labels import complete, labelled_sends
from training.specs import ModelKind, ModelSpec

__all__ = [
    "CATEGORICAL_FEATURES",
    "TrainingSet",
    "add_context_features",
    "build_training_set",
    "model_columns",
    "model_frame",
    "service_features",
]

#: Feature-store columns that are categories, not numbers.
CATEGORICAL_FEATURES = frozenset({"timezone"})
#: Outputs of the on-demand view; computed from the request, not read from the store.
_REQUEST_TIME = frozenset({"local_hour", "local_weekday"})

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Rows to train on and the columns the model uses."""

    frame: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    log_end: pd.Timestamp


def service_features(name: str) -> list[str]:
    """Stored features of the Feast feature service ``name`` (request-time ones excluded)."""
    from features.feature_repo import services

    service = getattr(services, name, None)
    if service is None or getattr(service, "name", None) != name:
        known = ", ".join(n for n in services.__all__ if n != "make_services")
        raise NotFoundError(f"feature service {name!r} does not exist; known: {known}")
    names: list[str] = []
    for projection in service.feature_view_projections:
        names += [f.name for f in projection.features if f.name not in _REQUEST_TIME]
    return list(dict.fromkeys(names))


def add_context_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add :func:`training.context.context_features` of each send's local hour and weekday."""
    out = frame.copy()

    def profile(names: Sequence[str]) -> np.ndarray | None:
        present = all(n in out.columns for n in names)
        return out[list(names)].to_numpy(dtype=float) if present else None

    hours = out["local_hour"].to_numpy(dtype=int) if "local_hour" in out.columns else None
    days = out["local_weekday"].to_numpy(dtype=int) if "local_weekday" in out.columns else None
    derived = context_features(
        profile,
        hours if hours is not None else np.zeros(len(out), dtype=int),
        days if days is not None else np.zeros(len(out), dtype=int),
    )
    for name, values in derived.items():
        # Hour-dependent columns need the hour, the weekday affinity needs the weekday.
        if (name == "weekday_affinity" and days is not None) or (
            name != "weekday_affinity" and hours is not None
        ):
            out[name] = values
    return out


def model_frame(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (stored features, ``local_hour``, ``local_weekday``) plus the derived inputs.

    The engagement model's row is built by :func:`training.context.engagement_inputs`, the
    function serving calls; the other models get :func:`add_context_features`.
    """
    if spec.kind is not ModelKind.ENGAGEMENT:
        return add_context_features(frame)
    derived = engagement_inputs(
        {c: frame[c].to_numpy() for c in frame.columns},
        frame["variant_id"].tolist(),
        frame["local_hour"].to_numpy(dtype=int),
        frame["local_weekday"].to_numpy(dtype=int),
    )
    out = frame.copy()
    for name in ("variant_id", *spec.context_numeric):
        out[name] = derived[name]
    return out


def model_columns(spec: ModelSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model's numeric and categorical input columns, in order.

    Stored features of the spec's service (less ``derive_only``), then its context columns.
    """
    stored = [c for c in service_features(spec.feature_service) if c not in spec.derive_only]
    categorical = [c for c in stored if c in CATEGORICAL_FEATURES]
    categorical += list(spec.context_categorical)
    numeric = [c for c in stored if c not in CATEGORICAL_FEATURES]
    numeric += [c for c in spec.context_numeric if c not in numeric]
    return tuple(numeric), tuple(categorical)


def build_training_set(
    settings: Settings, spec: ModelSpec, *, progress: Progress | None = None
) -> TrainingSet:
    """Labelled, uncensored sends of the event log with their point-in-time features."""
    step = progress or (lambda _msg: None)
    stored = service_features(spec.feature_service)
    log = EventLog(settings.events_dir)
    if log.is_empty():
        raise InvalidInputError(
            f"the event log at {log.directory} is empty; import events first", field="window"
        )
    step("labelling sends")
    sends = labelled_sends(log, settings.recipients_path)
    with log.connect() as con:
        (end,) = con.sql("SELECT max(occurred_at) FROM events").fetchall()[0]
    log_end = pd.Timestamp(end)
    sends = complete(sends, spec.label, log_end)
    if sends.empty:
        raise InvalidInputError(
            f"no send in the log is older than the {spec.label!r} label window", field="window"
        )
    # A stored feature of the same name as a column of the labelled sends (the time zone)
    # replaces it: it is what serving reads, and the join must not return the name twice.
    sends = sends.drop(columns=[c for c in stored if c in sends.columns])
    step(f"joining {len(stored)} features of {spec.feature_service} to {len(sends):,} sends")
    frame = model_frame(spec, training_frame(settings, sends, features=stored))
    numeric, categorical = model_columns(spec)
    return TrainingSet(frame=frame, numeric=numeric, categorical=categorical, log_end=log_end)
