"""Build the feature tables from the event log with DuckDB, incrementally by snapshot day.

Only days after the last snapshot already written are computed (``rebuild=True`` recomputes
everything, e.g. after late events were imported for past days). The newest snapshot is the
day after the last day in the log, but never later than today (UTC): today's partition may
still grow, and a snapshot is written once.

A build reads the event log once per chunk of ``chunk_days`` snapshot days (one chunk unless
the span is longer than a year), runs the shared steps over every recipient, then the
per-recipient steps for ranges of recipients of about ``rows_per_pass`` recipient × day rows
each, so memory stays bounded whatever the size of the log. Every pass writes one file per
table, holding all the chunk's snapshot days of its recipients, into a staging directory;
the directory becomes the chunk's (:func:`~features.engineering.tables.snapshot_dir`) at the
end of the chunk, in one rename.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.engineering.context import utc_offsets, valid_timezone
from features.engineering.sql import (
    RecipientRange,
    Statement,
    recipient_statements,
    shared_statements,
)
from features.engineering.tables import (
    ENGAGEMENT_TABLE,
    FEATURE_TABLES,
    SEND_TIME_TABLE,
    WINDOWS,
    locked_tables,
    migrate_layout,
    snapshot_dir,
    snapshot_spans,
    table_dir,
)
from features.engineering.variant import variant_statements
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

#: Called after each pass with (snapshot days done, snapshot days to do).
Progress = Callable[[int, int], None]
#: The feature tables computed per range of recipients (the others over all at once).
RECIPIENT_TABLES = (ENGAGEMENT_TABLE, SEND_TIME_TABLE)


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
    return [
        first + timedelta(days=i)
        for first, last in snapshot_spans(settings, table)
        for i in range((last - first).days + 1)
    ]


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


#: The ``recipients`` relation: validated time zone, and the UTC day (``day_num``) the
#: recipient joined, null when unknown.
_RECIPIENTS_SCHEMA = pa.schema(
    [("recipient_id", pa.string()), ("timezone", pa.string()), ("created_day", pa.int32())]
)


def _recipients(settings: Settings) -> pa.Table:
    path = settings.data_dir / "recipients.parquet"
    if not path.exists():
        return _RECIPIENTS_SCHEMA.empty_table()
    names = pq.read_schema(path).names
    table = pq.read_table(
        path, columns=[c for c in ("recipient_id", "timezone", "created_at") if c in names]
    )
    zones = [valid_timezone(z) for z in table.column("timezone").to_pylist()]
    if "created_at" in names:
        # Days since 1970-01-01 of the UTC date: the SQL compares it with ``day_num``.
        created = pc.cast(
            pc.cast(pc.cast(table.column("created_at"), pa.timestamp("us", tz="UTC")), pa.date32()),
            pa.int32(),
        )
    else:
        created = pa.nulls(table.num_rows, pa.int32())
    return pa.table(
        {"recipient_id": table.column("recipient_id"), "timezone": zones, "created_day": created},
        _RECIPIENTS_SCHEMA,
    )


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


def _connect(memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET enable_progress_bar = false")  # the caller shows progress
    # Results are keyed, never read in insertion order: let DuckDB stream them unordered.
    con.execute("SET preserve_insertion_order = false")
    return con


@contextmanager
def _timed(step: str) -> Iterator[None]:
    """Log the wall and CPU seconds of one step at DEBUG, with ``step``, ``wall_s`` and
    ``cpu_s`` as record attributes, so a profiler can add them up per step.

    CPU is the whole process's: DuckDB's worker threads run in it, and a build runs one
    statement at a time, so it is the statement's CPU.
    """
    if not logger.isEnabledFor(logging.DEBUG):
        yield
        return
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    logger.debug(
        "%s: %.3f s wall, %.3f s CPU",
        step,
        wall,
        cpu,
        extra={"step": step, "wall_s": wall, "cpu_s": cpu},
    )


def _write(
    con: duckdb.DuckDBPyConnection, table: str, staging: Path, part: int, created: str
) -> int:
    # One pass of one table: a single file with every snapshot day of the pass's recipients,
    # into a staging directory readers ignore; ``_publish`` moves it into place. No ORDER BY
    # and no PARTITION_BY: the rows are keyed, and sorting a wide table or splitting it into
    # a file per day costs as much again as writing it.
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"part-{part}.parquet"
    target = str(path).replace("'", "''")
    with _timed(f"write {table}"):
        row = con.execute(
            f"COPY (SELECT * EXCLUDE (day, day_num), "
            f"CAST(day AS TIMESTAMPTZ) AS event_timestamp, "
            f"CAST('{created}' AS TIMESTAMPTZ) AS created_at "
            f"FROM {table}) "
            f"TO '{target}' (FORMAT parquet)"
        ).fetchone()
    rows = int(row[0]) if row else 0
    if rows == 0:
        path.unlink(missing_ok=True)  # an empty table has no files, as before the build
    return rows


def _publish(staging: Path, final: Path) -> None:
    # A crash leaves the whole chunk or nothing: one rename puts its files in place.
    if any(staging.glob("*.parquet")):
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    else:
        shutil.rmtree(staging)


def _drop_unfinished(settings: Settings, first: date) -> None:
    """Remove the chunks of a build that stopped before it published ``engagement``: their
    days, from ``first`` on, are built again, perhaps in chunks of other spans."""
    for table in FEATURE_TABLES:
        for start, end in snapshot_spans(settings, table):
            if end >= first:
                logger.info(
                    "removing %s snapshots %s to %s of an unfinished build", table, start, end
                )
                shutil.rmtree(snapshot_dir(settings, table, start, end))


def _chunks(first: date, last: date, size: int) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    start = first
    while start <= last:
        end = min(start + timedelta(days=size - 1), last)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def _recipient_passes(
    con: duckdb.DuckDBPyConnection, first_day: int, last_day: int, rows_per_pass: int
) -> tuple[list[RecipientRange], int]:
    """Recipient ranges of about ``rows_per_pass`` grid rows each, and the most events of a
    recipient (the bound :func:`recipient_statements` packs counts with)."""
    grid_start = first_day - max(WINDOWS)
    counts = con.execute(
        f"SELECT recipient_id, COUNT(*), {last_day} - GREATEST(MIN(day_num), {grid_start}) "
        "FROM labelled_events GROUP BY recipient_id ORDER BY recipient_id"
    ).fetchall()
    if not counts:
        return [(None, None)], 0
    max_events = max(int(n) for _, n, _ in counts)
    bounds: list[str | None] = [None]
    rows = 0
    for recipient, _, days in counts:
        if rows >= rows_per_pass:
            bounds.append(str(recipient))
            rows = 0
        rows += max(0, int(days))
    bounds.append(None)
    return list(itertools.pairwise(bounds)), max_events


def build_features(
    settings: Settings,
    *,
    until: date | None = None,
    rebuild: bool = False,
    chunk_days: int = 366,
    rows_per_pass: int = 1_500_000,
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
        Snapshot days computed per DuckDB connection; each chunk re-reads the 90 days
        before it, so larger is faster as long as the days fit in memory.
    rows_per_pass
        Recipient × day rows computed at once within a chunk (bounds memory; recipients
        are split into ranges of about this many rows).
    progress
        Called after each pass with (days done, days to do).
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
    # Another build of the same tables waits, then finds the days it would build done.
    with locked_tables(settings):
        if rebuild:
            for table in FEATURE_TABLES:
                shutil.rmtree(table_dir(settings, table), ignore_errors=True)
        migrate_layout(settings)
        span = snapshot_range(settings, until=until, rebuild=rebuild)
        if span is None:
            logger.info("feature tables are up to date")
            return BuildResult()
        first, last = span
        _drop_unfinished(settings, first)
        total_days = (last - first).days + 1
        created = datetime.now(UTC).isoformat()
        rows = dict.fromkeys(FEATURE_TABLES, 0)
        done = 0
        if progress:
            progress(0, total_days)
        for start, end in _chunks(first, last, max(1, chunk_days)):
            chunk = (end - start).days + 1

            def passed(k: int, n: int, done: int = done, chunk: int = chunk) -> None:
                if progress:
                    progress(done + chunk * k // n, total_days)

            written = _build_chunk(
                settings, start, end, rows_per_pass, memory_limit, created, on_pass=passed
            )
            for table, n in written.items():
                rows[table] += n
            done += chunk
            if progress:
                progress(done, total_days)
    days = tuple(first + timedelta(days=i) for i in range(total_days))
    logger.info("built %d snapshot days (%s to %s): %s", total_days, first, last, rows)
    return BuildResult(days=days, rows=rows)


def _build_chunk(
    settings: Settings,
    start: date,
    end: date,
    rows_per_pass: int,
    memory_limit: str,
    created: str,
    *,
    on_pass: Callable[[int, int], None],
) -> dict[str, int]:
    """Build and publish the snapshots ``start`` to ``end`` on a connection of their own;
    return the rows written per table. ``on_pass(k, n)`` is told after pass ``k`` of ``n``
    but the last."""
    rows = dict.fromkeys(FEATURE_TABLES, 0)
    con = _connect(memory_limit)
    staging = {t: table_dir(settings, t) / f"_staging-{uuid.uuid4().hex}" for t in FEATURE_TABLES}
    try:
        register_inputs(con, settings, start, end)
        lo, hi = day_num(start), day_num(end)
        run_statements(con, shared_statements(lo, hi))
        passes, max_events = _recipient_passes(con, lo, hi, rows_per_pass)
        for i, recipients in enumerate(passes):
            statements = recipient_statements(lo, hi, max_events=max_events, recipients=recipients)
            run_statements(con, statements, views=RECIPIENT_TABLES)
            for table in RECIPIENT_TABLES:
                rows[table] += _write(con, table, staging[table], i, created)
            if i + 1 < len(passes):
                on_pass(i + 1, len(passes))
        run_statements(con, variant_statements(lo, hi))
        for table in FEATURE_TABLES:
            if table not in RECIPIENT_TABLES:
                rows[table] += _write(con, table, staging[table], 0, created)
        # The table that says which days are built (``existing_days``) comes last, so a
        # crash in between leaves the chunk to be built again.
        for table in sorted(staging, key=lambda t: t == ENGAGEMENT_TABLE):
            if staging[table].exists():
                _publish(staging[table], snapshot_dir(settings, table, start, end))
    finally:
        con.close()
        for directory in staging.values():
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def run_statements(
    con: duckdb.DuckDBPyConnection,
    statements: Sequence[Statement],
    *,
    views: Collection[str] = (),
) -> None:
    """Run the pipeline on DuckDB, keeping each step as a temporary table.

    Steps named in ``views`` are kept as views instead: computed when read, e.g. a day at a
    time by the writer, rather than held in memory whole. With DEBUG logging on, each step
    logs its wall and CPU seconds (see ``benchmarks/bench_features_build.py --profile``).
    """
    for statement in statements:
        kind = "VIEW" if statement.name in views else "TABLE"
        with _timed(statement.name):
            con.execute(f"CREATE OR REPLACE TEMP {kind} {statement.name} AS {statement.sql}")
