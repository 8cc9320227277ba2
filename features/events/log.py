"""The event log: Parquet files partitioned by UTC day, appended atomically.

Layout (Hive-style, so DuckDB, pandas/pyarrow and Spark read it as one table)::

    events/
      date=2026-03-01/part-<txn>.parquet
      date=2026-03-02/part-<txn>.parquet
      _txn/                      staging and journals; ignored by every reader
      _lock                      one writer at a time

An append is all-or-nothing. New files are written under ``_txn/<id>/`` first, then a journal
naming every destination is written and synced, then each file is renamed into its partition,
then the journal is removed: that removal is the commit. If the process dies in between, the
next writer (or :meth:`EventLog.recover`) finds the journal and deletes what had been moved, so
the log is as it was before the append. Readers may glimpse a half-renamed append for the few
milliseconds the renames take; they never see a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.events.schema import EVENT_SCHEMA, PARTITION_COLUMN
from inboxlab.errors import EventLogCorruptError, InvalidInputError

__all__ = ["AppendResult", "EventLog", "rewrite_without"]

logger = logging.getLogger(__name__)

_TXN_DIR = "_txn"
_LOCK_FILE = "_lock"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append wrote."""

    rows: int
    files: tuple[Path, ...]


class EventLog:
    """The Parquet event log under ``directory``.

    Examples
    --------
    >>> import tempfile, datetime as dt
    >>> import pyarrow as pa
    >>> from features.events.schema import EVENT_SCHEMA
    >>> log = EventLog(Path(tempfile.mkdtemp()) / "events")
    >>> t = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    >>> rows = [{"event_id": "e1", "recipient_id": "r1", "kind": "send", "occurred_at": t}]
    >>> log.append(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)).rows
    1
    >>> log.count()
    1
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- reading -------------------------------------------------------------------------------

    def glob(self) -> str:
        """A glob of every data file, for ``read_parquet(..., hive_partitioning=true)``."""
        return str(self.directory / f"{PARTITION_COLUMN}=*" / "*.parquet")

    def files(self) -> list[Path]:
        """Every committed data file, in partition order."""
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob(f"{PARTITION_COLUMN}=*/*.parquet"))

    def partitions(self) -> list[str]:
        """The days (``YYYY-MM-DD``) that hold events."""
        return sorted(
            {p.parent.name.split("=", 1)[1] for p in self.files()},
        )

    def is_empty(self) -> bool:
        """True when nothing has been appended yet."""
        return not self.files()

    def count(self) -> int:
        """Number of events in the log."""
        # Row counts are in each file's footer: no column needs to be read.
        return sum(pq.read_metadata(f).num_rows for f in self.files())

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole log as one Arrow table with :data:`EVENT_SCHEMA` (or the named columns)."""
        files = self.files()
        if not files:
            empty = EVENT_SCHEMA.empty_table()
            return empty.select(columns) if columns else empty
        try:
            tables = [pq.read_table(f, columns=columns, schema=EVENT_SCHEMA) for f in files]
        except (OSError, pa.ArrowInvalid) as exc:
            raise EventLogCorruptError(
                f"cannot read the event log at {self.directory}: {exc}"
            ) from exc
        return pa.concat_tables(tables)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the log visible as the view ``events``."""
        con = duckdb.connect()
        if self.is_empty():
            con.execute(_empty_events_view_sql())
        else:
            # A view cannot take a prepared parameter; the glob is our own path, quoted.
            glob = self.glob().replace("'", "''")
            con.execute(
                "CREATE VIEW events AS SELECT * EXCLUDE (date) FROM "
                f"read_parquet('{glob}', hive_partitioning = true)"
            )
        return con

    def existing_event_ids(self, candidates: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Those of ``candidates`` that are already in the log."""
        if self.is_empty() or len(candidates) == 0:
            return pa.array([], type=pa.string())
        ids = pa.table({"event_id": candidates})  # noqa: F841 - read by DuckDB by name
        con = duckdb.connect()
        try:
            found = con.sql(
                "SELECT DISTINCT e.event_id FROM read_parquet($glob, hive_partitioning = true) e "
                "SEMI JOIN ids USING (event_id)",
                params={"glob": self.glob()},
            ).to_arrow_table()
        finally:
            con.close()
        return found.column("event_id").combine_chunks()

    # -- writing -------------------------------------------------------------------------------

    def append(self, table: pa.Table) -> AppendResult:
        """Write ``table`` (exactly :data:`EVENT_SCHEMA`) into day partitions, atomically."""
        if not table.schema.equals(EVENT_SCHEMA):
            raise InvalidInputError(
                f"event table schema differs from the event log's:\n{table.schema}",
                field="schema",
            )
        if table.num_rows == 0:
            return AppendResult(rows=0, files=())
        with self._locked():
            self._recover_locked()
            return self._append_locked(table)

    def erase(self, recipient_id: str) -> int:
        """Remove every event of ``recipient_id``; returns how many were removed.

        Each affected file is rewritten beside itself and renamed over the original, so a
        reader sees either the old or the new file. Erasing again finishes an interrupted
        erasure and is otherwise a no-op.
        """
        if self.is_empty():
            return 0
        with self._locked():
            self._recover_locked()
            return rewrite_without(self.files(), "recipient_id", recipient_id)

    def recover(self) -> int:
        """Roll back appends that died before committing; returns how many were rolled back."""
        if not self.directory.exists():
            return 0
        with self._locked():
            return self._recover_locked()

    def _append_locked(self, table: pa.Table) -> AppendResult:
        txn = uuid.uuid4().hex
        staging = self.directory / _TXN_DIR / txn
        journal = self.directory / _TXN_DIR / f"{txn}.journal"
        days = pc.strftime(table.column("occurred_at"), format="%Y-%m-%d")
        table = table.append_column(PARTITION_COLUMN, days)
        moves: list[tuple[Path, Path]] = []
        for day in sorted(pc.unique(days).to_pylist()):
            part = table.filter(pc.equal(table.column(PARTITION_COLUMN), day))
            part = part.drop_columns([PARTITION_COLUMN]).sort_by("occurred_at")
            name = f"{PARTITION_COLUMN}={day}"
            staged = staging / name / f"part-{txn}.parquet"
            staged.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, staged, compression="zstd")
            moves.append((staged, self.directory / name / staged.name))
        _write_synced(journal, json.dumps([str(dst) for _, dst in moves]))
        try:
            for src, dst in moves:
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.replace(dst)
        except BaseException:
            self._rollback(journal)
            raise
        journal.unlink()  # the commit point
        _fsync_dir(journal.parent)
        shutil.rmtree(staging, ignore_errors=True)
        logger.info("appended %d events in %d files", table.num_rows, len(moves))
        return AppendResult(rows=table.num_rows, files=tuple(dst for _, dst in moves))

    def _recover_locked(self) -> int:
        txn_dir = self.directory / _TXN_DIR
        if not txn_dir.exists():
            return 0
        journals = sorted(txn_dir.glob("*.journal"))
        for journal in journals:
            logger.warning("rolling back an unfinished append (%s)", journal.stem)
            self._rollback(journal)
        for leftover in txn_dir.iterdir():  # staging of appends that died before the journal
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        return len(journals)

    def _rollback(self, journal: Path) -> None:
        for dst in json.loads(journal.read_text()):
            Path(dst).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        shutil.rmtree(journal.with_suffix(""), ignore_errors=True)
        _fsync_dir(journal.parent)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / _LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def rewrite_without(files: list[Path], column: str, value: str) -> int:
    """Rewrite each Parquet file that holds rows with ``column == value`` without them."""
    removed = 0
    for path in files:
        # The column alone first: most files (a feature table's other recipient ranges, the
        # log's other days) do not hold the value and are left unread.
        held = pq.read_table(path, columns=[column]).column(column)
        if not pc.any(pc.equal(held, value)).as_py():
            continue
        table = pq.read_table(path)
        keep = pc.invert(pc.fill_null(pc.equal(table.column(column), value), False))
        kept = table.filter(keep)
        if kept.num_rows == table.num_rows:
            continue
        removed += table.num_rows - kept.num_rows
        tmp = path.with_name(f".{path.name}.erasing")
        pq.write_table(kept, tmp, compression="zstd")
        tmp.replace(path)
    return removed


def _empty_events_view_sql() -> str:
    duck_types = {
        pa.string(): "VARCHAR",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    }
    cols = ", ".join(f"NULL::{duck_types[f.type]} AS {f.name}" for f in EVENT_SCHEMA)
    return f"CREATE VIEW events AS SELECT {cols} WHERE false"


def _write_synced(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
