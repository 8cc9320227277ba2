"""Row-by-row validation of import data, done column-wise so a million rows take seconds.

Raw input arrives as Arrow columns (strings from CSV, typed columns from Parquet). Every rule
yields a boolean mask; the masks become :class:`~inboxlab.errors.RowError`\\ s in row order.
Valid data comes back normalised to :data:`~features.events.schema.EVENT_SCHEMA`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.events.schema import EVENT_SCHEMA, REQUIRED_COLUMNS
from inboxlab.errors import RowError
from inboxlab.records import EMAIL_PATTERN, EVENT_COLUMNS, EventKind

__all__ = ["MAX_ID_LENGTH", "Validated", "validate_events"]

MAX_ID_LENGTH = 256
_KINDS = tuple(k.value for k in EventKind)
# ISO 8601 date and time with seconds optional, fraction optional, and a mandatory offset.
_ISO_WITH_OFFSET = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
)
_ISO_NO_OFFSET = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"
_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")


@dataclass(frozen=True, slots=True)
class Validated:
    """Outcome of validating one input.

    ``table`` holds the rows normalised to ``EVENT_SCHEMA`` when there is no error (and is
    empty otherwise: an input is imported whole or not at all); ``errors`` holds every error
    in row order.
    """

    table: pa.Table
    errors: tuple[RowError, ...]

    @property
    def total_errors(self) -> int:
        return len(self.errors)


class _Collector:
    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[str] = []
        self.reasons: list[str] = []

    def add(self, mask: np.ndarray, column: str, reason: str) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            self.rows.append(idx)
            self.cols.append(column)
            self.reasons.append(reason)

    def header(self, column: str, reason: str) -> None:
        self.add(np.array([True]), column, reason)
        # header problems are reported as row 0
        self.rows[-1] = np.array([-1])

    def errors(self) -> tuple[RowError, ...]:
        if not self.rows:
            return ()
        rows = np.concatenate(self.rows)
        which = np.concatenate([np.full(r.size, i) for i, r in enumerate(self.rows)])
        order = np.lexsort((which, rows))
        return tuple(
            RowError(
                row=int(rows[i]) + 1, column=self.cols[which[i]], reason=self.reasons[which[i]]
            )
            for i in order
        )


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        trimmed = pc.utf8_trim_whitespace(column)
        # An empty cell is a missing value.
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    return pc.cast(column, pa.string())


def validate_events(raw: pa.Table) -> Validated:
    """Validate raw event rows; return normalised rows and every error found.

    Parameters
    ----------
    raw : pyarrow.Table
        Columns named as the event record; strings (CSV) or typed values (Parquet).

    Examples
    --------
    >>> import pyarrow as pa
    >>> raw = pa.table({"recipient_id": ["r1", "a@b.com"], "kind": ["open", "opened"],
    ...                 "occurred_at": ["2026-03-01T09:00:00+01:00", "2026-03-01 09:00"]})
    >>> for error in validate_events(raw).errors:
    ...     print(error.row, error.column, error.reason[:30])
    2 recipient_id looks like an email address; u
    2 kind unknown kind; allowed: send, d
    2 occurred_at timestamp has no UTC offset; w
    """
    n = raw.num_rows
    errs = _Collector()
    unknown = [c for c in raw.column_names if c not in EVENT_COLUMNS]
    for col in unknown:
        errs.header(col, f"unknown column; allowed: {', '.join(EVENT_COLUMNS)}")
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in raw.column_names]
    for col in missing_cols:
        errs.header(col, "required column is missing")
    if unknown or missing_cols:
        return Validated(EVENT_SCHEMA.empty_table(), errs.errors())

    def column(name: str) -> pa.ChunkedArray | None:
        return raw.column(name) if name in raw.column_names else None

    out: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in ("event_id", "recipient_id", "campaign_id", "variant_id", "decision_id"):
        col = column(name)
        if col is None:
            out[name] = pa.nulls(n, pa.string())
            continue
        values = _as_strings(col)
        if name == "recipient_id":
            errs.add(_mask(pc.is_null(values)), name, "missing required value")
            errs.add(
                _mask(pc.match_substring_regex(values, EMAIL_PATTERN)),
                name,
                "looks like an email address; use an opaque recipient id (no PII in the event log)",
            )
        errs.add(
            _mask(pc.greater(pc.utf8_length(values), MAX_ID_LENGTH)),
            name,
            f"longer than {MAX_ID_LENGTH} characters",
        )
        out[name] = values

    kinds = _as_strings(raw.column("kind"))
    errs.add(_mask(pc.is_null(kinds)), "kind", "missing required value")
    bad_kind = pc.and_(pc.is_valid(kinds), pc.invert(pc.is_in(kinds, pa.array(_KINDS))))
    errs.add(_mask(bad_kind), "kind", f"unknown kind; allowed: {', '.join(_KINDS)}")
    out["kind"] = kinds

    out["occurred_at"] = _timestamps(raw.column("occurred_at"), errs)
    out["value"] = _revenue(column("value"), n, errs)
    out["is_machine_open"] = _booleans(column("is_machine_open"), n, errs)

    errors = errs.errors()
    if errors:
        return Validated(EVENT_SCHEMA.empty_table(), errors)
    table = pa.table({name: out[name] for name in EVENT_COLUMNS}).cast(EVENT_SCHEMA, safe=False)
    return Validated(table, errors)


def _timestamps(col: pa.ChunkedArray, errs: _Collector) -> pa.Array:
    name = "occurred_at"
    if pa.types.is_timestamp(col.type):
        errs.add(_mask(pc.is_null(col)), name, "missing required value")
        if col.type.tz is None:
            errs.add(
                _mask(pc.is_valid(col)),
                name,
                "timestamp column has no time zone; store it as UTC-aware timestamps",
            )
            return pa.nulls(len(col), pa.timestamp("us", tz="UTC"))
        return pc.cast(col, pa.timestamp("us", tz="UTC"))
    values = _as_strings(col)
    errs.add(_mask(pc.is_null(values)), name, "missing required value")
    has_offset = _mask(pc.match_substring_regex(values, _ISO_WITH_OFFSET))
    no_offset = _mask(pc.match_substring_regex(values, _ISO_NO_OFFSET))
    errs.add(no_offset, name, "timestamp has no UTC offset; write e.g. 2026-03-01T09:30:00+01:00")
    present = _mask(pc.is_valid(values))
    strings = values.to_pandas()
    parsed = pd.to_datetime(strings.where(has_offset), format="ISO8601", utc=True, errors="coerce")
    unparsable = present & ~no_offset & (~has_offset | parsed.isna().to_numpy())
    errs.add(unparsable, name, "not an ISO 8601 timestamp with offset")
    return pa.array(parsed.dt.as_unit("us"), type=pa.timestamp("us", tz="UTC"))


def _revenue(col: pa.ChunkedArray | None, n: int, errs: _Collector) -> pa.Array:
    name = "value"
    if col is None:
        return pa.nulls(n, pa.float64())
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        strings = _as_strings(col).to_pandas()
        numbers = pd.to_numeric(strings, errors="coerce")
        bad = strings.notna().to_numpy() & numbers.isna().to_numpy()
        errs.add(bad, name, "not a number")
        values = numbers.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        errs.add(np.isinf(values), name, "not a finite number")
        errs.add(values < 0, name, "negative revenue; value must be >= 0")
    return pa.array(np.where(np.isinf(values), np.nan, values), type=pa.float64(), from_pandas=True)


def _booleans(col: pa.ChunkedArray | None, n: int, errs: _Collector) -> pa.Array:
    name = "is_machine_open"
    if col is None:
        return pa.nulls(n, pa.bool_())
    if pa.types.is_boolean(col.type):
        return col.combine_chunks()
    lowered = pc.utf8_lower(_as_strings(col))
    truthy = pc.is_in(lowered, pa.array(_TRUE))
    falsy = pc.is_in(lowered, pa.array(_FALSE))
    bad = pc.and_(pc.is_valid(lowered), pc.invert(pc.or_(truthy, falsy)))
    errs.add(_mask(bad), name, "not a boolean; use true or false")
    return pc.if_else(
        pc.is_null(lowered), pa.scalar(None, pa.bool_()), pc.fill_null(truthy, False)
    ).combine_chunks()
