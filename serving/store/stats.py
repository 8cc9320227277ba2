"""Bandit arm statistics: what counts as a trial and a reward, and atomic count updates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from inboxlab.errors import StoreError
from inboxlab.records import Action, EventKind, EventRecord
from serving.store.schema import arm_stats

__all__ = [
    "DEFAULT_REWARD",
    "ArmStat",
    "RewardRule",
    "StatKey",
    "add_counts",
    "counts_as_trial",
    "insert_for",
    "rewards",
    "stat_key",
    "utc",
]

StatKey = tuple[str, str, str, date]  # experiment_id, variant_id, segment, day


@dataclass(frozen=True, slots=True)
class RewardRule:
    """Which outcome rewards an experiment's arm, and for how long after the decision."""

    kind: EventKind = EventKind.CLICK
    attribution_window: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ArmStat:
    """Counts of one arm in one segment for decisions made on one day."""

    experiment_id: str
    variant_id: str
    segment: str
    day: date
    successes: int
    trials: int


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_for(dialect: str, table: Any) -> Any:
    """The dialect's INSERT, which supports ``ON CONFLICT`` on both SQLite and PostgreSQL."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"decision store supports sqlite and postgresql, not {dialect}")


@cache
def _upsert_counts(dialect: str) -> Any:
    # Built once per dialect and executed with parameters: building a statement with
    # ``.values()`` on every call costs more than the database write itself.
    stmt = insert_for(dialect, arm_stats)
    # Atomic in the database: concurrent replicas never lose an increment.
    return stmt.on_conflict_do_update(
        index_elements=["experiment_id", "variant_id", "segment", "day"],
        set_={
            "successes": arm_stats.c.successes + stmt.excluded.successes,
            "trials": arm_stats.c.trials + stmt.excluded.trials,
        },
    )


def add_counts(conn: Connection, key: StatKey, *, successes: int = 0, trials: int = 0) -> None:
    """Add to the counts of one (experiment, variant, segment, day), creating the row."""
    experiment_id, variant_id, segment, day = key
    conn.execute(
        _upsert_counts(conn.dialect.name),
        {
            "experiment_id": experiment_id,
            "variant_id": variant_id,
            "segment": segment,
            "day": day,
            "successes": successes,
            "trials": trials,
        },
    )


def counts_as_trial(row: Mapping[Any, Any]) -> bool:
    return (
        row["action"] == Action.SEND.value
        and row["experiment_id"] is not None
        and row["variant_id"] is not None
    )


def stat_key(row: Mapping[Any, Any]) -> StatKey:
    return (
        row["experiment_id"],
        row["variant_id"],
        row["segment"] or "",
        utc(row["decided_at"]).date(),
    )


def rewards(
    decision: Mapping[Any, Any], event: EventRecord, rule: RewardRule, dedup_kind: str
) -> bool:
    if not counts_as_trial(decision) or decision["recipient_id"] != event.recipient_id:
        return False
    if event.kind != rule.kind or dedup_kind != rule.kind.value:
        return False  # another kind, or a machine open
    delay = event.occurred_at - utc(decision["decided_at"])
    return timedelta(0) <= delay <= rule.attribution_window


#: Click within 7 days: the reward of an experiment that names none.
DEFAULT_REWARD = RewardRule()
