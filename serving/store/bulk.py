"""Bulk path of the decision store for whole audiences: decision inserts from columns.

:meth:`~serving.store.DecisionStore.record_decisions` takes validated ``DecisionRecord``
models, which costs tens of microseconds per decision before the database sees a row. The
batch endpoint builds its decisions as plain columns instead; :func:`insert_decisions` writes
those rows (JSON columns already encoded) in one transaction, with the same encodings the
Core layer uses, so every row reads back through :class:`~serving.store.DecisionStore`
exactly as if it had been written there. A test pins that equivalence.

"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from serving.store.decisions import core_insert_decisions, sqlite_insert_decisions
from serving.store.engine import sqlite_text_time
from serving.store.feature_codec import Layout
from serving.store.schema import decisions
from serving.store.stats import StatKey

__all__ = ["BULK_LOCK_WAIT_S", "DecisionColumns", "insert_decisions", "sqlite_time"]

logger = logging.getLogger(__name__)

_COLUMNS = tuple(c.name for c in decisions.columns)

#: How long a bulk insert into SQLite keeps trying while other processes hold the write lock,
#: in seconds. A batch has no render-time budget; the render path keeps the busy timeout.
BULK_LOCK_WAIT_S = 120.0
# The bulk inserts of one process into SQLite, one at a time.
_BULK_WRITES = threading.Lock()


@contextmanager
def _bulk_turn(engine: Engine) -> Iterator[None]:
    """Bulk writers into one SQLite file take turns: threads of a process on a lock, processes
    on an ``flock`` of ``<database>-bulk.lock`` beside it.

    Without turns, writers poll for SQLite's write lock with its busy handler, which sleeps
    1, 2, 5 … 100 ms between tries and is not fair: with four batch calls at a time on two
    workers a chunk waited past the 5 s busy timeout and its call ended mid-stream, and a
    waiting writer slept on after the lock was free. A blocked ``flock`` wakes as soon as the
    holder lets go. (Single decisions keep the busy timeout: they are small and few.)
    """
    database = engine.url.database
    with _BULK_WRITES:
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with Path(f"{database}-bulk.lock").open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class DecisionColumns:
    """Decisions as the ``decisions`` table holds them, one list per column (equal lengths).

    JSON columns hold encoded text, ``features`` as
    :func:`~serving.store.feature_codec.encode_features` writes it; timestamps are aware
    datetimes.
    """

    decision_id: list[str]
    recipient_id: list[str]
    campaign_id: list[str]
    experiment_id: list[str | None]
    decided_at: list[datetime]
    action: list[str]
    reasons: list[str]
    variant_id: list[str | None]
    variant_propensity: list[float | None]
    send_at: list[datetime | None]
    send_time_propensity: list[float | None]
    scores: list[str]
    model_versions: list[str]
    features: list[str]
    segment: list[str | None]
    policy: list[str]
    #: The feature layouts that ``features`` names (:mod:`serving.store.feature_codec`).
    layouts: tuple[Layout, ...] = ()

    def __len__(self) -> int:
        return len(self.decision_id)


@lru_cache(maxsize=4096)
def sqlite_time(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite ``DateTime`` text (naive UTC); cached, since a batch
    repeats a few distinct times (its ``now``, the candidate hours) many times over."""
    return sqlite_text_time(value)


def insert_decisions(engine: Engine, columns: DecisionColumns, trials: Counter[StatKey]) -> int:
    """Insert the decisions of ``columns`` and add ``trials`` to the arm statistics, in one
    transaction.

    Raises :class:`~inboxlab.errors.ConflictError` (and writes nothing) when a decision id is
    already stored. Returns the number of rows written.
    """
    if not len(columns):
        return 0
    if engine.dialect.name == "sqlite":
        _insert_sqlite(engine, columns, trials)
        return len(columns)
    decoded = {"reasons", "scores", "model_versions", "features"}
    lists = {name: getattr(columns, name) for name in _COLUMNS}
    params = [
        {
            name: (json.loads(v) if name in decoded else v)
            for name, v in zip(_COLUMNS, row, strict=True)
        }
        for row in zip(*lists.values(), strict=True)
    ]
    core_insert_decisions(engine, params, trials, columns.layouts)
    return len(columns)


def _insert_sqlite(engine: Engine, columns: DecisionColumns, trials: Counter[StatKey]) -> None:
    lists: list[list[Any]] = []
    for name in _COLUMNS:
        values = getattr(columns, name)
        if name in ("decided_at", "send_at"):
            values = [None if v is None else sqlite_time(v) for v in values]
        lists.append(values)
    rows = list(zip(*lists, strict=True))  # tuples built in C, in the table's column order
    deadline = time.monotonic() + BULK_LOCK_WAIT_S
    with _bulk_turn(engine):
        while True:
            raw = engine.raw_connection()
            try:
                sqlite_insert_decisions(raw, rows, trials, columns.layouts)
                return
            except sqlite3.OperationalError as exc:
                # Another process held the write lock past the busy timeout. The transaction
                # was rolled back, so nothing of the chunk is stored: write it again.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                logger.warning("decision store locked by another writer; writing the chunk again")
            finally:
                raw.close()
