"""The bulk writes of materialization against Feast's own, store content row by row."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from feast.infra.compute_engines.local.nodes import LocalOutputNode

import features.materialize_engine as engine
from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    VARIANT_FEATURES,
    VARIANT_TABLE,
    feature_type,
    table_dir,
)
from features.store import feature_store, materialize, online_db_path, repo_config
from features.value_encoding import encode_column
from inboxlab.settings import Settings, StoreSettings
from tests.conftest import REDIS_URL, need, port_open
from tests.features.conftest import FEAST_WARNINGS

pytestmark = FEAST_WARNINGS

DAY = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = {
    ENGAGEMENT_TABLE: (ENGAGEMENT_FEATURES, ["recipient_id"]),
    SEND_TIME_TABLE: (SEND_TIME_FEATURES, ["recipient_id"]),
    VARIANT_TABLE: (VARIANT_FEATURES, ["recipient_id", "variant_id"]),
}
ZONES = np.array(["Europe/Berlin", "", "Asia/Tokyo", "ünïcödé/Zone"], object)


def column(kind: type, rng: np.random.Generator, n: int) -> pa.Array:
    """Values of one feature with nulls and edge values mixed in."""
    null = rng.random(n) < 0.15
    if kind is str:
        zones = ZONES[rng.integers(0, len(ZONES), n)].tolist()
        return pa.array([None if gone else zone for gone, zone in zip(null, zones, strict=True)])
    if kind is float:
        values = rng.normal(0, 10, n)
        values[rng.random(n) < 0.05] = np.inf
        values[rng.random(n) < 0.05] = -0.0
        values[rng.random(n) < 0.05] = np.nan
        return pa.array(values, pa.float64(), mask=null)
    return pa.array(rng.integers(-300, 300, n), pa.int64(), mask=null)


def write_day(data: Path, day: datetime, n: int) -> None:
    """One snapshot day of every feature table; the variant table repeats some pairs within
    the day, with later ``created_at``, so that de-duplication decides which row is loaded."""
    rng = np.random.default_rng(day.toordinal())
    for table, (names, keys) in TABLES.items():
        size = n * 2 if keys[1:] else n
        cols: dict[str, Any] = {"recipient_id": [f"r{i % n:04d}" for i in range(size)]}
        if keys[1:]:
            cols["variant_id"] = [f"v{(i // n) % 2}" for i in range(size)]
            cols["recipient_id"][-3:] = cols["recipient_id"][:3]  # same pairs again
            cols["variant_id"][-3:] = cols["variant_id"][:3]
        for name in names:
            cols[name] = column(feature_type(name), rng, size)
        cols["event_timestamp"] = pa.array([day] * size, pa.timestamp("us", tz="UTC"))
        created = [day + timedelta(hours=1, microseconds=i) for i in range(size)]
        cols["created_at"] = pa.array(created, pa.timestamp("ns", tz="UTC"))
        path = table_dir(Settings(data_dir=data), table) / f"date={day.date()}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)


def stored(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every online table, with the SQLite type of each value."""
    with sqlite3.connect(online_db_path(settings)) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: sorted(
                conn.execute(
                    "SELECT entity_key, feature_name, value, value_text, typeof(value_text), "
                    "vector_value, event_ts, typeof(event_ts), created_ts, typeof(created_ts) "
                    f'FROM "{table}"'
                )
            )
            for table in tables
        }


def intervals(settings: Settings) -> dict[str, list[tuple[datetime, datetime]]]:
    store = feature_store(settings)
    return {view.name: list(view.materialization_intervals) for view in store.list_feature_views()}


def record_bulk_writes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each call of the bulk write returns (whether it wrote), from now on."""
    calls: list[bool] = []
    write = engine._write

    def recorded(*args: Any) -> bool:
        calls.append(write(*args))
        return calls[-1]

    monkeypatch.setattr(engine, "_write", recorded)
    return calls


@pytest.fixture
def twin(tmp_path: Path) -> tuple[Settings, Settings]:
    """Two data directories with the same first snapshot day: bulk write, Feast's write."""
    bulk, feast = Settings(data_dir=tmp_path / "bulk"), Settings(data_dir=tmp_path / "feast")
    write_day(bulk.data_dir, DAY, 40)
    shutil.copytree(bulk.data_dir, feast.data_dir)
    return bulk, Settings(data_dir=feast.data_dir, stores=StoreSettings(bulk_materialize=False))


def test_config_selects_the_engine(twin: tuple[Settings, Settings]) -> None:
    bulk, feast = twin
    assert repo_config(bulk).batch_engine_config == {"type": engine.ENGINE_TYPE}
    assert repo_config(feast).batch_engine_config == "local"


def test_bulk_write_stores_what_feast_stores(
    twin: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, feast = twin
    monkeypatch.setattr(engine, "ROWS_PER_CHUNK", 7)  # several chunks in one transaction
    calls = record_bulk_writes(monkeypatch)
    for day in (DAY, DAY + timedelta(days=1)):  # a first load, then upserts over it
        if day != DAY:
            write_day(bulk.data_dir, day, 40)
            write_day(feast.data_dir, day, 40)
        materialize(bulk, end=day + timedelta(seconds=1))
        materialize(feast, end=day + timedelta(seconds=1))
        assert calls and all(calls), "the bulk path did not write"
        calls.clear()
        ours, theirs = stored(bulk), stored(feast)
        assert set(ours) == set(theirs)
        for table in theirs:
            assert len(ours[table]) == len(theirs[table]) > 0, table
            assert ours[table] == theirs[table], table
    values = {row[3] for rows in ours.values() for row in rows}
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


def redis_content(project: str) -> dict[bytes, tuple[dict[Any, Any], int]]:
    """Every hash a project holds in the test Redis (its keys without the project name
    they end with), with its fields and time to live."""
    client = redis.Redis.from_url(REDIS_URL)
    suffix = project.encode()
    content: dict[bytes, tuple[dict[Any, Any], int]] = {}
    for key in client.scan_iter(match=b"*" + suffix, count=1000):
        if client.type(key) == b"hash":
            content[key[: -len(suffix)]] = (client.hgetall(key), client.ttl(key))
    return content


@pytest.mark.redis
def test_redis_bulk_write_stores_what_feast_stores(
    twin: tuple[Settings, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    need("redis", port_open("127.0.0.1", 6379), "nothing answers at 127.0.0.1:6379")
    online = StoreSettings(online="redis", redis_url=REDIS_URL)
    bulk = Settings(data_dir=twin[0].data_dir, stores=online)
    feast = Settings(
        data_dir=twin[1].data_dir, stores=online.model_copy(update={"bulk_materialize": False})
    )
    projects = {"bulk": f"b{uuid.uuid4().hex[:12]}", "feast": f"f{uuid.uuid4().hex[:12]}"}
    monkeypatch.setattr(engine, "ROWS_PER_CHUNK", 7)
    calls = record_bulk_writes(monkeypatch)
    try:
        for day in (DAY, DAY + timedelta(days=1)):  # a first load, then newer rows over it
            if day != DAY:
                write_day(bulk.data_dir, day, 40)
                write_day(feast.data_dir, day, 40)
            materialize(bulk, project=projects["bulk"], end=day + timedelta(seconds=1))
            materialize(feast, project=projects["feast"], end=day + timedelta(seconds=1))
            assert calls and all(calls), "the bulk path did not write"
            calls.clear()
            ours, theirs = redis_content(projects["bulk"]), redis_content(projects["feast"])
            assert len(ours) == len(theirs) == 40 + 77  # recipients, distinct pairs (3 repeat)
            assert ours == theirs
    finally:
        feature_store(bulk, project=projects["bulk"]).teardown()
        feature_store(feast, project=projects["feast"]).teardown()


@pytest.mark.redis
def test_redis_bulk_write_keeps_newer_rows_as_feast_does(tmp_path: Path) -> None:
    need("redis", port_open("127.0.0.1", 6379), "nothing answers at 127.0.0.1:6379")
    from feast.utils import _convert_arrow_to_proto

    from features.materialize_redis import write_redis
    from features.store import apply_repo

    settings = Settings(
        data_dir=tmp_path, stores=StoreSettings(online="redis", redis_url=REDIS_URL)
    )
    write_day(tmp_path, DAY, 5)
    names = ("bulk", "feast")
    stores = {
        name: apply_repo(settings, project=f"{name[0]}{uuid.uuid4().hex[:12]}") for name in names
    }
    rng = np.random.default_rng(3)

    def rows(at: datetime, dup: bool = False) -> pa.Table:
        ids = ["r0", "r1", "r2", "r0"] if dup else ["r0", "r1", "r2"]
        cols: dict[str, Any] = {"recipient_id": ids}
        for name in ENGAGEMENT_FEATURES:
            cols[name] = column(feature_type(name), rng, len(ids))
        stamps = [at, at, at - timedelta(hours=1), at + timedelta(hours=dup)][: len(ids)]
        cols["event_timestamp"] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
        cols["created_at"] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
        return pa.table(cols)

    try:
        # newer rows, then older and equally old ones that must not overwrite them, then a
        # write holding one key twice (the later row wins only if it is newer)
        for table in (rows(DAY), rows(DAY - timedelta(days=1)), rows(DAY), rows(DAY, dup=True)):
            for name, store in stores.items():
                config, provider = store.config, store._get_provider()
                view = store.get_feature_view("recipient_engagement")
                if name == "bulk":
                    assert write_redis(provider.online_store, config, view, table)
                else:
                    keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
                    data = _convert_arrow_to_proto(table, view, keys)
                    provider.online_store.online_write_batch(config, view, data, None)
            assert redis_content(stores["bulk"].project) == redis_content(stores["feast"].project)
    finally:
        for store in stores.values():
            store.teardown()
