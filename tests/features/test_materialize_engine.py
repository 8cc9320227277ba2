"""The bulk materialization engine: its configuration and its chunks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import features.materialize_engine as engine
from features.engineering.tables import ENGAGEMENT_FEATURES, feature_type
from features.store import apply_repo, repo_config
from inboxlab.settings import Settings
from tests.features.conftest import FEAST_WARNINGS
from tests.features.materialize_data import DAY, column, twin_dirs

pytestmark = FEAST_WARNINGS


def test_config_selects_the_engine(tmp_path: Path) -> None:
    bulk, feast = twin_dirs(tmp_path)
    assert repo_config(bulk).batch_engine_config == {"type": engine.ENGINE_TYPE}
    assert repo_config(feast).batch_engine_config == "local"


def engagement_rows(n: int, missing_stamp: bool = False) -> pa.Table:
    rng = np.random.default_rng(5)
    cols = {"recipient_id": pa.array([f"r{i}" for i in range(n)])}
    for name in ENGAGEMENT_FEATURES:
        cols[name] = column(feature_type(name), rng, n)
    stamps: list[datetime | None] = [DAY + timedelta(seconds=i % 3) for i in range(n)]
    if missing_stamp:
        stamps[-1] = None
    cols["event_timestamp"] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    cols["created_at"] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    return pa.table(cols)


def test_chunks_encode_the_rows_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = apply_repo(Settings(data_dir=tmp_path)).get_feature_view("recipient_engagement")
    monkeypatch.setattr(engine, "ROWS_PER_CHUNK", 20)
    reported: list[tuple[str, int, int]] = []
    with engine.reporting_rows(lambda *at: reported.append(at)):
        parts = list(engine.chunks(engagement_rows(45), view))
    assert [len(p.keys) for p in parts] == [20, 20, 5]
    assert reported == [("recipient_engagement", done, 45) for done in (20, 40, 45)]
    list(engine.chunks(engagement_rows(5), view))  # outside the block: nobody is told
    assert len(reported) == 3
    assert all(len(p.columns) == len(ENGAGEMENT_FEATURES) for p in parts)
    distinct, rows = parts[0].event_at
    assert len(distinct) == 3 and rows[:4] == [0, 1, 2, 0]  # each distinct time once
    with pytest.raises(engine.NotEncodedError, match="timestamp"):
        next(engine.chunks(engagement_rows(5, missing_stamp=True), view))
