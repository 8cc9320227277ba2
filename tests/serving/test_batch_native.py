"""Batch decisions with the send-time trees compiled to native code, against single ones.

A batch scores the hour-expanded matrix of a chunk through the compiled trees, a single
decision its own hours through them too: both must pick the same hours and give the same
scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inboxlab.settings import Settings
from serving.batch import BatchDecider
from serving.scoring.compiled import FAST_ROWS, CompiledModel
from serving.scoring.models import LoadedModel, ModelSet
from serving.store import DecisionStore
from tests.serving.models import planted_pipeline
from tests.serving.test_batch import (
    assert_same_decisions,
    decided_both_ways,
    make_engine,
    mixed_audience,
)
from training.specs import SPECS, ModelKind


@pytest.fixture(scope="module")
def native_models(tmp_path_factory: pytest.TempPathFactory) -> ModelSet:
    cache: Path = tmp_path_factory.mktemp("trees")
    models = ModelSet(Settings())
    models.models = {
        kind: LoadedModel(
            kind,
            SPECS[kind].registered_name,
            "1",
            CompiledModel(planted_pipeline(kind), native=True, cache_dir=cache),
        )
        for kind in ModelKind
    }
    assert all(m.model.trees is not None for m in models.models.values())
    return models


def test_batch_on_compiled_trees_decides_as_single_decisions_do(
    settings: Settings, sqlite_store: DecisionStore, native_models: ModelSet
) -> None:
    engine = make_engine(settings, sqlite_store, native_models, global_holdout_pct=10)
    audience = mixed_audience()
    single, batch = decided_both_ways(engine, audience, chunk_size=len(audience), seed=5)
    assert_same_decisions(single, batch)
    sends = sum(d.send_at is not None for d in batch)
    assert sends * 4 > FAST_ROWS  # the chunk's hour matrix went through the compiled trees


def test_compiled_send_time_scores_equal_booster_predict_on_a_chunk(
    settings: Settings, sqlite_store: DecisionStore, native_models: ModelSet
) -> None:
    engine = make_engine(settings, sqlite_store, native_models)
    model = native_models.models[ModelKind.SEND_TIME].model
    seen: list[np.ndarray] = []
    raw_matrix = model.raw_matrix

    def spy(x: np.ndarray, *, threads: int = 1) -> np.ndarray:
        seen.append(x.copy())
        return raw_matrix(x, threads=threads)

    model.raw_matrix = spy  # type: ignore[method-assign]
    try:
        BatchDecider(engine, chunk_size=100).decide(mixed_audience())
    finally:
        del model.raw_matrix
    assert seen and max(len(x) for x in seen) > FAST_ROWS
    for x in seen:
        np.testing.assert_array_equal(
            raw_matrix(x), model.booster.predict(x, raw_score=True, num_threads=1)
        )
