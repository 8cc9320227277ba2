"""The bulk write of materialized rows into Feast's SQLite online store.

Feast's SQLite store executes one ``INSERT … ON CONFLICT`` per value. :func:`write_sqlite`
writes the same rows — entity key, feature name, the serialized value, its ``value_text``,
event and created timestamps — with one ``executemany`` per chunk of
:func:`features.materialize_engine.chunks`, in one transaction per view as Feast's. What is
left is SQLite's own insert into Feast's indexed table (3.5–3.9 µs a row on the development
machine).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from itertools import chain, repeat
from typing import Any

import pyarrow as pa
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id
from feast.utils import to_naive_utc

from features.materialize_engine import Chunk, NotEncodedError, chunks
from features.prepared import writing_in_bulk

__all__ = ["write_sqlite"]


def _bound(stamps: tuple[list[datetime], list[int]], conn: sqlite3.Connection) -> list[Any]:
    """Each row's timestamp as Feast's statements store it.

    Each distinct value is made naive UTC (``to_naive_utc``, as Feast) and bound by ``conn``
    itself, so it passes through the adapter Feast's store registers for ``datetime`` (epoch
    seconds in feast 0.67).
    """
    distinct, inverse = stamps
    bound = [conn.execute("SELECT ?", (to_naive_utc(d),)).fetchone()[0] for d in distinct]
    return list(map(bound.__getitem__, inverse))


def _rows(
    chunk: Chunk, keys: list[bytes], names: list[str], conn: sqlite3.Connection
) -> Iterator[tuple[Any, ...]]:
    """The stored rows of ``chunk`` (its entities serialized as ``keys``), entity by entity
    and within one feature by feature, as Feast writes them."""
    width, n = len(names), len(chunk.keys)
    event_ts = _bound(chunk.event_at, conn)
    created_ts = [None] * n if chunk.created_at is None else _bound(chunk.created_at, conn)
    return zip(
        chain.from_iterable(map(repeat, keys, repeat(width))),
        chain.from_iterable(repeat(names, n)),
        chain.from_iterable(zip(*(values for values, _ in chunk.columns), strict=True)),
        chain.from_iterable(zip(*(texts for _, texts in chunk.columns), strict=True)),
        chain.from_iterable(map(repeat, event_ts, repeat(width))),
        chain.from_iterable(map(repeat, created_ts, repeat(width))),
        strict=True,
    )


def write_sqlite(store: SqliteOnlineStore, config: Any, view: Any, table: pa.Table) -> bool:
    """Upsert the latest rows ``table`` holds for ``view`` into Feast's SQLite online store.

    Returns ``False``, having written nothing, where this path does not apply (a vector or
    ``value_num`` column, a column the encoder leaves aside, a missing timestamp): the caller
    then writes through Feast.
    """
    online = config.online_store
    if online.vector_enabled or getattr(online, "enable_openai_compatible_store", False):
        return False
    names = [feature.name for feature in view.features]
    table_name = _table_id(
        config.project, view, config.registry.enable_online_feature_view_versioning
    )
    sql = (
        f"INSERT INTO {_quote_id(table_name)} "
        "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
        "value = excluded.value, value_text = excluded.value_text, "
        "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
    )
    conn = store._get_conn(config)
    serialization = config.entity_key_serialization_version
    try:
        # One transaction for the view, as Feast's own write; undone on a refusal. The
        # prepared rows of the keys written are dropped per entity, not by a trigger per row.
        with conn, writing_in_bulk(conn, table_name) as forget:
            for chunk in chunks(table, view):
                keys = [serialize_entity_key(key, serialization) for key in chunk.keys]
                forget(keys)
                conn.executemany(sql, _rows(chunk, keys, names, conn))
    except NotEncodedError:
        return False
    return True
