"""As-of matching of sends to the rows of a Parquet feature table (files of any day span).

For each send (join keys, time) :func:`as_of` finds the newest row of the table with the same
keys and an ``event_timestamp`` strictly before the send, if that row is not older than a TTL.
:class:`DayFiles` reads the table for it in two narrow passes: the keys and timestamps of the
files that can hold a match (chosen from the Parquet statistics), then only the wanted columns
of the files that hold matched rows, keeping just those rows.

The matching works on integers: the sends' distinct keys get dense codes, each row the code of
its key (rows whose key no send has are dropped) and the rank of its timestamp among the
distinct timestamps. Feature tables hold one snapshot per key and day, so there are few
distinct timestamps and a dense (timestamp × key) grid of "newest row so far" answers every
send with two array lookups; when the grid would be much larger than the rows (a sparse table
with many distinct times), the rows are sorted by (key, time) and each send is a binary search.
Both give the same answer; ties between rows with equal key and time go to either one, as in
an SQL ``ASOF`` join.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

__all__ = ["NULL_TIME", "AsOf", "DayFiles", "KeyEncoder", "as_of", "match_rows", "timestamps_ns"]

#: Stands for a missing time in the nanosecond arrays (pandas' ``NaT`` is the same integer).
NULL_TIME = int(np.iinfo(np.int64).min)

#: The grid is used while it has at most this many cells per candidate row (and above, while
#: it has fewer than ``_GRID_FLOOR`` cells): building and reading a cell costs a small fraction
#: of sorting a row.
_GRID_CELLS_PER_ROW = 4
_GRID_FLOOR = 1 << 20

_TIME_COLUMN = "event_timestamp"
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

Int64s = NDArray[np.int64]
_T = TypeVar("_T")
_R = TypeVar("_R")


def timestamps_ns(column: pa.ChunkedArray | pa.Array) -> Int64s:
    """Nanoseconds since the epoch (UTC) of a timestamp column, :data:`NULL_TIME` for nulls.

    >>> import datetime as dt
    >>> t = pa.array([dt.datetime(1970, 1, 1, 0, 0, 1), None], pa.timestamp("us", tz="UTC"))
    >>> timestamps_ns(t).tolist() == [1_000_000_000, NULL_TIME]
    True
    """
    ns = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    return np.asarray(pc.fill_null(ns, NULL_TIME).to_numpy(), dtype=np.int64)


def _strings(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return column if column.type == pa.string() else column.cast(pa.string())


def _index(column: pa.ChunkedArray | pa.Array, values: pa.Array) -> Int64s:
    found = pc.fill_null(pc.index_in(_strings(column), value_set=values), -1)
    return np.asarray(found.to_numpy(), dtype=np.int64)


class KeyEncoder:
    """Dense codes ``0 … size-1`` of the distinct keys of the sends (one or more columns).

    Keys are compared as strings. A null in any key column gives no code (``-1``), in the
    sends and in :meth:`encode`, so such a send matches nothing.

    >>> enc = KeyEncoder([pa.array(["a", "b", "a", None]), pa.array(["x", "x", "y", "x"])])
    >>> enc.codes.tolist(), enc.size
    ([0, 2, 1, -1], 3)
    >>> enc.encode([pa.array(["b", "a", "c"]), pa.array(["x", "x", "x"])]).tolist()
    [2, 0, -1]
    """

    def __init__(self, columns: Sequence[pa.ChunkedArray | pa.Array]) -> None:
        if not columns:
            raise ValueError("a key needs at least one column")
        self._values: list[pa.Array] = []
        self._combined: list[Int64s] = []
        codes = np.empty(0, dtype=np.int64)
        for i, column in enumerate(columns):
            plain = _strings(column)
            values = pc.unique(pc.drop_null(plain))
            self._values.append(values)
            code = _index(plain, values)
            if i == 0:
                codes = code
                continue
            pair = np.where((codes >= 0) & (code >= 0), codes * len(values) + code, -1)
            distinct = np.unique(pair[pair >= 0])
            self._combined.append(distinct)
            codes = np.where(pair >= 0, np.searchsorted(distinct, pair), -1)
        self.codes: Int64s = codes
        self.size = len(self._combined[-1]) if self._combined else len(self._values[0])

    def encode(self, columns: Sequence[pa.ChunkedArray | pa.Array]) -> Int64s:
        """The code of each row's key, ``-1`` where no send has that key."""
        codes = np.empty(0, dtype=np.int64)
        for i, column in enumerate(columns):
            code = _index(column, self._values[i])
            if i == 0:
                codes = code
                continue
            pair = np.where((codes >= 0) & (code >= 0), codes * len(self._values[i]) + code, -1)
            distinct = self._combined[i - 1]
            at = np.minimum(np.searchsorted(distinct, pair), max(len(distinct) - 1, 0))
            known = (pair >= 0) & (distinct[at] == pair) if len(distinct) else pair < -1
            codes = np.where(known, at, -1)
        return codes


@dataclass(frozen=True)
class AsOf:
    """Per send: the matched row (``-1``: none) and its time in ns (:data:`NULL_TIME`: none)."""

    rows: Int64s
    times: Int64s


def match_rows(
    send_code: Int64s,
    send_ns: Int64s,
    row_code: Int64s,
    row_ns: Int64s,
    row_id: Int64s,
    *,
    ttl_ns: int,
    size: int,
    use_grid: bool | None = None,
) -> AsOf:
    """For each send, the ``row_id`` of the newest row of its code strictly before it.

    Rows older than ``ttl_ns`` at the send do not count: a send whose newest earlier row is
    too old gets none. Codes run from 0 to ``size - 1``; ``-1`` and :data:`NULL_TIME` match
    nothing. ``use_grid`` forces one of the two equivalent methods (default: by size).

    >>> m = match_rows(
    ...     np.array([0, 0, 0, 1]), np.array([15, 10, 99, 15]),
    ...     np.array([0, 0, 1]), np.array([5, 10, 20]), np.array([7, 8, 9]),
    ...     ttl_ns=50, size=2,
    ... )
    >>> m.rows.tolist(), m.times.tolist()[:2]
    ([8, 7, -1, -1], [10, 5])
    """
    rows = np.full(len(send_code), -1, dtype=np.int64)
    times = np.full(len(send_code), NULL_TIME, dtype=np.int64)
    usable = (row_code >= 0) & (row_ns != NULL_TIME)
    if not usable.all():
        row_code, row_ns, row_id = row_code[usable], row_ns[usable], row_id[usable]
    # Hashing finds the few distinct times and each row's one faster than sorting the rows.
    which, found_times = pd.factorize(row_ns, sort=False)
    by_time = np.argsort(found_times)
    distinct = np.asarray(found_times, dtype=np.int64)[by_time]
    row_rank = np.empty(len(by_time), dtype=np.int64)
    row_rank[by_time] = np.arange(len(by_time))
    row_rank = row_rank[which]
    # The rank of the newest distinct time strictly before each send.
    before = np.searchsorted(distinct, send_ns, side="left") - 1
    ok = (send_code >= 0) & (send_ns != NULL_TIME) & (before >= 0)
    if not ok.any() or not len(row_id):
        return AsOf(rows, times)
    code, rank = send_code[ok], before[ok]
    cells = size * len(distinct)
    if use_grid is None:
        use_grid = cells <= max(_GRID_CELLS_PER_ROW * len(row_id), _GRID_FLOOR)
    if use_grid:
        found, newest = _grid_lookup(code, rank, row_code, row_rank, row_id, size, len(distinct))
    else:
        found, newest = _sorted_lookup(code, rank, row_code, row_rank, row_id, len(distinct))
    where = np.flatnonzero(ok)
    fresh = found >= 0
    fresh[fresh] = distinct[newest[fresh]] >= send_ns[where[fresh]] - ttl_ns
    rows[where[fresh]] = found[fresh]
    times[where[fresh]] = distinct[newest[fresh]]
    return AsOf(rows, times)


def _grid_lookup(
    code: Int64s,
    rank: Int64s,
    row_code: Int64s,
    row_rank: Int64s,
    row_id: Int64s,
    size: int,
    n_times: int,
) -> tuple[Int64s, Int64s]:
    # newest[t, c]: rank of the newest row of code c at or before time rank t (-1: none). The
    # time axis comes first so that the running maximum is one vector operation per time.
    newest = np.full((n_times, size), -1, dtype=np.int32)
    cell = row_rank * size + row_code  # flat indices: cheaper than indexing by (t, c) pairs
    newest.ravel()[cell] = row_rank
    np.maximum.accumulate(newest, axis=0, out=newest)
    at = np.zeros(n_times * size, dtype=np.int64)
    at[cell] = row_id
    best = newest.ravel()[rank * size + code].astype(np.int64)
    found = np.full(len(code), -1, dtype=np.int64)
    hit = best >= 0
    found[hit] = at[best[hit] * size + code[hit]]
    return found, best


def _sorted_lookup(
    code: Int64s,
    rank: Int64s,
    row_code: Int64s,
    row_rank: Int64s,
    row_id: Int64s,
    n_times: int,
) -> tuple[Int64s, Int64s]:
    # One sortable integer per (code, time rank); codes and ranks are bounded by the sends and
    # the rows held in memory, so the product stays far below 2**63.
    order = np.argsort(row_code * n_times + row_rank, kind="stable")
    keys = (row_code * n_times + row_rank)[order]
    at = np.searchsorted(keys, code * n_times + rank, side="right") - 1
    hit = at >= 0
    hit[hit] = keys[at[hit]] // n_times == code[hit]
    found = np.full(len(code), -1, dtype=np.int64)
    best = np.full(len(code), -1, dtype=np.int64)
    found[hit] = row_id[order[at[hit]]]
    best[hit] = keys[at[hit]] % n_times
    return found, best


def _parallel(work: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    todo = list(items)
    if len(todo) < 2:
        return [work(item) for item in todo]
    # Parquet decoding and Arrow kernels release the GIL: one thread per core reads one file.
    with ThreadPoolExecutor(max_workers=min(pa.cpu_count(), len(todo))) as pool:
        return list(pool.map(work, todo))


@dataclass(frozen=True)
class _File:
    path: Path
    meta: pq.FileMetaData
    offset: int  # of its first row among all rows of the table
    low: int | None  # smallest and largest event_timestamp in ns (None: unknown)
    high: int | None

    @property
    def rows(self) -> int:
        return int(self.meta.num_rows)

    def may_hold_nulls(self, column: str) -> bool:
        """Whether the statistics leave room for a null in ``column``."""
        index = self.meta.schema.names.index(column)
        for g in range(self.meta.num_row_groups):
            stats = self.meta.row_group(g).column(index).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                return True
        return False

    def read(self, local: Int64s, columns: list[str]) -> tuple[pa.Table, Int64s]:
        """``columns`` of the row groups holding rows ``local``, and where those rows are."""
        sizes = np.array(
            [self.meta.row_group(g).num_rows for g in range(self.meta.num_row_groups)],
            dtype=np.int64,
        )
        starts = np.cumsum(sizes) - sizes
        # Read only the row groups that hold wanted rows, and renumber the rows within what
        # was read (empty groups share their start with the next one: side="right" skips them).
        group = np.searchsorted(starts, local, side="right") - 1
        used = np.unique(group)
        read_starts = np.cumsum(sizes[used]) - sizes[used]
        index = local - starts[group] + read_starts[np.searchsorted(used, group)]
        table = pq.ParquetFile(self.path, memory_map=True).read_row_groups(
            used.tolist(), columns=columns, use_threads=False
        )
        return table, index


def _time_range(meta: pq.FileMetaData) -> tuple[int | None, int | None]:
    schema = meta.schema.to_arrow_schema()
    field = schema.field(_TIME_COLUMN) if _TIME_COLUMN in schema.names else None
    if field is None or not pa.types.is_timestamp(field.type) or field.type.unit not in _UNIT_NS:
        return None, None
    index = meta.schema.names.index(_TIME_COLUMN)
    scale = _UNIT_NS[field.type.unit]
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if meta.row_group(g).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max or not isinstance(stats.min_raw, int):
            return None, None
        lows.append(stats.min_raw * scale)
        highs.append(stats.max_raw * scale)
    return (min(lows), max(highs)) if lows else (None, None)


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


class DayFiles:
    """The Parquet files of one feature table, read narrowly for :func:`as_of`.

    Rows are numbered across the files in the order given (``0 … total-1``); the files must
    share their column names and types.
    """

    def __init__(self, files: Sequence[Path], keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self._files: list[_File] = []
        offset = 0
        self.schema: pa.Schema | None = None
        for path in files:
            meta = pq.read_metadata(path)
            if self.schema is None:
                self.schema = meta.schema.to_arrow_schema()
            low, high = _time_range(meta)
            self._files.append(_File(path, meta, offset, low, high))
            offset += meta.num_rows
        self.total = offset

    def keys_between(
        self, low: int, high: int, encode: Callable[[list[pa.ChunkedArray]], Int64s]
    ) -> tuple[Int64s, Int64s, Int64s]:
        """Codes, times (ns) and row numbers of the rows with ``low <= time < high``.

        Only rows whose key ``encode`` knows (code ``>= 0``) are returned.
        """

        def read(f: _File) -> tuple[pa.Table, Int64s]:
            table = pq.ParquetFile(f.path, memory_map=True).read(
                [*self.keys, _TIME_COLUMN], use_threads=False
            )
            return table, timestamps_ns(table.column(_TIME_COLUMN))

        wanted = [
            f
            for f in self._files
            if f.rows and (f.low is None or (f.high is not None and f.high >= low and f.low < high))
        ]
        parts = _parallel(read, wanted)
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        ns = np.concatenate([p[1] for p in parts])
        rows = np.concatenate([np.arange(f.offset, f.offset + f.rows) for f in wanted])
        # One encode call for all files: it hashes the sends' keys once.
        code = encode(
            [pa.chunked_array([c for t, _ in parts for c in t.column(k).chunks]) for k in self.keys]
        )
        keep = (code >= 0) & (ns >= low) & (ns < high)
        if keep.all():
            return code, ns, rows
        return code[keep], ns[keep], rows[keep]

    def field(self, name: str) -> pa.Field:
        """The table's field ``name`` (a float64 one when there are no files)."""
        if self.schema is None:
            return pa.field(name, pa.float64())
        return self.schema.field(name)

    def gather(self, rows: Int64s, columns: Sequence[str]) -> dict[str, pa.Array]:
        """``columns`` of row ``rows[i]`` as row ``i`` (nulls where ``rows[i]`` is -1)."""
        n = len(rows)
        missing = rows < 0
        hit = np.flatnonzero(~missing)
        order = hit[np.argsort(rows[hit], kind="stable")]
        wanted = rows[order]
        tasks = []
        for f in self._files:
            lo, hi = np.searchsorted(wanted, [f.offset, f.offset + f.rows])
            if hi > lo:
                tasks.append((f, wanted[lo:hi] - f.offset, order[lo:hi]))
        # Numbers without nulls are written straight into one array per column, at their
        # sends; anything else (strings, columns with nulls) goes through Arrow's take.
        direct = {
            c: np.empty(n, dtype=self.field(c).type.to_pandas_dtype())
            for c in columns
            if _numeric(self.field(c).type) and not any(f.may_hold_nulls(c) for f, _, _ in tasks)
        }
        other = [c for c in columns if c not in direct]

        def read(task: tuple[_File, Int64s, Int64s]) -> pa.Table:
            f, local, sends = task
            table, index = f.read(local, list(columns))
            for c, out in direct.items():
                out[sends] = table.column(c).to_numpy()[index]
            return table.select(other).take(index)

        pieces = _parallel(read, tasks) if columns else []
        out = {
            c: pa.array(values, mask=missing if len(hit) < n else None)
            for c, values in direct.items()
        }
        if other:
            pieces.append(pa.table({c: pa.nulls(n - len(hit), self.field(c).type) for c in other}))
            joined = pa.concat_tables(pieces, promote_options="permissive").combine_chunks()
            # Pieces are in the order of the matched rows, then the unmatched sends: put every
            # row back at its send.
            position = np.concatenate([order, np.flatnonzero(missing)])
            back = np.empty(n, dtype=np.int64)
            back[position] = np.arange(n, dtype=np.int64)
            taken = joined.take(back)
            out.update((c, taken.column(c).combine_chunks()) for c in other)
        return {c: out[c] for c in columns}

    def timestamps(self, times: Int64s) -> pa.Array:
        """``times`` (ns, :data:`NULL_TIME` for none) as the table's ``event_timestamp`` type."""
        values = pa.array(times, pa.int64(), mask=times == NULL_TIME)
        stamps = values.cast(pa.timestamp("ns", tz="UTC"))
        kind = self.field(_TIME_COLUMN).type if self.schema is not None else stamps.type
        return stamps.cast(kind) if pa.types.is_timestamp(kind) else stamps


def as_of(
    days: DayFiles, send_keys: Sequence[pa.ChunkedArray], sent_ns: Int64s, ttl_ns: int
) -> AsOf:
    """Each send's newest row of ``days`` strictly before it and within ``ttl_ns``."""
    encoder = KeyEncoder(send_keys)
    valid = (encoder.codes >= 0) & (sent_ns != NULL_TIME)
    if not valid.any():
        none = np.full(len(sent_ns), -1, dtype=np.int64)
        return AsOf(none, np.full(len(sent_ns), NULL_TIME, dtype=np.int64))
    low = int(sent_ns[valid].min()) - ttl_ns
    high = int(sent_ns[valid].max())
    code, ns, rows = days.keys_between(low, high, encoder.encode)
    return match_rows(encoder.codes, sent_ns, code, ns, rows, ttl_ns=ttl_ns, size=encoder.size)
