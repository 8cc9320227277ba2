"""The bulk write of materialized rows into Feast's Redis online store.

Feast's Redis store converts every value to a protobuf, hashes every field name per value
(``_mmh3``) and sends one ``HSET`` per entity, after reading each entity's stored timestamp so
that an older row never overwrites a newer one. :func:`write_redis` sends the same commands
with the same keys, fields and bytes: the field names are hashed once per view (by
:func:`features.online_redis.feature_field`, the hash the online reader looks them up by),
the values come encoded by column (:func:`features.materialize_engine.chunks`) and the
timestamps are serialized once per distinct value. Per chunk, the stored timestamps are read
in one pipeline and the writes sent in another; Feast's ``skip_dedup`` and
``key_ttl_seconds`` settings are honoured as Feast honours them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from feast import utils
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from google.protobuf.timestamp_pb2 import Timestamp

from features.materialize_engine import Chunk, NotEncodedError, chunks
from features.online_redis import feature_field

__all__ = ["write_redis"]


def _nanos(ts: Timestamp) -> int:
    """A timestamp in nanoseconds, the unit Feast compares stored and new rows in."""
    return int(ts.seconds * 1_000_000_000 + ts.nanos)


def _timestamps(stamps: tuple[list[datetime], list[int]]) -> tuple[list[bytes], list[int]]:
    """Each row's timestamp as Feast stores it (a serialized ``Timestamp`` of the value made
    time-zone aware) and as the nanoseconds Feast compares."""
    distinct, inverse = stamps
    forms, nanos = [], []
    for value in distinct:
        ts = Timestamp()
        ts.FromDatetime(utils.make_tzaware(value))
        forms.append(ts.SerializeToString())
        nanos.append(_nanos(ts))
    return list(map(forms.__getitem__, inverse)), list(map(nanos.__getitem__, inverse))


def _previous_nanos(pipe: Any, keys: list[bytes], ts_key: str) -> list[int]:
    """The stored timestamp of each of ``keys`` in nanoseconds, 0 where none is stored."""
    for key in keys:
        pipe.hmget(key, ts_key)
    found = []
    for (stored,) in pipe.execute():
        nanos = 0
        if stored:
            ts = Timestamp()
            ts.ParseFromString(stored)
            nanos = _nanos(ts)
        found.append(nanos)
    return found


def _write_chunk(
    client: Any,
    config: Any,
    chunk: Chunk,
    fields: list[bytes],
    ts_key: str,
    latest: dict[bytes, int],
) -> None:
    online = config.online_store
    keys = [
        _redis_key(
            config.project,
            key,
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
        for key in chunk.keys
    ]
    stamps, nanos = _timestamps(chunk.event_at)
    with client.pipeline(transaction=False) as pipe:
        previous = [0] * len(keys) if online.skip_dedup else _previous_nanos(pipe, keys, ts_key)
        values = zip(*(encoded for encoded, _ in chunk.columns), strict=True)
        for key, stamp, new, before, row in zip(keys, stamps, nanos, previous, values, strict=True):
            if not online.skip_dedup:
                # Whichever is newer: the stored row or an earlier row of this write.
                seen = max(before, latest.get(key, 0))
                if seen and new <= seen:
                    continue
                latest[key] = new
            mapping: dict[Any, Any] = {ts_key: stamp}
            mapping.update(zip(fields, row, strict=True))
            pipe.hset(key, mapping=mapping)
            if online.key_ttl_seconds:
                pipe.expire(name=key, time=online.key_ttl_seconds)
        pipe.execute()


def write_redis(store: RedisOnlineStore, config: Any, view: Any, table: pa.Table) -> bool:
    """Write the latest rows ``table`` holds for ``view`` into Feast's Redis online store.

    Returns ``False``, having written nothing, where a column or timestamp is of a form the
    bulk encoder leaves to Feast; the caller then writes through Feast. A chunk refused after
    earlier chunks were sent leaves those written (Redis has no transaction across
    pipelines): they hold what Feast would have written, and Feast's write, which follows,
    finds their timestamps current and leaves them.
    """
    name = _versioned_fv_name(view, config)
    fields = [feature_field(name, feature.name) for feature in view.features]
    ts_key = f"_ts:{name}"
    client = store._get_client(config.online_store)
    latest: dict[bytes, int] = {}  # newest timestamp written so far by this call, per key
    try:
        for chunk in chunks(table, view):
            _write_chunk(client, config, chunk, fields, ts_key, latest)
    except NotEncodedError:
        return False
    return True
