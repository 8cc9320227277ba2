"""Prepared rows: each entity's values of one online table in one blob, beside Feast's rows.

Feast's SQLite online store holds one row per (entity, feature). A cold read of one
recipient walks about 110 rows of two tables and builds twice as many Python objects: 0.13–
0.32 ms on the machines measured, the largest part of a single decision's feature read.
:func:`prepare` writes, after each materialization, one row per (entity, table) in
:data:`PREPARED_TABLE`: the entity's values of every feature of the table, packed with
:mod:`struct` (``q`` for an int, ``d`` for a float, the strings after them, NUL-separated).
:class:`PreparedReader` reads entities with one index lookup each, 500 per statement, and
one ``struct.unpack_from`` per table: every cold read of the client, of one recipient or of
thousands (a read of 1,000 took half the time of the packed read of Feast's rows).

**The same values as Feast's rows.** A prepared row is made from the entity's Feast rows as
the packed reads of :class:`features.online.SqliteFeatureClient` make them (the same packing
in SQL, the same decoder, a null as its default), inside the write transaction that stores
it, so no other writer comes between the read and the write. An entity is prepared only when
every value decodes to the feature's own type
(:func:`features.engineering.tables.feature_type`); any other entity is read from Feast's rows
as before.

**Never stale.** Triggers on each Feast table delete an entity's prepared row whenever one of
its Feast rows is inserted, updated or deleted — by Feast's own write, the bulk write, erasure
or any other client — in the same transaction. A Feast table dropped and re-created has lost
its triggers: the reader then ignores that table's prepared rows, and the next
:func:`prepare` deletes them before preparing the table again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, TypeVar

from features.engineering.tables import DEFAULTS, FeatureValue, feature_type
from features.packed_values import NULL_VALUE, decode_packed

K = TypeVar("K")

__all__ = [
    "KEYS_PER_STATEMENT",
    "LAYOUT_TABLE",
    "PREPARED_TABLE",
    "Forget",
    "PreparedLayout",
    "PreparedReader",
    "key_chunks",
    "prepare",
    "trigger_names",
    "writing_in_bulk",
]

#: One row per (entity key, Feast table): the entity's values of that table, packed.
PREPARED_TABLE: Final = "_inboxlab_prepared"
#: Per Feast table: the feature names of its prepared rows and each one's code.
LAYOUT_TABLE: Final = "_inboxlab_prepared_layout"

logger = logging.getLogger(__name__)

_CODES = {int: "q", float: "d", str: "s"}
_TYPES = {code: kind for kind, code in _CODES.items()}
#: Entities prepared per write transaction.
_BATCH = 2_000
#: Keys per statement of a read of many keys (here and in :mod:`features.online`): SQLite
#: caps the bound parameters of one.
KEYS_PER_STATEMENT: Final = 500


def key_chunks(keys: Sequence[K], size: int) -> Iterator[Sequence[K]]:
    """``keys`` in consecutive runs of at most ``size`` (the last may be shorter).

    >>> [list(c) for c in key_chunks([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    return (keys[start : start + size] for start in range(0, len(keys), size))


def trigger_names(table: str) -> tuple[str, str, str]:
    """The triggers that keep ``table``'s prepared rows from going stale.

    >>> trigger_names("p_view")
    ('p_view_prepared_insert', 'p_view_prepared_update', 'p_view_prepared_delete')
    """
    return (f"{table}_prepared_insert", f"{table}_prepared_update", f"{table}_prepared_delete")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _triggers_sql(table: str) -> list[str]:
    insert, update, delete = map(_quote, trigger_names(table))
    t, literal = _quote(table), "'" + table.replace("'", "''") + "'"
    drop = f"DELETE FROM {PREPARED_TABLE} WHERE tbl = {literal} AND entity_key"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {insert} AFTER INSERT ON {t} "
        f"BEGIN {drop} = NEW.entity_key; END",
        f"CREATE TRIGGER IF NOT EXISTS {update} AFTER UPDATE ON {t} "
        f"BEGIN {drop} IN (OLD.entity_key, NEW.entity_key); END",
        f"CREATE TRIGGER IF NOT EXISTS {delete} AFTER DELETE ON {t} "
        f"BEGIN {drop} = OLD.entity_key; END",
    ]


def _schema(conn: sqlite3.Connection, kind: str, table: str) -> set[str]:
    """Names of the schema objects of ``kind`` (``table``, ``index``, ``trigger``) on
    ``table``."""
    query = "SELECT name FROM sqlite_master WHERE type = ? AND tbl_name = ?"
    return {name for (name,) in conn.execute(query, (kind, table))}


def _guarded(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` has every trigger that keeps its prepared rows from going stale."""
    return set(trigger_names(table)) <= _schema(conn, "trigger", table)


#: Deletes the prepared rows of the entity keys given (see :func:`writing_in_bulk`).
Forget = Callable[[list[bytes]], None]


@contextmanager
def writing_in_bulk(conn: sqlite3.Connection, table: str) -> Iterator[Forget]:
    """Inside a write transaction of ``conn`` on Feast's ``table``: lift the table's triggers
    for a bulk write and hand back ``forget(keys)``, which deletes the prepared rows of the
    entity keys about to be written; the triggers are made again on leaving.

    The triggers run a statement per Feast row written: on a later materialization, which
    upserts every value of every recipient, they cost about a third of the write. One delete
    per entity does their work, and since DDL is transactional in SQLite, no other
    connection ever sees the table without them. A table that had no triggers (never
    prepared, or re-created) is left without.
    """
    if not conn.in_transaction:  # Python's sqlite3 would run the DDL below outside of one
        conn.execute("BEGIN IMMEDIATE")  # and from here no other writer changes the schema
    if not _guarded(conn, table):
        yield lambda keys: None
        return
    for name in trigger_names(table):
        conn.execute(f"DROP TRIGGER {_quote(name)}")

    def forget(keys: list[bytes]) -> None:
        conn.executemany(
            f"DELETE FROM {PREPARED_TABLE} WHERE tbl = ? AND entity_key = ?",
            zip(repeat(table), keys),
        )

    yield forget
    for sql in _triggers_sql(table):
        conn.execute(sql)


@dataclass(frozen=True, slots=True)
class PreparedLayout:
    """How the prepared rows of one Feast table hold its features.

    ``names`` in the order the blob holds them: the numbers first (in ``struct`` order), then
    the strings.

    >>> layout = PreparedLayout.of("t", ["timezone", "opens_7d", "open_rate_30d"])
    >>> layout.names, layout.codes
    (('open_rate_30d', 'opens_7d', 'timezone'), 'dqs')
    >>> layout.unpack(layout.pack([0.5, 3, "UTC"]))
    (0.5, 3, 'UTC')
    """

    table: str
    names: tuple[str, ...]
    codes: str
    #: How many values are numbers (the others, last, are strings).
    numbers: int = field(init=False)
    #: The Python type of each value, in ``names`` order.
    types: tuple[type, ...] = field(init=False, repr=False)
    _struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numbers = len(self.codes.rstrip("s"))
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "types", tuple(_TYPES[c] for c in self.codes))
        object.__setattr__(self, "_struct", struct.Struct("<" + self.codes[:numbers]))

    @classmethod
    def of(cls, table: str, names: Iterable[str]) -> PreparedLayout:
        """The layout of ``names`` (in any order), each with its feature's type."""
        coded = sorted((_CODES[feature_type(n)] == "s", n) for n in names)
        ordered = tuple(n for _, n in coded)
        return cls(table, ordered, "".join(_CODES[feature_type(n)] for n in ordered))

    def pack(self, values: Sequence[FeatureValue]) -> bytes:
        """``values`` (in ``names`` order, each of its type) as one blob."""
        n = self.numbers
        return self._struct.pack(*values[:n]) + "\x00".join(map(str, values[n:])).encode()

    def unpack(self, blob: bytes) -> tuple[FeatureValue, ...]:
        """The values of a blob from :meth:`pack`, in ``names`` order."""
        shape = self._struct
        numbers: tuple[FeatureValue, ...] = shape.unpack_from(blob)
        if len(self.codes) == self.numbers:
            return numbers
        return numbers + tuple(blob[shape.size :].decode().split("\x00"))


class PreparedReader:
    """Reads requested features of a few entities from their prepared rows.

    Parameters
    ----------
    conn
        A connection to the online store (the reader never writes).
    features
        The requested names and the Feast table of each.

    Call :meth:`check` after opening and whenever the store changed: prepared rows are read
    only while every table involved has its layout and its three triggers.
    """

    def __init__(self, conn: sqlite3.Connection, features: Mapping[str, str]) -> None:
        self._conn = conn
        self._features = tuple(features)
        self._table_of = dict(features)
        self._tables = tuple(sorted(set(features.values())))
        # Set whole by check(), read whole by read(): another thread may check meanwhile.
        self._state: tuple[tuple[PreparedLayout, ...], Any] | None = None

    @property
    def usable(self) -> bool:
        """Whether the last :meth:`check` found every table prepared and guarded."""
        return self._state is not None

    def check(self) -> bool:
        """Look up the layouts and triggers; return :attr:`usable`."""
        self._state = self._look_up()
        return self._state is not None

    def _look_up(self) -> tuple[tuple[PreparedLayout, ...], Any] | None:
        try:
            stored = dict(
                (table, (names, codes))
                for table, names, codes in self._conn.execute(
                    f"SELECT tbl, names, codes FROM {LAYOUT_TABLE}"
                )
            )
        except sqlite3.OperationalError:  # no layout table: never prepared
            return None
        layouts = []
        for table in self._tables:
            if table not in stored or not _guarded(self._conn, table):
                return None
            names, codes = stored[table]
            layouts.append(PreparedLayout(table, tuple(names.split(",")), codes))
        positions = {}
        offset = 0
        for layout in layouts:
            positions.update({(layout.table, n): offset + i for i, n in enumerate(layout.names)})
            offset += len(layout.names)
        try:
            wanted = [positions[(self._table_of[n], n)] for n in self._features]
        except KeyError:  # a requested feature the layout lacks
            return None
        pick = itemgetter(*wanted)
        return tuple(layouts), (pick if len(wanted) > 1 else lambda values: (pick(values),))

    def read(
        self, keys: Sequence[bytes], conn: sqlite3.Connection | None = None
    ) -> dict[bytes, dict[str, FeatureValue]]:
        """The rows of the ``keys`` that have a prepared row in every table (others left out;
        all of them while the prepared rows are not :attr:`usable`), read on ``conn``
        (default the reader's own connection)."""
        state = self._state
        if state is None or not keys:
            return {}
        layouts, pick = state
        # Every table of a key in one seek of the primary key's prefix (another project's
        # tables, if any, are left aside below), KEYS_PER_STATEMENT keys per statement.
        blobs: dict[bytes, dict[str, bytes]] = {}
        execute = (conn or self._conn).execute
        for chunk in key_chunks(keys, KEYS_PER_STATEMENT):
            for key, table, blob in execute(_select(len(chunk)), chunk):
                blobs.setdefault(key, {})[table] = blob
        rows = {}
        for key, held in blobs.items():
            values: tuple[FeatureValue, ...] = ()
            for layout in layouts:
                blob = held.get(layout.table)
                if blob is None:
                    break
                values += layout.unpack(blob)
            else:
                # Not strict: the layouts hold every requested name (check), and a strict
                # zip costs a third of the row here.
                rows[key] = dict(zip(self._features, pick(values)))  # noqa: B905
        return rows


@functools.lru_cache(maxsize=64)
def _select(n_keys: int) -> str:
    """The prepared rows of ``n_keys`` keys.

    >>> _select(2)
    'SELECT entity_key, tbl, blob FROM _inboxlab_prepared WHERE entity_key IN (?,?)'
    """
    match = "= ?" if n_keys == 1 else f"IN ({','.join(repeat('?', n_keys))})"
    return f"SELECT entity_key, tbl, blob FROM {PREPARED_TABLE} WHERE entity_key {match}"


def prepare(path: Path | str, tables: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Prepare the rows not yet prepared of each Feast table in the SQLite store at ``path``.

    ``tables`` maps each table to its feature names. Tables that do not exist are skipped.
    A first transaction per table (re)makes its triggers and layout, dropping its prepared
    rows when those were missing or different. Then the entities are walked in key order,
    :data:`_BATCH` per write transaction, each read and stored within its transaction: an
    entity without a prepared row is stored when every value has its feature's type. Short
    transactions keep the readers of the store (the serving processes) waiting for at most
    one batch's commit.

    Returns the number of rows prepared per table.
    """
    from features.online import cover_index

    conn = sqlite3.connect(str(path), isolation_level=None)
    done: dict[str, int] = {}
    try:
        with _transaction(conn):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {PREPARED_TABLE} (entity_key BLOB NOT NULL, "
                "tbl TEXT NOT NULL, blob BLOB NOT NULL, PRIMARY KEY (entity_key, tbl)) "
                "WITHOUT ROWID"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {LAYOUT_TABLE} "
                "(tbl TEXT PRIMARY KEY, names TEXT NOT NULL, codes TEXT NOT NULL)"
            )
        for table, names in tables.items():
            layout = PreparedLayout.of(table, names)
            with _transaction(conn):
                if table not in _schema(conn, "table", table):
                    continue
                _guard(conn, layout)
                walk = _Walk.of(conn, layout, cover_index(table))
            if walk is None:
                continue
            done[table] = 0
            after: bytes | None = b""
            while after is not None:
                with _transaction(conn):
                    prepared, after = walk.prepare_batch(conn, after)
                done[table] += prepared
    finally:
        conn.close()
    return done


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _guard(conn: sqlite3.Connection, layout: PreparedLayout) -> None:
    """Make ``layout``'s triggers and layout row, dropping rows that may be stale."""
    stored = conn.execute(
        f"SELECT names, codes FROM {LAYOUT_TABLE} WHERE tbl = ?", (layout.table,)
    ).fetchone()
    if _guarded(conn, layout.table) and stored == (
        ",".join(layout.names),
        layout.codes,
    ):
        return
    conn.execute(f"DELETE FROM {PREPARED_TABLE} WHERE tbl = ?", (layout.table,))
    for sql in _triggers_sql(layout.table):
        conn.execute(sql)
    conn.execute(
        f"INSERT OR REPLACE INTO {LAYOUT_TABLE} VALUES (?, ?, ?)",
        (layout.table, ",".join(layout.names), layout.codes),
    )


def _scan(table: str, index: str, n_names: int) -> str:
    """The next :data:`_BATCH` entities of ``table`` after a bound key, in key order, each
    with its values of the ``n_names`` bound names packed in name order as
    :func:`features.online._packed_select` packs them (an empty blob when some are missing),
    walking ``index``.
    """
    value = f"CASE WHEN length(value) THEN value ELSE x'{NULL_VALUE.hex()}' END"
    names = ",".join(repeat("?", n_names))
    return (
        f"SELECT entity_key, CASE count(*) WHEN {n_names} "
        f"THEN CAST(group_concat({value}, '') AS BLOB) ELSE x'' END "
        f"FROM {_quote(table)} INDEXED BY {_quote(index)} "
        f"WHERE value IS NOT NULL AND +feature_name IN ({names}) AND entity_key > ? "
        f"GROUP BY entity_key ORDER BY entity_key LIMIT {_BATCH}"
    )


@dataclass(frozen=True, slots=True)
class _Walk:
    """How one table's entities are read for preparing: the statement walking its index, and
    where each value of the walk (in name order) goes in the layout, with its default for a
    null."""

    layout: PreparedLayout
    by_name: tuple[str, ...]
    order: tuple[int, ...]
    defaults: tuple[FeatureValue, ...]
    #: The statement reading the next batch (:func:`_scan`).
    scan: str

    @classmethod
    def of(cls, conn: sqlite3.Connection, layout: PreparedLayout, cover: str) -> _Walk | None:
        """The walk of ``layout``'s table: its covering index (else the primary key's) if
        SQLite walks it without a sort, so that the values come in name order; else
        ``None`` (logged), and the table is left to Feast's rows."""
        table = layout.table
        present = _schema(conn, "index", table)
        index = cover if cover in present else f"sqlite_autoindex_{table}_1"
        by_name = tuple(sorted(layout.names))
        plan = "no index"
        if index in present:
            sql = _scan(table, index, len(by_name))
            steps = conn.execute("EXPLAIN QUERY PLAN " + sql, [*by_name, b""])
            plan = " ".join(str(row[-1]) for row in steps)
            if "TEMP B-TREE" not in plan:
                order = tuple(by_name.index(n) for n in layout.names)
                defaults = tuple(DEFAULTS.get(n, feature_type(n)(0)) for n in by_name)
                return cls(layout, by_name, order, defaults, sql)
        logger.warning("online table %s cannot be prepared (plan: %s)", table, plan)
        return None

    def prepare_batch(self, conn: sqlite3.Connection, after: bytes) -> tuple[int, bytes | None]:
        """Prepare the next batch of entities after ``after``; return how many were stored
        and the last key walked (``None`` at the end of the table)."""
        layout, table = self.layout, self.layout.table
        batch = conn.execute(self.scan, [*self.by_name, after]).fetchall()
        if not batch:
            return 0, None
        keys = [key for key, _ in batch]
        marks = ",".join(repeat("?", len(keys)))
        done = {
            key
            for (key,) in conn.execute(
                f"SELECT entity_key FROM {PREPARED_TABLE} "
                f"WHERE tbl = ? AND entity_key IN ({marks})",
                [table, *keys],
            )
        }
        held = [(key, blob) for key, blob in batch if blob and key not in done]
        values, ok = decode_packed([blob for _, blob in held], self.defaults)
        columns = values[list(self.order)].T.tolist()
        rows = []
        for j, (key, _) in enumerate(held):
            column = columns[j]
            # Only the layout's own types, and strings that the NUL separator cannot split.
            if (
                ok[j]
                and tuple(map(type, column)) == layout.types
                and not any("\x00" in s for s in column[layout.numbers :])
            ):
                rows.append((key, table, layout.pack(column)))
        conn.executemany(f"INSERT INTO {PREPARED_TABLE} VALUES (?, ?, ?)", rows)
        return len(rows), (keys[-1] if len(batch) == _BATCH else None)
