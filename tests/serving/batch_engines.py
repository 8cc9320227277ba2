"""Engines for batch processes in tests: module-level, so a batch process can import them."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from features.online import InMemoryFeatureClient
from inboxlab.settings import Settings
from serving.decide import DecisionEngine
from serving.scoring.compiled import CompiledModel
from serving.scoring.models import LoadedModel, ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from tests.serving.models import planted_pipeline
from training.specs import SPECS, ModelKind

#: Online features of the test audience: three time zones (a fourth recipient has none).
FEATURES = {
    "r1": {"timezone": "Europe/Berlin"},
    "r2": {"timezone": "America/New_York"},
    "r3": {"timezone": "Asia/Kolkata"},
}
#: Where :func:`keep_planted` leaves the pipelines for the batch processes of a data dir.
PLANTED = "planted-pipelines.pickle"

Pipelines = dict[ModelKind, Any]


def planted_pipelines() -> Pipelines:
    """The calibrated pipelines of :mod:`tests.serving.models`, one per model kind."""
    return {kind: planted_pipeline(kind) for kind in ModelKind}


def model_set(settings: Settings, pipelines: Pipelines) -> ModelSet:
    """Champions made of ``pipelines`` (no registry involved)."""
    models = ModelSet(settings)
    models.models = {
        kind: LoadedModel(kind, SPECS[kind].registered_name, "1", CompiledModel(pipeline))
        for kind, pipeline in pipelines.items()
    }
    return models


def keep_planted(settings: Settings, pipelines: Pipelines) -> None:
    """Leave ``pipelines`` in the data dir: a batch process loads them instead of training."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / PLANTED).write_bytes(pickle.dumps(pipelines))


def planted_engine(settings: Settings) -> DecisionEngine:
    """The planted champions over :data:`FEATURES`, randomness seeded with 0."""
    kept = settings.data_dir / PLANTED
    pipelines = pickle.loads(kept.read_bytes()) if kept.exists() else planted_pipelines()
    store = DecisionStore(settings.decision_store_url)
    return DecisionEngine(
        settings,
        store,
        ExperimentStore(store.engine),
        InMemoryFeatureClient(FEATURES),
        model_set(settings, pipelines),
        np.random.default_rng(0),
    )


def failing_engine(settings: Settings) -> DecisionEngine:
    """An engine that cannot be opened (a store that is down, say)."""
    raise RuntimeError(f"planted failure opening the stores of {settings.data_dir}")
