"""Engines for the decision store: SQLite in WAL mode by default, PostgreSQL by URL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import to_json
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from inboxlab.sqlite_deadline import watched
from inboxlab.sqlite_threads import ConnectionPerThread

__all__ = [
    "ThreadConnections",
    "create_store_engine",
    "is_sqlite",
    "json_compact",
    "json_scalar",
    "json_text",
    "sqlite_text_time",
]

#: How long a SQLite writer waits for another writer's lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 5_000


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_text_time(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite ``DateTime`` stores it: naive UTC text with a
    zero-padded year and six digits of microseconds (its ``storage_format``).

    >>> from datetime import timedelta, timezone
    >>> sqlite_text_time(datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))))
    '2026-03-01 07:00:00.000000'
    """
    at = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return at.isoformat(" ", "microseconds")  # strftime's "%Y...%f" takes 5-10 times longer


def json_scalar(value: Any) -> Any:
    """A NumPy scalar as its Python value, for JSON encoders' fallback (feature rows may
    hold them); anything else unknown is an error, as in ``json.dumps``.

    >>> json_text({"sends": np.int64(3), "rate": np.float32(0.5)})
    '{"sends": 3, "rate": 0.5}'
    """
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_text(value: Any) -> str:
    """The JSON text of a JSON column's value (``json.dumps``, NumPy scalars allowed)."""
    return json.dumps(value, default=json_scalar)


def json_compact(value: Any) -> str:
    """:func:`json_text` as the store's fast paths write it: pydantic-core's encoder, the same
    JSON values (NaN kept as NaN), compact and several times faster for a hundred features.

    >>> json_compact({"sends": np.int64(3), "rate": float("nan")})
    '{"sends":3,"rate":NaN}'
    """
    return to_json(value, inf_nan_mode="constants", fallback=json_scalar).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (decisions, /readyz) proceed while an outcome batch writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode syncs at checkpoints, not at every commit. A committed transaction is
    # in the WAL file in the OS page cache, so it survives the process being killed (kill -9);
    # only a power loss or kernel crash can drop the last commits. FULL would fsync per commit
    # and cost milliseconds on the render path.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def create_store_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url``; with ``schema``, every table lives in that schema (PostgreSQL).

    For a SQLite file the parent directory is created.
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=json_text)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # pre_ping: a PostgreSQL restart must not turn the next request into a 5xx.
        engine = create_engine(url, pool_pre_ping=True, json_serializer=json_text)
    if schema is not None:
        return engine.execution_options(schema_translate_map={None: schema})
    return engine


class ThreadConnections:
    """One long-lived DB-API connection per thread to a SQLite file, outside SQLAlchemy's
    pool, for the statements of every decision: the render path's state read and the group
    commit writer's insert.

    A pool checkout and its reset on return cost several times a small indexed query or a
    small commit. Each connection is used only by the thread that opened it. It runs in
    autocommit: every read sees what was committed before it started (WAL), as a pooled
    connection would, and a write opens its transaction with an explicit ``BEGIN``.
    Non-file databases (PostgreSQL, in-memory SQLite) borrow a pooled connection instead.

    Examples
    --------
    >>> import tempfile
    >>> url = f"sqlite:///{tempfile.mkdtemp()}/d.db"
    >>> engine = create_store_engine(url)
    >>> readers = ThreadConnections(url)
    >>> with readers.connection(engine) as conn:
    ...     conn.execute("SELECT 1").fetchone()
    (1,)
    >>> readers.close()
    """

    def __init__(self, url: str) -> None:
        database = make_url(url).database if is_sqlite(url) else None
        self._path = database if database and database != ":memory:" else None
        self._threads = ConnectionPerThread(self._open_file)

    def _open_file(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path or "", isolation_level=None, check_same_thread=False)
        _sqlite_pragmas(conn, None)
        return conn

    @property
    def interruptible(self) -> bool:
        """Whether a statement stops at this thread's :mod:`inboxlab.sqlite_deadline`: on a
        SQLite file, whose connections are each used by one thread (not pooled ones)."""
        return self._path is not None

    @contextmanager
    def connection(self, engine: Engine) -> Iterator[Any]:
        """A DB-API connection (this thread's own, or a pooled one)."""
        if self._path is None:
            raw = engine.raw_connection()
            try:
                yield raw
            finally:
                raw.close()
            return
        conn = self._threads.get()
        with watched(conn):  # a read given a deadline stops there; others are not checked
            yield conn

    def close(self) -> None:
        """Close every connection opened so far (a later read opens a new one)."""
        self._threads.close()
