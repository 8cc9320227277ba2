"""``inboxlab import-events``: validated, deduplicated, all-or-nothing import of event files."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.events.log import EventLog
from features.events.schema import EVENT_SCHEMA
from features.events.validation import validate_events
from inboxlab.errors import ImportValidationError, InvalidInputError, RowError

__all__ = [
    "ERRORS_SHOWN",
    "ImportSummary",
    "dedupe",
    "import_events",
    "import_tables",
    "read_event_file",
    "write_error_report",
]

logger = logging.getLogger(__name__)

#: How many row errors an import prints; the report file holds them all.
ERRORS_SHOWN = 20

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did."""

    files: tuple[str, ...]
    rows_read: int
    rows_written: int
    duplicates_in_input: int
    duplicates_in_log: int


def read_event_file(path: Path) -> pa.Table:
    """Read a CSV or Parquet event file as raw Arrow columns (CSV cells stay strings)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file", field="path")
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".csv", ".txt"):
            with path.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), [])
            if not header:
                raise InvalidInputError(f"{path}: empty file, expected a header row", field="path")
            # Every column as text: validation parses and reports per cell, which type
            # inference would hide behind a single file-level error.
            return pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"{path}: cannot be read: {exc}", field="path") from exc
    raise InvalidInputError(
        f"{path}: unsupported file type {suffix!r}; use .csv or .parquet", field="path"
    )


def dedupe(table: pa.Table, log: EventLog) -> tuple[pa.Table, int, int]:
    """Drop rows whose ``event_id`` repeats within ``table`` or is already in ``log``.

    Rows without an ``event_id`` are always kept. Returns the table and the two counts.
    """
    ids = table.column("event_id")
    n = table.num_rows
    has_id = pc.is_valid(ids)
    # First occurrence wins: number rows, keep the minimum index per id.
    indexed = pa.table({"event_id": ids, "i": pa.array(range(n), pa.int64())}).filter(has_id)
    first = indexed.group_by("event_id").aggregate([("i", "min")]).column("i_min")
    keep = pc.invert(has_id)
    keep = pc.or_(keep, pc.is_in(pa.array(range(n), pa.int64()), first))
    in_input = n - pc.sum(pc.cast(keep, pa.int64())).as_py()
    table = table.filter(keep)
    existing = log.existing_event_ids(table.column("event_id").drop_null())
    in_log = 0
    if len(existing):
        seen = pc.fill_null(pc.is_in(table.column("event_id"), existing), False)
        in_log = pc.sum(pc.cast(seen, pa.int64())).as_py()
        table = table.filter(pc.invert(seen))
    return table, int(in_input), int(in_log)


def write_error_report(path: Path, errors: Sequence[tuple[str, RowError]]) -> None:
    """Write every row error as CSV: ``file,row,column,reason``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "row", "column", "reason"])
        for source, err in errors:
            writer.writerow([source, err.row, err.column, err.reason])


def import_events(
    paths: Sequence[Path],
    log: EventLog,
    *,
    report_path: Path | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Validate every file, then append the deduplicated rows of all of them in one commit.

    Raises
    ------
    ImportValidationError
        When any row of any file is invalid. Nothing is written; every error goes to
        ``report_path`` (when given) and the first :data:`ERRORS_SHOWN` are in the exception.
    """
    step = progress or (lambda _msg: None)
    sources: list[tuple[str, pa.Table]] = []
    for path in paths:
        step(f"reading {path.name}")
        sources.append((str(path), read_event_file(path)))
    return import_tables(sources, log, report_path=report_path, progress=progress)


def import_tables(
    sources: Sequence[tuple[str, pa.Table]],
    log: EventLog,
    *,
    report_path: Path | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Like :func:`import_events`, for raw tables already in memory (named for the report)."""
    step = progress or (lambda _msg: None)
    tables: list[pa.Table] = []
    all_errors: list[tuple[str, RowError]] = []
    for name, raw in sources:
        step(f"validating {Path(name).name} ({raw.num_rows:,} rows)")
        result = validate_events(raw)
        all_errors.extend((name, e) for e in result.errors)
        tables.append(result.table)
    rows_read = sum(raw.num_rows for _, raw in sources)
    if all_errors:
        if report_path is not None:
            write_error_report(report_path, all_errors)
        shown = [e for _, e in all_errors[:ERRORS_SHOWN]]
        names = sorted({s for s, _ in all_errors})
        raise ImportValidationError(", ".join(names), shown, len(all_errors))
    combined = pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
    step("removing duplicates")
    combined, dup_input, dup_log = dedupe(combined, log)
    step(f"writing {combined.num_rows:,} events")
    written = log.append(combined)
    logger.info("imported %d events from %d source(s)", written.rows, len(sources))
    return ImportSummary(
        files=tuple(name for name, _ in sources),
        rows_read=rows_read,
        rows_written=written.rows,
        duplicates_in_input=dup_input,
        duplicates_in_log=dup_log,
    )
