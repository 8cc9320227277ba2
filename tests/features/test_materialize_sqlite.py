"""The bulk SQLite write of materialization against Feast's own, row by row."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from feast.infra.compute_engines.local.nodes import LocalOutputNode

import features.materialize_engine as engine
from features.engineering.tables import ENGAGEMENT_FEATURES
from features.prepared import LAYOUT_TABLE, PREPARED_TABLE
from features.store import feature_store, materialize, online_db_path
from features.value_encoding import encode_column
from inboxlab.settings import Settings
from tests.features.conftest import FEAST_WARNINGS
from tests.features.materialize_data import DAY, record_bulk_writes, write_day

pytestmark = FEAST_WARNINGS


def stored(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every online table, with the SQLite type of each value, and the prepared
    rows made from them."""
    with sqlite3.connect(online_db_path(settings)) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {
            table: sorted(
                conn.execute(
                    "SELECT entity_key, feature_name, value, value_text, typeof(value_text), "
                    "vector_value, event_ts, typeof(event_ts), created_ts, typeof(created_ts) "
                    f'FROM "{table}"'
                )
            )
            for table in tables
            if table not in (PREPARED_TABLE, LAYOUT_TABLE)
        }
        if PREPARED_TABLE in tables:
            rows[PREPARED_TABLE] = sorted(conn.execute(f"SELECT * FROM {PREPARED_TABLE}"))
            rows[LAYOUT_TABLE] = sorted(conn.execute(f"SELECT * FROM {LAYOUT_TABLE}"))
        return rows


def intervals(settings: Settings) -> dict[str, list[tuple[datetime, datetime]]]:
    store = feature_store(settings)
    return {view.name: list(view.materialization_intervals) for view in store.list_feature_views()}


def test_bulk_write_stores_what_feast_stores(
    twin: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, feast = twin
    monkeypatch.setattr(engine, "ROWS_PER_CHUNK", 7)  # several chunks in one transaction
    calls = record_bulk_writes(monkeypatch)
    reported: dict[str, tuple[int, int]] = {}  # per view: rows written, rows to write
    for day in (DAY, DAY + timedelta(days=1)):  # a first load, then upserts over it
        if day != DAY:
            write_day(bulk.data_dir, day, 40)
            write_day(feast.data_dir, day, 40)
        reported.clear()
        materialize(
            bulk,
            end=day + timedelta(seconds=1),
            rows=lambda view, done, total: reported.update({view: (done, total)}),
        )
        assert {view: done for view, (done, _) in reported.items()} == {
            "recipient_engagement": 40,
            "recipient_send_time": 40,
            "recipient_variant": 77,  # 80 rows, 3 pairs twice
        }
        materialize(feast, end=day + timedelta(seconds=1))
        assert calls and all(calls), "the bulk path did not write"
        calls.clear()
        ours, theirs = stored(bulk), stored(feast)
        assert set(ours) == set(theirs)
        feast_tables = set(ours) - {PREPARED_TABLE, LAYOUT_TABLE}
        assert len(ours[PREPARED_TABLE]) == 80  # 40 recipients × 2 views, the same both ways
        for table in theirs:
            assert len(ours[table]) == len(theirs[table]) > 0, table
            assert ours[table] == theirs[table], table
    values = {row[3] for table, rows in ours.items() if table in feast_tables for row in rows}
    assert {None, "inf", "-0.0", ""} <= values  # the edge values were written, nulls included
    assert intervals(bulk) == intervals(feast)


def test_online_reads_agree_after_a_bulk_load(twin: tuple[Settings, Settings]) -> None:
    from features.online import FeastFeatureClient, SqliteFeatureClient

    bulk, _ = twin
    materialize(bulk)
    ids = [f"r{i:04d}" for i in range(40)] + ["nobody"]
    assert SqliteFeatureClient(bulk).get_many(ids) == FeastFeatureClient.from_settings(
        bulk
    ).get_many(ids)
    pairs = {rid: ["v0", "v1", "v9"] for rid in ids}
    fast = SqliteFeatureClient(bulk).variant_features_many(pairs)
    assert fast == FeastFeatureClient.from_settings(bulk).variant_features_many(pairs)


def test_a_column_left_to_feast_writes_through_feast(
    twin: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, feast = twin
    calls = record_bulk_writes(monkeypatch)
    monkeypatch.setattr(engine, "ROWS_PER_CHUNK", 25)
    real = encode_column
    seen = 0

    def refuse_later_chunks(col: pa.ChunkedArray, kind: str) -> Any:
        nonlocal seen
        seen += 1
        return None if seen > len(ENGAGEMENT_FEATURES) else real(col, kind)  # 2nd chunk

    monkeypatch.setattr(engine, "encode_column", refuse_later_chunks)
    # What the online store holds when Feast's own write takes over: the first chunk undone.
    held: list[int] = []
    feast_write = LocalOutputNode.execute

    def feast_output(node: Any, context: Any) -> Any:
        with sqlite3.connect(online_db_path(bulk)) as conn:
            table = f"inboxlab_{node.feature_view.name}"
            held.append(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        return feast_write(node, context)

    monkeypatch.setattr(LocalOutputNode, "execute", feast_output)
    materialize(bulk)
    assert calls and not any(calls)  # every view refused, the first after a chunk
    assert held == [0] * len(calls)
    materialize(feast)
    assert stored(bulk) == stored(feast)
