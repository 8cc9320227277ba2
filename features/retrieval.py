"""Point-in-time training frames: labelled sends joined to the features known before each send.

The join reads the same Parquet feature tables that the Feast views declare, rather than going
through Feast's offline retrieval, because with feast 0.67:

* Feast joins on ``event_timestamp <= sent_at``; a snapshot stamped exactly at the send would
  be used, and ``created_timestamp`` only breaks ties, so correctness would hinge on every
  writer stamping snapshots right;
* the default Dask file offline store silently drops sends that have no snapshot inside the
  TTL and collapses duplicate (recipient, time) sends, and needs 26 s and 7.6 GB for 100,000
  sends where this join takes seconds for a million;
* the DuckDB offline store needs ``ibis``, which the project does not depend on.

Here every send comes back exactly once, in input order, duplicates included. A send gets the
newest snapshot whose ``event_timestamp`` is strictly before ``sent_at``; if that snapshot is
older than the TTL (two days, as the Feast views declare) or missing, the send gets the
cold-start :data:`~features.engineering.tables.DEFAULTS` (``fill_defaults=True``) or nulls.
``snapshot_at`` tells which snapshot was used (null: none).

Per-variant features (:data:`~features.engineering.tables.VARIANT_FEATURES`) are joined on
``recipient_id`` and the send's ``variant_id`` the same way, with the variant table's TTL
(:data:`~features.engineering.tables.VARIANT_TTL`): its rows exist only on the days a pair's
values change, so the newest one before the send holds, however old, up to that TTL.

How it stays fast (:mod:`features.asof` does the matching): a table is read in two passes over
its day files. The first reads only the keys and ``event_timestamp`` of the files whose
timestamps can matter (the Parquet statistics skip days outside the sends' TTL window) and
finds, for each send, the one row it gets; the second reads the wanted feature columns of the
files that hold such rows and keeps only those rows. Nothing wider than the answer is ever
held in memory at once, and the files are read in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.asof import DayFiles, as_of, timestamps_ns
from features.engineering.tables import (
    DEFAULTS,
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    VARIANT_DEFAULTS,
    VARIANT_FEATURES,
    VARIANT_KEYS,
    VARIANT_TABLE,
    VARIANT_TTL,
    FeatureValue,
    migrate_layout,
    table_files,
)
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings

__all__ = ["DEFAULT_TTL", "training_frame"]

#: Snapshots older than this at send time are not used (the Feast views' TTL).
DEFAULT_TTL = timedelta(days=2)

_REQUIRED = ("recipient_id", "sent_at")


def _as_arrow(sends: pd.DataFrame | pa.Table) -> pa.Table:
    names = sends.column_names if isinstance(sends, pa.Table) else list(sends.columns)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise InvalidInputError(
            f"sends lack column(s) {missing}; expected recipient_id, sent_at (UTC) and labels",
            field=missing[0],
        )
    if isinstance(sends, pa.Table):
        table = sends
    else:
        # Only the join columns cross to Arrow; the labels stay in pandas untouched.
        keys = [c for c in ("recipient_id", "variant_id", "sent_at") if c in sends.columns]
        table = pa.Table.from_pandas(sends[keys], preserve_index=False)
    sent_at = table.schema.field("sent_at").type
    if not pa.types.is_timestamp(sent_at) or sent_at.tz is None:
        raise InvalidInputError(
            f"sent_at must be a time-zone-aware timestamp, got {sent_at}", field="sent_at"
        )
    return table


def _join(
    files: list[Path],
    table: pa.Table,
    keys: Sequence[str],
    sent_ns: np.ndarray,
    ttl: timedelta,
    columns: Sequence[str],
) -> tuple[dict[str, pa.Array], pa.Array]:
    """The ``columns`` of each send's as-of row, and that row's ``event_timestamp``."""
    days = DayFiles(files, keys)
    match = as_of(days, [table.column(k) for k in keys], sent_ns, _ns(ttl))
    return days.gather(match.rows, columns), days.timestamps(match.times)


def _ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _input_columns(sends: pd.DataFrame | pa.Table) -> dict[str, pd.Series]:
    """The sends as they come back: times in UTC, nanosecond ones naive, as DuckDB gave them."""
    frame: pd.DataFrame = (
        sends.to_pandas() if isinstance(sends, pa.Table) else sends.reset_index(drop=True)
    )
    out = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            column = column.dt.tz_convert("UTC")
            if column.dtype.unit == "ns":
                column = column.dt.tz_localize(None)
        out[name] = column.copy()  # the frame owns its columns, as before
    return out


_NULLABLE_INTS = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


def _filled(values: pa.Array, default: FeatureValue) -> np.ndarray:
    """``values`` with nulls (and NaNs) replaced by ``default``, integers as int64."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        array = values.to_numpy(zero_copy_only=False)  # nulls become NaN
        if array.dtype.kind == "f":
            gaps = np.isnan(array)
            if gaps.any():
                array = np.where(gaps, default, array)
    else:
        array = pc.fill_null(values, default).to_numpy(zero_copy_only=False)
    if isinstance(default, int) and array.dtype != np.int64:
        array = array.astype(np.int64)
    return np.asarray(array)


def _writable(array: np.ndarray) -> np.ndarray:
    # Arrow hands out read-only views; callers may assign into the frame in place.
    return array if array.flags.writeable else array.copy()


def _output(
    sends: pd.DataFrame | pa.Table,
    columns: dict[str, pa.Array],
    defaults: dict[str, FeatureValue] | None,
) -> pd.DataFrame:
    """The input columns, then ``columns``; nulls filled from ``defaults`` when given."""
    out: dict[str, object] = dict(_input_columns(sends))
    for name, values in columns.items():
        if defaults is not None and name in defaults:
            out[name] = _writable(_filled(values, defaults[name]))
        elif values.null_count and values.type in _NULLABLE_INTS:
            # Integers with gaps stay integers, as pandas' nullable Int64.
            out[name] = values.to_pandas(types_mapper=_NULLABLE_INTS.get).array
        elif values.null_count or not (
            pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
        ):
            out[name] = values.to_pandas().array.copy()
        else:
            out[name] = _writable(values.to_numpy())
    # One frame from whole columns: no block of it is copied or consolidated.
    return pd.DataFrame(out, copy=False)


def training_frame(
    settings: Settings,
    sends: pd.DataFrame | pa.Table,
    *,
    features: Sequence[str] | None = None,
    ttl: timedelta = DEFAULT_TTL,
    variant_ttl: timedelta = VARIANT_TTL,
    fill_defaults: bool = True,
) -> pd.DataFrame:
    """Features as of strictly before each send, one output row per input row.

    Parameters
    ----------
    settings
        Where the feature tables live.
    sends
        Columns ``recipient_id``, ``sent_at`` (time-zone aware) and any labels; all are kept.
        Per-variant features also need ``variant_id`` (null: no variant, the defaults).
    features
        Feature names to return; default every engagement and send-time feature.
    ttl
        Snapshots older than this at ``sent_at`` are ignored.
    variant_ttl
        The same for the per-variant rows.
    fill_defaults
        Fill sends with no usable snapshot with the cold-start defaults, as serving does.

    Returns
    -------
    pandas.DataFrame
        The input columns, ``snapshot_at`` and the features, in input order.

    Raises
    ------
    InvalidInputError
        When ``sends`` lacks a column, ``sent_at`` is naive or a feature is unknown.
    NotFoundError
        When the feature tables were not built.
    """
    wanted = list(features) if features is not None else [*ENGAGEMENT_FEATURES, *SEND_TIME_FEATURES]
    defaults = {**DEFAULTS, **VARIANT_DEFAULTS}
    unknown = sorted(set(wanted) - set(defaults))
    if unknown:
        raise InvalidInputError(f"unknown feature(s) {unknown}", field="features")
    table = _as_arrow(sends)
    variant_cols = [c for c in wanted if c in VARIANT_FEATURES]
    if variant_cols and "variant_id" not in table.column_names:
        raise InvalidInputError(
            f"sends lack column 'variant_id', needed for the per-variant features {variant_cols}",
            field="variant_id",
        )
    migrate_layout(settings)  # tables of earlier versions, one directory per day
    files = {name: table_files(settings, name) for name in (ENGAGEMENT_TABLE, SEND_TIME_TABLE)}
    for name, found in files.items():
        if not found:
            raise NotFoundError(
                f"feature table {name!r} is empty; run `inboxlab features build` first"
            )
    sent_ns = timestamps_ns(table.column("sent_at"))
    joined: dict[str, pa.Array] = {}
    for name, names in (
        (ENGAGEMENT_TABLE, ENGAGEMENT_FEATURES),
        (SEND_TIME_TABLE, SEND_TIME_FEATURES),
    ):
        cols = [c for c in wanted if c in names]
        # The engagement table always answers snapshot_at, even when none of its features
        # are wanted.
        if not cols and joined:
            continue
        values, stamps = _join(files[name], table, ("recipient_id",), sent_ns, ttl, cols)
        if not joined:
            joined["snapshot_at"] = stamps
        joined.update(values)
    if variant_cols:
        values, _ = _join(
            table_files(settings, VARIANT_TABLE),
            table,
            VARIANT_KEYS,
            sent_ns,
            variant_ttl,
            variant_cols,
        )
        joined.update(values)
    ordered = {c: joined[c] for c in ("snapshot_at", *wanted)}
    filled = {c: defaults[c] for c in wanted} if fill_defaults else None
    return _output(sends, ordered, filled)
