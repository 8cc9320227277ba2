"""Bulk paths of the decision store for whole audiences: consent flags and decision inserts.

:meth:`~serving.store.DecisionStore.record_decisions` takes validated ``DecisionRecord``
models, which costs tens of microseconds per decision before the database sees a row. The
batch endpoint builds its decisions as plain columns instead; :func:`insert_decisions` writes
those rows (JSON columns already encoded) in one transaction, with the same encodings the
Core layer uses, so every row reads back through :class:`~serving.store.DecisionStore`
exactly as if it had been written there. A test pins that equivalence.

:func:`consent_states` reads only the consent part of
:meth:`~serving.store.DecisionStore.recipient_states` (unsubscribed, complained, hard
bounced). Without frequency caps or fatigue, that is all the eligibility rules look at, and
it does not grow with the recipient's send history.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from inboxlab.errors import ConflictError
from serving.eligibility import RecipientState
from serving.store.schema import decisions, outcomes
from serving.store.stats import StatKey, add_counts, utc

__all__ = ["DecisionColumns", "consent_states", "insert_decisions", "sqlite_time"]

#: How SQLAlchemy's ``DateTime`` stores a (UTC) timestamp in SQLite.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_CONSENT_KINDS = ("unsubscribe", "complaint", "bounce", "deliver")
#: Recipients per consent query (SQLite allows 32,766 bound parameters in one statement).
_CHUNK = 5_000

_COLUMNS = tuple(c.name for c in decisions.columns)
_SQLITE_INSERT = (
    f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_SQLITE_ADD_TRIALS = (
    "INSERT INTO arm_stats (experiment_id, variant_id, segment, day, successes, trials) "
    "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (experiment_id, variant_id, segment, day) "
    "DO UPDATE SET trials = arm_stats.trials + excluded.trials"
)
_CONSENT = (
    select(outcomes.c.recipient_id, outcomes.c.kind, func.max(outcomes.c.occurred_at))
    .where(
        outcomes.c.recipient_id.in_(bindparam("ids", expanding=True)),
        outcomes.c.kind.in_(_CONSENT_KINDS),
    )
    .group_by(outcomes.c.recipient_id, outcomes.c.kind)
)


@dataclass(frozen=True, slots=True)
class DecisionColumns:
    """Decisions as the ``decisions`` table holds them, one list per column (equal lengths).

    JSON columns hold encoded text; timestamps are aware datetimes.
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

    def __len__(self) -> int:
        return len(self.decision_id)


@lru_cache(maxsize=4096)
def sqlite_time(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite ``DateTime`` text (naive UTC); cached, since a batch
    repeats a few distinct times (its ``now``, the candidate hours) many times over."""
    at = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return at.strftime(_SQLITE_TIME)


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
    try:
        with engine.begin() as conn:
            conn.execute(decisions.insert(), params)
            for key, n in sorted(trials.items()):
                add_counts(conn, key, trials=n)
    except IntegrityError as exc:
        raise ConflictError("a decision_id of the batch is already stored") from exc
    return len(columns)


def _insert_sqlite(engine: Engine, columns: DecisionColumns, trials: Counter[StatKey]) -> None:
    lists: list[list[Any]] = []
    for name in _COLUMNS:
        values = getattr(columns, name)
        if name in ("decided_at", "send_at"):
            values = [None if v is None else sqlite_time(v) for v in values]
        lists.append(values)
    rows = list(zip(*lists, strict=True))  # tuples built in C, in the table's column order
    counts = [(*key[:3], key[3].isoformat(), n) for key, n in sorted(trials.items())]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT, rows)
            cursor.executemany(_SQLITE_ADD_TRIALS, counts)
            raw.commit()
        except sqlite3.IntegrityError as exc:
            raw.rollback()
            raise ConflictError("a decision_id of the batch is already stored") from exc
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()
    finally:
        raw.close()


def consent_states(engine: Engine, recipient_ids: Sequence[str]) -> dict[str, RecipientState]:
    """The consent flags of :meth:`~serving.store.DecisionStore.recipient_states`, no history.

    A bounce is hard while no delivery has followed it, as there. Send and engagement times
    are left empty: use this only when no frequency cap or fatigue rule is configured.
    """
    ids = list(dict.fromkeys(recipient_ids))
    latest: dict[str, dict[str, datetime]] = {rid: {} for rid in ids}
    for rid, kind, at in _consent_rows(engine, ids):
        latest[rid][kind] = at
    out: dict[str, RecipientState] = {}
    for rid in ids:
        last = latest[rid]
        out[rid] = RecipientState(
            unsubscribed="unsubscribe" in last,
            complained="complaint" in last,
            hard_bounced="bounce" in last
            and ("deliver" not in last or last["bounce"] > last["deliver"]),
        )
    return out


@lru_cache(maxsize=16)
def _sqlite_consent_sql(n: int) -> str:
    kinds = ",".join(f"'{k}'" for k in _CONSENT_KINDS)
    return (
        "SELECT recipient_id, kind, max(occurred_at) FROM outcomes "
        f"WHERE recipient_id IN ({','.join('?' * n)}) AND kind IN ({kinds}) "
        "GROUP BY recipient_id, kind"
    )


def _consent_rows(engine: Engine, ids: list[str]) -> list[tuple[str, str, datetime]]:
    if not ids:
        return []
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            found = conn.execute(_CONSENT, {"ids": ids}).all()
        return [(rid, kind, utc(at)) for rid, kind, at in found]
    out: list[tuple[str, str, datetime]] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                cursor.execute(_sqlite_consent_sql(len(part)), part)
                out.extend(
                    (rid, kind, datetime.fromisoformat(at).replace(tzinfo=UTC))
                    for rid, kind, at in cursor.fetchall()
                )
        finally:
            cursor.close()
    finally:
        raw.close()
    return out
