"""The bulk Redis write of materialization against Feast's own, field by field."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import redis

import features.materialize_engine as engine
from features.engineering.tables import ENGAGEMENT_FEATURES, feature_type
from features.store import feature_store, materialize
from inboxlab.settings import Settings, StoreSettings
from tests.conftest import REDIS_URL, need, port_open
from tests.features.conftest import FEAST_WARNINGS
from tests.features.materialize_data import (
    DAY,
    column,
    record_bulk_writes,
    write_day,
)

pytestmark = [*FEAST_WARNINGS, pytest.mark.redis]


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
    assert not redis_content(projects["bulk"]) and not redis_content(projects["feast"])


def test_redis_bulk_write_keeps_newer_rows_as_feast_does(tmp_path: Path) -> None:
    need("redis", port_open("127.0.0.1", 6379), "nothing answers at 127.0.0.1:6379")
    from feast.utils import _convert_arrow_to_proto

    from features.materialize_redis import write_redis
    from features.store import apply_repo

    online = StoreSettings(online="redis", redis_url=REDIS_URL)
    stores = {}
    for name in ("bulk", "feast"):  # a registry each: tearing one down deletes its file
        write_day(tmp_path / name, DAY, 5)
        settings = Settings(data_dir=tmp_path / name, stores=online)
        stores[name] = apply_repo(settings, project=f"{name[0]}{uuid.uuid4().hex[:12]}")
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
    assert not redis_content(stores["bulk"].project)
    assert not redis_content(stores["feast"].project)  # nothing left behind
