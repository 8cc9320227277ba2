"""Read a unit-level export and aggregate it into sufficient statistics with DuckDB SQL.

The table has one row per unit (recipient × experiment): an arm column, optional segment
columns, metric columns (0/1 or numeric; missing means 0), and for bandit experiments a logged
propensity ``pscore`` of the arm received, optionally the whole allocation as ``pscore_<arm>``
columns, and a ``timestamp``. Only the aggregates leave DuckDB, so tens of millions of rows cost
a few table scans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import numpy.typing as npt

from experiments.statistics import (
    BinaryStatistic,
    MeanStatistic,
    PropensityStatistic,
    Statistic,
    WeightedStatistic,
)
from inboxlab.errors import InvalidInputError

__all__ = [
    "ExperimentData",
    "MetricKind",
    "TimelinePoint",
    "aggregate",
    "connect",
    "read_columns",
]

MetricKind = Literal["binary", "numeric"]
_NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "BOOLEAN",
)
_TIMESTAMP_NAMES = ("timestamp", "decided_at", "ts", "sent_at")


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """Units and primary-metric total of one arm within one time bucket."""

    start: datetime
    arm: str
    units: int
    total: float


@dataclass(frozen=True)
class ExperimentData:
    """Everything the engine needs, as sufficient statistics keyed by metric then arm."""

    arms: tuple[str, ...]
    units: dict[str, int]
    metrics: dict[str, MetricKind]
    stats: dict[str, dict[str, Statistic]]
    propensity: dict[str, PropensityStatistic] | None = None
    weighted: dict[str, dict[str, WeightedStatistic]] | None = None
    segments: dict[str, dict[str, dict[str, Statistic]]] | None = None
    segment_metric: str | None = None
    timeline: tuple[TimelinePoint, ...] = ()


def _q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with the file as view ``units`` (Parquet or CSV)."""
    if not path.exists():
        raise InvalidInputError(f"data file {path} does not exist", field="data")
    literal = "'" + str(path).replace("'", "''") + "'"
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        reader = f"read_parquet({literal})"
    elif suffix in {".csv", ".tsv", ".txt"} or path.name.endswith(".csv.gz"):
        reader = f"read_csv({literal}, auto_detect=true)"
    else:
        raise InvalidInputError(
            f"data file {path} must be Parquet (.parquet) or CSV (.csv), got {suffix!r}",
            field="data",
        )
    con = duckdb.connect()
    # Parquet is columnar and cheap to rescan; CSV would be re-parsed by every query, so it is
    # loaded once into DuckDB's in-memory columnar storage.
    kind = "VIEW" if reader.startswith("read_parquet") else "TABLE"
    con.execute(f"CREATE {kind} units AS SELECT * FROM {reader}")
    return con


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("DESCRIBE units").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _pick_metrics(
    columns: dict[str, str], requested: Sequence[str], reserved: set[str]
) -> list[str]:
    if requested:
        for m in requested:
            if m not in columns:
                raise InvalidInputError(
                    f"metric column {m!r} not in the data; columns are {sorted(columns)}",
                    field="metric",
                )
            if not columns[m].startswith(_NUMERIC_TYPES):
                raise InvalidInputError(
                    f"metric column {m!r} has type {columns[m]}; metrics must be 0/1 or numeric",
                    field="metric",
                )
        return list(dict.fromkeys(requested))
    found = [
        c
        for c, t in columns.items()
        if c not in reserved
        and not c.startswith(("pscore", "score_"))
        and t.startswith(_NUMERIC_TYPES)
    ]
    if not found:
        raise InvalidInputError("no numeric metric columns found in the data", field="metric")
    return found


def _metric_sql(m: str, p: str | None) -> list[str]:
    v = f"coalesce(CAST({_q(m)} AS DOUBLE), 0)"
    parts = [f"sum({v})", f"sum({v} * {v})", f"count_if({v} <> 0)", f"bool_and({v} IN (0, 1))"]
    if p is not None:
        w = f"(1.0 / {p})"
        parts += [f"sum({v} * {w})", f"sum({v} * {w} * {w})", f"sum({v} * {v} * {w} * {w})"]
    return parts


def aggregate(
    path: Path,
    *,
    arm_column: str = "arm",
    metrics: Sequence[str] = (),
    optional_metrics: Sequence[str] = (),
    segments: Sequence[str] = (),
    segment_metric: str | None = None,
    pscore_column: str = "pscore",
    timestamp_column: str | None = None,
    top_levels: int = 10,
    timeline_buckets: int = 40,
) -> ExperimentData:
    """Aggregate a unit-level CSV/Parquet file into :class:`ExperimentData`.

    ``metrics`` defaults to every numeric column that is not the arm, a propensity, a score, a
    timestamp or a segment; with explicit ``metrics``, the ``optional_metrics`` found in the
    file (e.g. guardrails) are added. A metric whose values are all 0/1 is binary, else numeric.
    ``segment_metric`` (default: the first metric) is broken down by each segment column for
    its ``top_levels`` most frequent levels.

    Raises
    ------
    InvalidInputError
        When the file, the arm column, a metric or a segment column is missing or unusable.
    """
    con = connect(path)
    cols = _columns(con)
    if arm_column not in cols:
        raise InvalidInputError(
            f"arm column {arm_column!r} not in the data; columns are {sorted(cols)}", field="arm"
        )
    for s in segments:
        if s not in cols:
            raise InvalidInputError(
                f"segment column {s!r} not in the data; columns are {sorted(cols)}",
                field="segment",
            )
    ts = timestamp_column or next((c for c in _TIMESTAMP_NAMES if c in cols), None)
    if ts is not None and ts not in cols:
        raise InvalidInputError(f"timestamp column {ts!r} not in the data", field="timestamp")
    has_p = pscore_column in cols
    reserved = {arm_column, pscore_column, *segments, *(x for x in [ts] if x)}
    metric_names = _pick_metrics(cols, metrics, reserved)
    if metrics:
        metric_names += [m for m in optional_metrics if m in cols and m not in metric_names]
    p_sql = f"CAST({_q(pscore_column)} AS DOUBLE)" if has_p else None

    arm = f"CAST({_q(arm_column)} AS VARCHAR)"
    if has_p:
        bad = con.execute(
            f"SELECT count(*) FROM units WHERE NOT ({p_sql} > 0 AND {p_sql} <= 1)"
            f" OR {p_sql} IS NULL"
        ).fetchone()
        if bad is not None and bad[0]:
            raise InvalidInputError(
                f"{bad[0]} row(s) have {pscore_column} outside (0, 1] or missing; a logged "
                "propensity must be the probability the arm had of being chosen",
                field=pscore_column,
            )
    arm_names: list[str] = []
    if has_p and any(c.startswith("pscore_") for c in cols):
        distinct = f"SELECT DISTINCT {arm} FROM units WHERE {arm} IS NOT NULL ORDER BY 1"
        arm_names = [str(r[0]) for r in con.execute(distinct).fetchall()]
    alloc_cols = {a: f"pscore_{a}" for a in arm_names if f"pscore_{a}" in cols}
    full_alloc = has_p and bool(arm_names) and len(alloc_cols) == len(arm_names)

    select = [arm, "count(*)"]
    for m in metric_names:
        select += _metric_sql(m, p_sql)
    if p_sql is not None:
        select += [f"sum(1.0 / {p_sql})", f"sum((1.0 - {p_sql}) / ({p_sql} * {p_sql}))"]
        select += [f"sum(1.0 / ({p_sql} * {p_sql}))"]
        if full_alloc:
            select += [f"sum(CAST({_q(alloc_cols[a])} AS DOUBLE))" for a in arm_names]
    rows = con.execute(
        f"SELECT {', '.join(select)} FROM units WHERE {arm} IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()

    per = 7 if has_p else 4
    units: dict[str, int] = {}
    raw: dict[str, dict[str, tuple[float, ...]]] = {m: {} for m in metric_names}
    binary = dict.fromkeys(metric_names, True)
    propensity: dict[str, PropensityStatistic] = {}
    expected_sum = dict.fromkeys(arm_names, 0.0)
    inv_sq: dict[str, float] = {}
    for row in rows:
        a, n = str(row[0]), int(row[1])
        units[a] = n
        for i, m in enumerate(metric_names):
            vals = row[2 + i * per : 2 + (i + 1) * per]
            raw[m][a] = tuple(float(x) for x in vals[:3]) + tuple(float(x) for x in vals[4:])
            binary[m] = binary[m] and bool(vals[3])
        if has_p:
            base = 2 + len(metric_names) * per
            propensity[a] = PropensityStatistic(n, float(row[base]), float(row[base + 1]))
            inv_sq[a] = float(row[base + 2])
            if full_alloc:
                for j, b in enumerate(arm_names):
                    expected_sum[b] += float(row[base + 3 + j])
    arms = tuple(sorted(units))
    kinds: dict[str, MetricKind] = {m: "binary" if binary[m] else "numeric" for m in metric_names}
    stats: dict[str, dict[str, Statistic]] = {}
    weighted: dict[str, dict[str, WeightedStatistic]] = {}
    for m in metric_names:
        stats[m] = {a: _statistic(kinds[m], units[a], raw[m][a][:3]) for a in arms}
        if has_p:
            weighted[m] = {}
            for a in arms:
                _, _, _, swy, sw2y, sw2y2 = raw[m][a]
                sum_w = propensity[a].sum_inv
                weighted[m][a] = WeightedStatistic(units[a], sum_w, swy, inv_sq[a], sw2y, sw2y2)
    if full_alloc:
        propensity = {
            a: PropensityStatistic(p.n, p.sum_inv, p.sum_inv_var, expected_sum[a])
            for a, p in propensity.items()
        }

    seg_metric = segment_metric or metric_names[0]
    seg_stats = (
        _segments(con, arm, segments, seg_metric, kinds[seg_metric], top_levels)
        if segments
        else None
    )
    timeline = _timeline(con, arm, ts, seg_metric, timeline_buckets) if ts is not None else ()
    return ExperimentData(
        arms=arms,
        units=units,
        metrics=kinds,
        stats=stats,
        propensity=propensity or None,
        weighted=weighted or None,
        segments=seg_stats,
        segment_metric=seg_metric if segments else None,
        timeline=timeline,
    )


def _statistic(kind: MetricKind, n: int, sums: tuple[float, ...]) -> Statistic:
    total, total_sq, nonzero = sums
    if kind == "binary":
        return BinaryStatistic(n, round(total))
    return MeanStatistic(n, total, total_sq, round(nonzero))


def _segments(
    con: duckdb.DuckDBPyConnection,
    arm: str,
    segments: Sequence[str],
    metric: str,
    kind: MetricKind,
    top_levels: int,
) -> dict[str, dict[str, dict[str, Statistic]]]:
    out: dict[str, dict[str, dict[str, Statistic]]] = {}
    v = f"coalesce(CAST({_q(metric)} AS DOUBLE), 0)"
    for s in segments:
        level = f"coalesce(CAST({_q(s)} AS VARCHAR), '(missing)')"
        rows = con.execute(
            f"WITH top AS (SELECT {level} AS lvl FROM units GROUP BY 1 "
            f"ORDER BY count(*) DESC, 1 LIMIT {int(top_levels)}) "
            f"SELECT {level} AS lvl, {arm}, count(*), sum({v}), sum({v} * {v}), count_if({v} <> 0)"
            f" FROM units WHERE {level} IN (SELECT lvl FROM top) AND {arm} IS NOT NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        levels: dict[str, dict[str, Statistic]] = {}
        for lvl, a, n, total, total_sq, nz in rows:
            levels.setdefault(str(lvl), {})[str(a)] = _statistic(
                kind, int(n), (float(total), float(total_sq), float(nz))
            )
        out[s] = levels
    return out


def _timeline(
    con: duckdb.DuckDBPyConnection, arm: str, ts: str, metric: str, buckets: int
) -> tuple[TimelinePoint, ...]:
    epoch = f"epoch(CAST({_q(ts)} AS TIMESTAMPTZ))"
    lo_hi = con.execute(f"SELECT min({epoch}), max({epoch}) FROM units").fetchone()
    if lo_hi is None or lo_hi[0] is None:
        return ()
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    width = max(math.ceil((hi - lo) / buckets), 1) if hi > lo else 1.0
    v = f"coalesce(CAST({_q(metric)} AS DOUBLE), 0)"
    rows = con.execute(
        f"SELECT floor(({epoch} - {lo}) / {width}) AS b, {arm}, count(*), sum({v}) FROM units "
        f"WHERE {arm} IS NOT NULL AND {epoch} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return tuple(
        TimelinePoint(
            datetime.fromtimestamp(lo + float(b) * width, tz=UTC), str(a), int(n), float(t)
        )
        for b, a, n, t in rows
    )


def read_columns(path: Path, columns: Sequence[str]) -> dict[str, npt.NDArray[np.generic]]:
    """Read whole columns as NumPy arrays (for estimators that need unit-level rows).

    Raises
    ------
    InvalidInputError
        When a column is missing.
    """
    con = connect(path)
    cols = _columns(con)
    missing = [c for c in columns if c not in cols]
    if missing:
        raise InvalidInputError(
            f"column(s) {missing} not in the data; columns are {sorted(cols)}",
            field=missing[0],
        )
    sel = ", ".join(_q(c) for c in columns)
    result = con.execute(f"SELECT {sel} FROM units").fetchnumpy()
    return {c: np.asarray(result[c]) for c in columns}
