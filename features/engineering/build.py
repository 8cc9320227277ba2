"""Build the feature tables from the event log with DuckDB, incrementally by snapshot day.

Only days after the last snapshot already written are computed (``rebuild=True`` recomputes
everything, e.g. after late events were imported for past days). The newest snapshot is the
day after the last day in the log, but never later than today (UTC): today's partition may
still grow, and a snapshot is written once.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from features.engineering.context import utc_offsets, valid_timezone
from features.engineering.sql import Statement, feature_statements
from features.engineering.tables import ENGAGEMENT_TABLE, FEATURE_TABLES, table_dir
from features.events.log import EventLog
from features.events.schema import EVENT_SCHEMA
from inboxlab.errors import EventLogCorruptError, NotFoundError
from inboxlab.settings import Settings

__all__ = [
    "BuildResult",
    "Progress",
    "build_features",
    "day_num",
    "existing_days",
    "register_inputs",
    "run_statements",
    "snapshot_range",
]

logger = logging.getLogger(__name__)

EPOCH = date(1970, 1, 1)

#: Called after each chunk with (snapshot days done, snapshot days to do).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build wrote: the snapshot days and the rows per table."""

    days: tuple[date, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)


def day_num(day: date) -> int:
    """Days since 1970-01-01.

    >>> day_num(date(1970, 1, 2))
    1
    """
    return (day - EPOCH).days


def existing_days(settings: Settings, table: str = ENGAGEMENT_TABLE) -> list[date]:
    """Snapshot days already written for ``table``, sorted."""
    directory = table_dir(settings, table)
    if not directory.exists():
        return []
    return sorted(
        date.fromisoformat(p.name.split("=", 1)[1])
        for p in directory.glob("date=*")
        if any(p.glob("*.parquet"))
    )


def _event_days(log: EventLog) -> list[date]:
    return [date.fromisoformat(d) for d in log.partitions()]


def snapshot_range(
    settings: Settings, *, until: date | None = None, rebuild: bool = False
) -> tuple[date, date] | None:
    """First and last snapshot day a build would compute, or None when up to date.

    Raises
    ------
    NotFoundError
        When the event log is missing or empty.
    """
    log = EventLog(settings.events_dir)
    days = _event_days(log)
    if not days:
        raise NotFoundError(
            f"no events in {settings.events_dir}; run `inboxlab simulate` or "
            "`inboxlab import-events` first"
        )
    last = until or min(days[-1] + timedelta(days=1), datetime.now(UTC).date())
    done = [] if rebuild else existing_days(settings)
    first = done[-1] + timedelta(days=1) if done else days[0] + timedelta(days=1)
    return (first, last) if first <= last else None


def _recipients(settings: Settings) -> pa.Table:
    path = settings.data_dir / "recipients.parquet"
    schema = pa.schema([("recipient_id", pa.string()), ("timezone", pa.string())])
    if not path.exists():
        return schema.empty_table()
    table = pq.read_table(path, columns=["recipient_id", "timezone"])
    zones = [valid_timezone(z) for z in table.column("timezone").to_pylist()]
    return pa.table({"recipient_id": table.column("recipient_id"), "timezone": zones}, schema)


def register_inputs(
    con: duckdb.DuckDBPyConnection, settings: Settings, first: date, last: date
) -> None:
    """Register ``events``, ``calendar``, ``recipients`` and ``tz_offsets`` on ``con``."""
    log = EventLog(settings.events_dir)
    files = [str(f) for f in log.files()]
    event_days = _event_days(log)
    start = min(event_days[0], first)
    n = (last - start).days + 1
    calendar = pa.table(
        {
            "day": pa.array([start + timedelta(days=i) for i in range(n)], pa.date32()),
            "day_num": pa.array([day_num(start) + i for i in range(n)], pa.int32()),
        }
    )
    recipients = _recipients(settings)
    zones = set(recipients.column("timezone").to_pylist())
    offsets = utc_offsets(zones, start, last)
    tz_offsets = pa.table(
        {
            "timezone": pa.array([o[0] for o in offsets], pa.string()),
            "day_num": pa.array([o[1] for o in offsets], pa.int32()),
            "offset_minutes": pa.array([o[2] for o in offsets], pa.int32()),
        }
    )
    columns = ", ".join(EVENT_SCHEMA.names)
    try:
        con.read_parquet(files, hive_partitioning=False).select(columns).create_view("events")
    except duckdb.Error as exc:
        raise EventLogCorruptError(f"cannot read the event log: {exc}") from exc
    for name, table in (
        ("calendar", calendar),
        ("recipients", recipients),
        ("tz_offsets", tz_offsets),
    ):
        con.register(name, table)


def _write(con: duckdb.DuckDBPyConnection, table: str, directory: Path, created: str) -> int:
    # Written to a staging directory first (ignored by readers: it starts with "_"), then each
    # day's partition is moved into place, so a crash leaves whole days or nothing.
    staging = directory / f"_staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    target = str(staging).replace("'", "''")
    con.execute(
        f"COPY (SELECT * EXCLUDE (day, day_num), "
        f"CAST(day AS TIMESTAMPTZ) AS event_timestamp, "
        f"CAST('{created}' AS TIMESTAMPTZ) AS created_at, "
        f"strftime(day, '%Y-%m-%d') AS date "
        f"FROM {table} ORDER BY day_num, recipient_id) "
        f"TO '{target}' (FORMAT parquet, PARTITION_BY (date), FILENAME_PATTERN 'part-{{i}}')"
    )
    for part in sorted(staging.glob("date=*")):
        final = directory / part.name
        if final.exists():
            shutil.rmtree(final)
        part.rename(final)
    shutil.rmtree(staging)
    row = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _chunks(first: date, last: date, size: int) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    start = first
    while start <= last:
        end = min(start + timedelta(days=size - 1), last)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def build_features(
    settings: Settings,
    *,
    until: date | None = None,
    rebuild: bool = False,
    chunk_days: int = 30,
    progress: Progress | None = None,
    memory_limit: str = "3GB",
) -> BuildResult:
    """Compute the snapshots missing from the feature tables and write them as Parquet.

    Parameters
    ----------
    settings
        Where the event log and the feature tables live (``data_dir``).
    until
        Last snapshot day to compute; default the day after the last event day, capped at
        today (UTC).
    rebuild
        Drop the feature tables and recompute every snapshot.
    chunk_days
        Snapshot days computed per DuckDB pass (bounds memory; one progress step each).
    progress
        Called after each chunk with (days done, days to do).
    memory_limit
        DuckDB's memory limit; it spills to disk beyond it.

    Returns
    -------
    BuildResult
        The snapshot days written and the rows per table (empty when up to date).

    Raises
    ------
    NotFoundError
        When the event log is missing or empty.
    """
    if rebuild:
        for table in FEATURE_TABLES:
            shutil.rmtree(table_dir(settings, table), ignore_errors=True)
    span = snapshot_range(settings, until=until, rebuild=rebuild)
    if span is None:
        logger.info("feature tables are up to date")
        return BuildResult()
    first, last = span
    chunks = _chunks(first, last, max(1, chunk_days))
    total_days = (last - first).days + 1
    created = datetime.now(UTC).isoformat()
    rows = dict.fromkeys(FEATURE_TABLES, 0)
    done = 0
    if progress:
        progress(0, total_days)
    for start, end in chunks:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute("SET enable_progress_bar = false")  # the caller shows progress
            register_inputs(con, settings, start, end)
            run_statements(con, feature_statements(day_num(start), day_num(end)))
            for table in FEATURE_TABLES:
                rows[table] += _write(con, table, table_dir(settings, table), created)
        finally:
            con.close()
        done += (end - start).days + 1
        if progress:
            progress(done, total_days)
    days = tuple(first + timedelta(days=i) for i in range(total_days))
    logger.info("built %d snapshot days (%s to %s): %s", total_days, first, last, rows)
    return BuildResult(days=days, rows=rows)


def run_statements(con: duckdb.DuckDBPyConnection, statements: Sequence[Statement]) -> None:
    """Run the pipeline on DuckDB, keeping each step as a temporary table."""
    for statement in statements:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {statement.name} AS {statement.sql}")
