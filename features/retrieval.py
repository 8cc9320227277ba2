"""Point-in-time training frames: labelled sends joined to the features known before each send.

The join runs in DuckDB (``ASOF LEFT JOIN`` with a strict ``<``) over the same Parquet feature
tables that the Feast views declare, rather than through Feast's offline retrieval, because
with feast 0.67:

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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from features.engineering.tables import (
    DEFAULTS,
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    VARIANT_DEFAULTS,
    VARIANT_FEATURES,
    VARIANT_TABLE,
    VARIANT_TTL,
    table_dir,
)
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings

__all__ = ["DEFAULT_TTL", "training_frame"]

#: Snapshots older than this at send time are not used (the Feast views' TTL).
DEFAULT_TTL = timedelta(days=2)

_REQUIRED = ("recipient_id", "sent_at")


def _as_arrow(sends: pd.DataFrame | pa.Table) -> pa.Table:
    table = (
        sends if isinstance(sends, pa.Table) else pa.Table.from_pandas(sends, preserve_index=False)
    )
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        raise InvalidInputError(
            f"sends lack column(s) {missing}; expected recipient_id, sent_at (UTC) and labels",
            field=missing[0],
        )
    sent_at = table.schema.field("sent_at").type
    if not pa.types.is_timestamp(sent_at) or sent_at.tz is None:
        raise InvalidInputError(
            f"sent_at must be a time-zone-aware timestamp, got {sent_at}", field="sent_at"
        )
    if "_row" in table.column_names:
        raise InvalidInputError("sends must not have a column named _row", field="_row")
    return table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))


def _variant_source(settings: Settings, columns: Sequence[str]) -> str:
    directory = table_dir(settings, VARIANT_TABLE)
    if any(directory.glob("date=*/*.parquet")):
        glob = str(directory / "date=*" / "*.parquet").replace("'", "''")
        return f"read_parquet('{glob}', hive_partitioning = false)"
    # No event carried a variant: no rows, every send gets the defaults.
    nulls = ", ".join(f"NULL::DOUBLE AS {c}" for c in columns)
    return (
        "(SELECT NULL::VARCHAR AS recipient_id, NULL::VARCHAR AS variant_id, "
        f"NULL::TIMESTAMPTZ AS event_timestamp, {nulls} WHERE false)"
    )


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
    for name in (ENGAGEMENT_TABLE, SEND_TIME_TABLE):
        if not any(table_dir(settings, name).glob("date=*/*.parquet")):
            raise NotFoundError(
                f"feature table {name!r} is empty; run `inboxlab features build` first"
            )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("sends", table)
        joins, selects = [], ["s.* EXCLUDE (_row)"]
        ttl_us = int(ttl.total_seconds() * 1_000_000)
        first_alias = ""
        for alias, name, names in (
            ("e", ENGAGEMENT_TABLE, ENGAGEMENT_FEATURES),
            ("t", SEND_TIME_TABLE, SEND_TIME_FEATURES),
        ):
            cols = [c for c in wanted if c in names]
            if not cols and first_alias:
                continue
            glob = str(table_dir(settings, name) / "date=*" / "*.parquet").replace("'", "''")
            source = f"read_parquet('{glob}', hive_partitioning = false)"
            joins.append(
                f"ASOF LEFT JOIN {source} {alias} ON {alias}.recipient_id = s.recipient_id "
                f"AND {alias}.event_timestamp < s.sent_at"
            )
            # A snapshot older than the TTL counts as no snapshot, as in Feast.
            fresh = f"{alias}.event_timestamp >= s.sent_at - to_microseconds({ttl_us})"
            if not first_alias:
                first_alias = alias
                selects.append(f"CASE WHEN {fresh} THEN {alias}.event_timestamp END AS snapshot_at")
            selects += [f"CASE WHEN {fresh} THEN {alias}.{c} END AS {c}" for c in cols]
        if variant_cols:
            source = _variant_source(settings, variant_cols)
            joins.append(
                f"ASOF LEFT JOIN {source} v ON v.recipient_id = s.recipient_id "
                "AND v.variant_id = s.variant_id AND v.event_timestamp < s.sent_at"
            )
            fresh = (
                "v.event_timestamp >= s.sent_at - "
                f"to_microseconds({int(variant_ttl.total_seconds() * 1_000_000)})"
            )
            selects += [f"CASE WHEN {fresh} THEN v.{c} END AS {c}" for c in variant_cols]
        sql = f"SELECT {', '.join(selects)} FROM sends s {' '.join(joins)} ORDER BY s._row"
        frame = con.execute(sql).df()
    finally:
        con.close()
    if fill_defaults:
        for c in wanted:
            default = defaults[c]
            frame[c] = frame[c].fillna(default)
            if isinstance(default, int):
                frame[c] = frame[c].astype("int64")
    return frame
