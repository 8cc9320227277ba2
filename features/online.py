"""Online feature reads for the scoring API: one protocol, four implementations.

``FeastFeatureClient``
    Feast's ``get_online_features``: the reference, about 0.2 ms per recipient plus 0.1 ms
    per extra one, too slow for scoring whole audiences.
``SqliteFeatureClient``
    The fast path: reads the SQLite tables Feast materialized, directly, decoding Feast's own
    value protobufs, and keeps decoded rows in a bounded in-process cache. Staleness is
    explicit: every ``max_staleness`` it asks SQLite whether any connection changed the file
    (``PRAGMA data_version``) and drops the cache if so, so a value is never older than the
    store by more than ``max_staleness``.
``RedisFeatureClient`` (:mod:`features.online_redis`)
    The same fast path over Feast's Redis online store.
``InMemoryFeatureClient``
    A dictionary, for tests.

Every client returns, per recipient, a dict of every requested feature. A recipient the store
does not know, or a value the store holds as null, gets the documented cold-start default
(:data:`~features.engineering.tables.DEFAULTS`) — never an exception.

Per-variant history (the ``recipient_variant`` view, keyed by recipient *and* variant) is read
with ``variant_features(recipient_id, variant_ids)`` for the candidate variants of one send,
or ``variant_features_many({recipient_id: variant_ids})`` for many recipients at once; a pair
the store does not know gets :data:`~features.engineering.tables.VARIANT_DEFAULTS`.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby, islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from features.engineering.tables import (
    DEFAULTS,
    ENGAGEMENT_FEATURES,
    SEND_TIME_FEATURES,
    VARIANT_DEFAULTS,
    VARIANT_FEATURES,
    FeatureValue,
)
from features.packed_values import NULL_VALUE, decode_packed
from features.prepared import KEYS_PER_STATEMENT, PreparedReader, key_chunks
from features.value_proto import value_message
from inboxlab.errors import InvalidInputError, StoreError
from inboxlab.settings import Settings
from inboxlab.sqlite_deadline import deadline_active, watched
from inboxlab.sqlite_threads import ConnectionPerThread

__all__ = [
    "MEMO_LIMIT",
    "PACKED_MIN_KEYS",
    "VARIANT_VIEW",
    "VIEW_OF_FEATURE",
    "CachedFeatureClient",
    "DecodedValues",
    "FeastFeatureClient",
    "FeatureClient",
    "FeatureRow",
    "InMemoryFeatureClient",
    "RowCache",
    "SqliteFeatureClient",
    "VariantRows",
    "add_cover_indexes",
    "check_features",
    "cover_index",
    "decode_value",
    "entity_key",
    "feature_tables",
    "nest_pairs",
    "unique_pairs",
    "variant_entity_key",
    "variant_key_prefix",
    "with_defaults",
]

FeatureRow = dict[str, FeatureValue]

# v3 entity key of {"recipient_id": <string>}: key count, key type and name, value type.
_KEY_PREFIX = b"".join(
    (
        (1).to_bytes(4, "little"),
        (2).to_bytes(4, "little"),  # ValueType.STRING
        len(b"recipient_id").to_bytes(4, "little"),
        b"recipient_id",
        (2).to_bytes(4, "little"),
    )
)

# v3 key of {"recipient_id", "variant_id"}: Feast sorts the join keys by name and writes
# every key name before the values (feast.infra.key_encoding_utils.serialize_entity_key).
_VARIANT_KEY_PREFIX = b"".join(
    (
        (2).to_bytes(4, "little"),
        (2).to_bytes(4, "little"),
        len(b"recipient_id").to_bytes(4, "little"),
        b"recipient_id",
        (2).to_bytes(4, "little"),
        len(b"variant_id").to_bytes(4, "little"),
        b"variant_id",
    )
)
_STRING = (2).to_bytes(4, "little")

#: The Feast view of the per-(recipient, variant) features.
VARIANT_VIEW = "recipient_variant"

#: Per-variant rows of one recipient, keyed by variant id.
VariantRows = dict[str, FeatureRow]

#: The Feast view holding each feature.
VIEW_OF_FEATURE: dict[str, str] = {
    **dict.fromkeys(ENGAGEMENT_FEATURES, "recipient_engagement"),
    **dict.fromkeys(SEND_TIME_FEATURES, "recipient_send_time"),
}


def feature_tables(project: str = "inboxlab") -> dict[str, list[str]]:
    """Each online table of the recipient views (``{project}_{view}``) and its features."""
    tables: dict[str, list[str]] = {}
    for feature, view in VIEW_OF_FEATURE.items():
        tables.setdefault(f"{project}_{view}", []).append(feature)
    return tables


def check_features(features: Sequence[str] | None) -> tuple[str, ...]:
    """The requested feature names (default all), refusing unknown ones."""
    names = tuple(features) if features is not None else tuple(VIEW_OF_FEATURE)
    unknown = sorted(set(names) - set(VIEW_OF_FEATURE))
    if unknown:
        raise InvalidInputError(
            f"unknown feature(s) {unknown}; known: see features.engineering.tables",
            field="features",
        )
    return names


_ALL_DEFAULTS: dict[str, FeatureValue] = {**DEFAULTS, **VARIANT_DEFAULTS}
#: The per-variant defaults in the order of VARIANT_FEATURES.
_VARIANT_DEFAULT_VALUES: tuple[FeatureValue, ...] = tuple(
    VARIANT_DEFAULTS[name] for name in VARIANT_FEATURES
)


def with_defaults(values: Mapping[str, Any] | None, features: Iterable[str]) -> FeatureRow:
    """``values`` restricted to ``features``, with missing or null ones set to their default.

    >>> with_defaults({"opens_7d": 3, "timezone": None}, ["opens_7d", "timezone"])
    {'opens_7d': 3, 'timezone': 'UTC'}
    """
    values = values or {}
    out: FeatureRow = {}
    for name in features:
        value = values.get(name)
        out[name] = _ALL_DEFAULTS[name] if value is None else value
    return out


def variant_entity_key(recipient_id: str, variant_id: str) -> bytes:
    """The online store's key of a (recipient, variant) pair (Feast's serialization v3).

    A test pins it to Feast's own function.
    """
    rid, vid = recipient_id.encode(), variant_id.encode()
    return b"".join(
        (
            _VARIANT_KEY_PREFIX,
            _STRING,
            len(rid).to_bytes(4, "little"),
            rid,
            _STRING,
            len(vid).to_bytes(4, "little"),
            vid,
        )
    )


def variant_key_prefix(recipient_id: str) -> bytes:
    """The start shared by the online keys of every (``recipient_id``, variant) pair.

    >>> variant_entity_key("r1", "v0").startswith(variant_key_prefix("r1"))
    True
    >>> variant_entity_key("r10", "v0").startswith(variant_key_prefix("r1"))
    False
    """
    rid = recipient_id.encode()
    return _VARIANT_KEY_PREFIX + _STRING + len(rid).to_bytes(4, "little") + rid + _STRING


def unique_pairs(requests: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """The distinct (recipient, variant) pairs of ``requests``, in order."""
    return list(dict.fromkeys((rid, vid) for rid, vids in requests.items() for vid in vids))


def nest_pairs(
    requests: Mapping[str, Sequence[str]], rows: Mapping[tuple[str, str], FeatureRow]
) -> dict[str, VariantRows]:
    """``{recipient_id: {variant_id: row}}`` for ``requests`` from rows keyed by pair."""
    return {rid: {vid: rows[rid, vid] for vid in vids} for rid, vids in requests.items()}


def decode_value(value_type: Any, blob: bytes) -> FeatureValue | None:
    """A serialized ``feast.types.Value`` as a Python value (``None`` when null or unset).

    ``value_type`` is Feast's ``Value`` message class, passed in so that importing this
    module does not import Feast.
    """
    value = value_type.FromString(blob)
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    result: FeatureValue = getattr(value, kind)
    return result


#: Cap on the distinct serialized values a :class:`DecodedValues` remembers (a few MB at most).
MEMO_LIMIT = 200_000


class DecodedValues(dict[bytes, FeatureValue | None]):
    """A memo of :func:`decode_value`: decoded values keyed by their serialized ``Value``.

    Features take few distinct values (counts, 0.0, 999, a zone), so most blobs are decoded
    once: ``values[blob]`` is a plain dict lookup for a blob seen before, and decodes and
    remembers one that was not. Once ``limit`` blobs are held, the memo starts afresh. The
    empty blob (no value set) decodes to ``None``, so it stands for a missing value.

    >>> from feast.protos.feast.types.Value_pb2 import Value
    >>> values = DecodedValues(Value, limit=2)
    >>> values[Value(int64_val=3).SerializeToString()], values[b""]
    (3, None)
    >>> values[Value(string_val="UTC").SerializeToString()], len(values)
    ('UTC', 1)
    """

    def __init__(self, value_type: Any, limit: int = MEMO_LIMIT) -> None:
        super().__init__()
        self._value_type = value_type
        self._limit = limit

    def __missing__(self, blob: bytes) -> FeatureValue | None:
        value = decode_value(self._value_type, blob)
        if len(self) >= self._limit:
            self.clear()
        self[blob] = value
        return value


def entity_key(recipient_id: str) -> bytes:
    """The online store's key of a recipient (Feast's entity key serialization v3).

    Inlined: ~1 µs instead of building two protobufs per recipient; a test pins it to Feast's
    own function.
    """
    value = recipient_id.encode()
    return _KEY_PREFIX + len(value).to_bytes(4, "little") + value


@runtime_checkable
class FeatureClient(Protocol):
    """Reads a recipient's online features; unknown recipients get the defaults."""

    features: tuple[str, ...]

    def get(self, recipient_id: str) -> FeatureRow:
        """The features of one recipient."""
        ...

    def get_many(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """The features of many recipients, keyed by recipient id."""
        ...

    def variant_features(self, recipient_id: str, variant_ids: Sequence[str]) -> VariantRows:
        """The recipient's history with each of ``variant_ids``, keyed by variant id."""
        ...

    def variant_features_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, VariantRows]:
        """Per-variant rows of many recipients: ``{recipient_id: {variant_id: row}}``."""
        ...


class InMemoryFeatureClient:
    """Features held in a dict: a fake for tests of code that reads features."""

    def __init__(
        self,
        rows: Mapping[str, Mapping[str, Any]],
        features: Sequence[str] | None = None,
        variants: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        self.features = check_features(features)
        self._rows = {rid: with_defaults(row, self.features) for rid, row in rows.items()}
        self._variants = {
            pair: with_defaults(row, VARIANT_FEATURES) for pair, row in (variants or {}).items()
        }

    def get(self, recipient_id: str) -> FeatureRow:
        """The features of one recipient (defaults when unknown)."""
        row = self._rows.get(recipient_id)
        return dict(row) if row is not None else with_defaults(None, self.features)

    def get_many(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """The features of many recipients."""
        return {rid: self.get(rid) for rid in recipient_ids}

    def variant_features(self, recipient_id: str, variant_ids: Sequence[str]) -> VariantRows:
        """The recipient's rows for ``variant_ids`` (defaults when unknown)."""
        return self.variant_features_many({recipient_id: variant_ids})[recipient_id]

    def variant_features_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, VariantRows]:
        """Per-variant rows of many recipients."""
        rows = {
            pair: dict(self._variants.get(pair) or with_defaults(None, VARIANT_FEATURES))
            for pair in unique_pairs(requests)
        }
        return nest_pairs(requests, rows)


class FeastFeatureClient:
    """Reads through ``FeatureStore.get_online_features`` (any online store)."""

    def __init__(self, store: Any, features: Sequence[str] | None = None) -> None:
        self.features = check_features(features)
        self._store = store
        self._refs = [f"{VIEW_OF_FEATURE[name]}:{name}" for name in self.features]

    @classmethod
    def from_settings(
        cls, settings: Settings, features: Sequence[str] | None = None, **kwargs: Any
    ) -> FeastFeatureClient:
        """A client over the store configured by ``settings``."""
        from features.store import feature_store

        return cls(feature_store(settings, **kwargs), features)

    def get(self, recipient_id: str) -> FeatureRow:
        """The features of one recipient (defaults when unknown)."""
        return self.get_many([recipient_id])[recipient_id]

    def get_many(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """The features of many recipients in one Feast call."""
        ids = list(dict.fromkeys(recipient_ids))
        if not ids:
            return {}
        result = self._store.get_online_features(
            features=self._refs, entity_rows=[{"recipient_id": rid} for rid in ids]
        ).to_dict()
        return {
            rid: with_defaults({name: result[name][i] for name in self.features}, self.features)
            for i, rid in enumerate(ids)
        }

    def variant_features(self, recipient_id: str, variant_ids: Sequence[str]) -> VariantRows:
        """The recipient's rows for ``variant_ids`` (defaults when unknown)."""
        return self.variant_features_many({recipient_id: variant_ids})[recipient_id]

    def variant_features_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, VariantRows]:
        """Per-variant rows of many recipients in one Feast call."""
        pairs = unique_pairs(requests)
        if not pairs:
            return {rid: {} for rid in requests}
        result = self._store.get_online_features(
            features=[f"{VARIANT_VIEW}:{name}" for name in VARIANT_FEATURES],
            entity_rows=[{"recipient_id": rid, "variant_id": vid} for rid, vid in pairs],
        ).to_dict()
        rows = {
            pair: with_defaults({n: result[n][i] for n in VARIANT_FEATURES}, VARIANT_FEATURES)
            for i, pair in enumerate(pairs)
        }
        return nest_pairs(requests, rows)


K = TypeVar("K", bound=Hashable)  # a cache key: a recipient, or a (recipient, variant) pair


class RowCache(Generic[K]):
    """Decoded rows with a size bound (the oldest loaded are dropped first) and, with
    ``max_age``, an age bound on the whole cache (it is emptied once that old)."""

    def __init__(self, max_entries: int, max_age: float | None = None) -> None:
        self._rows: OrderedDict[K, FeatureRow] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age
        self._started = time.monotonic()

    def hits(self, keys: Iterable[K]) -> dict[K, FeatureRow]:
        """The cached rows of ``keys``."""
        if self._max_age is not None:
            now = time.monotonic()
            if now - self._started >= self._max_age:
                self._rows.clear()
                self._started = now
        rows = self._rows
        return {key: rows[key] for key in keys if key in rows}

    def add(self, rows: Mapping[K, FeatureRow]) -> None:
        """Cache ``rows``, dropping the oldest beyond the size bound."""
        self._rows.update(rows)
        excess = len(self._rows) - self._max_entries
        if excess > len(self._rows) // 2:  # most must go: keep the newest rather than pop the rest
            self._rows = OrderedDict(islice(self._rows.items(), excess, None))
        else:
            for _ in range(excess):
                self._rows.popitem(last=False)

    def read_through(
        self, keys: Sequence[K], load: Callable[[list[K]], Mapping[K, FeatureRow]]
    ) -> dict[K, FeatureRow]:
        """The rows of ``keys`` (unique): the cached ones, and the rest from ``load``, cached."""
        # Hits are taken before loading: the size bound may evict them during the load.
        rows = self.hits(keys)
        missing = [key for key in keys if key not in rows]
        if missing:
            loaded = load(missing)
            self.add(loaded)
            rows.update(loaded)
        return rows

    def clear(self) -> None:
        """Drop every row."""
        self._rows.clear()


class CachedFeatureClient:
    """The read-through cache shared by the direct clients of an online store.

    A subclass loads what the cache misses (:meth:`_load`, :meth:`_load_variants`), may
    revalidate the cache before each read (:meth:`_revalidate`), and names the errors of its
    store (``_errors``), which reads turn into :class:`~inboxlab.errors.StoreError`.

    Rows returned are the cached dicts themselves, shared between calls: treat them as
    read-only.
    """

    features: tuple[str, ...]
    _cache: RowCache[str]
    _variant_cache: RowCache[tuple[str, str]]
    _errors: tuple[type[Exception], ...]
    _store_name: str
    #: The per-variant defaults, in the order of ``VARIANT_FEATURES``.
    _variant_defaults = _VARIANT_DEFAULT_VALUES

    @functools.cached_property
    def _defaults(self) -> tuple[FeatureValue, ...]:
        """The defaults of ``features``, in their order."""
        return tuple(DEFAULTS[name] for name in self.features)

    def _revalidate(self) -> None:
        """Drop cached rows the store may have changed (nothing by default)."""

    def _load(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        raise NotImplementedError

    def _load_variants(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], FeatureRow]:
        raise NotImplementedError

    def get(self, recipient_id: str) -> FeatureRow:
        """The features of one recipient (defaults when unknown)."""
        return self.get_many([recipient_id])[recipient_id]

    def get_many(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """The features of many recipients; the misses are read together."""
        try:
            self._revalidate()
            rows = self._cache.read_through(list(dict.fromkeys(recipient_ids)), self._load)
            return {rid: rows[rid] for rid in recipient_ids}
        except self._errors as exc:
            raise StoreError(f"reading the {self._store_name} failed: {exc}") from exc

    def variant_features(self, recipient_id: str, variant_ids: Sequence[str]) -> VariantRows:
        """The recipient's rows for ``variant_ids`` (defaults when unknown)."""
        return self.variant_features_many({recipient_id: variant_ids})[recipient_id]

    def variant_features_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, VariantRows]:
        """Per-variant rows of many recipients; the misses are read together."""
        try:
            self._revalidate()
            rows = self._variant_cache.read_through(unique_pairs(requests), self._load_variants)
            return nest_pairs(requests, rows)
        except self._errors as exc:
            raise StoreError(f"reading the {self._store_name} failed: {exc}") from exc

    def preload(self, recipient_ids: Sequence[str]) -> None:
        """Read these recipients into the cache now (e.g. a whole audience before scoring)."""
        self.get_many(recipient_ids)


#: A row read from an online table, ending with its ``feature_name`` and ``value`` columns.
Row = tuple[Any, ...]


@functools.lru_cache(maxsize=64)
def _select(tables: tuple[str, ...], n_keys: int) -> str:
    """One statement reading the rows of ``n_keys`` keys (``?1``...) from every one of ``tables``.

    One key selects ``feature_name, value``; more select ``entity_key`` first.

    >>> _select(("a",), 2)
    'SELECT entity_key, feature_name, value FROM "a" WHERE entity_key IN (?1,?2)'
    >>> for part in _select(("a", "b"), 1).split(" UNION ALL "):
    ...     print(part)
    SELECT feature_name, value FROM "a" WHERE entity_key = ?1
    SELECT feature_name, value FROM "b" WHERE entity_key = ?1
    """
    if n_keys == 1:
        columns, match = "feature_name, value", "= ?1"
    else:
        columns = "entity_key, feature_name, value"
        match = f"IN ({','.join(f'?{i}' for i in range(1, n_keys + 1))})"
    return " UNION ALL ".join(
        f'SELECT {columns} FROM "{table}" WHERE entity_key {match}' for table in tables
    )


#: Keys from which a read of many is packed per key by SQLite and decoded in bulk; fewer keys
#: are read row by row, which costs them less than the bulk decoder's fixed steps.
PACKED_MIN_KEYS = 32


def cover_index(table: str) -> str:
    """The covering index of an online table: ``(entity_key, feature_name, value)``.

    Feast's tables hold a row per (key, feature) with the value, its text, timestamps and a
    spare vector column; with this index a packed read walks index entries only, with no
    lookup of the table row behind each. :func:`features.store.materialize` creates it after
    Feast writes, and SQLite keeps it current through Feast's later upserts. A store without
    it is still read, through the primary-key index.

    It is a partial index (``WHERE value IS NOT NULL``, which every row Feast writes meets) so
    that only statements naming that condition use it: Feast's own read, which also wants
    ``event_ts``, keeps walking its ``entity_key`` index (given a full index, SQLite picks this
    one and its table lookups come in name order rather than row order, a slower read).
    """
    return f"{table}_cover"


def add_cover_indexes(path: Path | str, tables: Iterable[str]) -> list[str]:
    """Create the :func:`cover_index` of each of ``tables`` that exists in the SQLite store at
    ``path`` and lacks it; the names of the tables indexed now.

    Idempotent (``IF NOT EXISTS``): each index is committed as it is built, so a run cut short
    leaves whole indexes, and the next run adds the missing ones.
    """
    conn = sqlite3.connect(path)
    try:
        with conn:
            existing = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            indexes = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            }
            added = []
            for table in tables:
                if table in existing and cover_index(table) not in indexes:
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "{cover_index(table)}" '
                        f'ON "{table}" (entity_key, feature_name, value) WHERE value IS NOT NULL'
                    )
                    added.append(table)
        return added
    finally:
        conn.close()


@functools.lru_cache(maxsize=64)
def _packed_select(table: str, n_keys: int, n_names: int, index: str) -> str:
    """One statement packing, per key, the values of ``n_names`` features (``?n_keys+1``...).

    It gives one row per key (``?1``...), in the order of the keys, holding: the key's values
    concatenated when it has a row for every name; ``NULL`` when it has none; an empty blob
    when it has some but not all (to be read row by row). The rows are walked in the order of
    ``index``, which starts with (entity_key, feature_name): the covering index
    (:func:`cover_index`), or else the primary-key index. ``group_concat`` follows that order,
    so a key's i-th value is that of the i-th name in sorted order. An empty value (a null)
    becomes ``NULL_VALUE``, which keeps its place in the packed bytes. Only rows holding a
    value are walked, as every row Feast writes does: that is the covering index's condition.

    >>> print(_packed_select("t", 2, 1, "t_cover"))  # doctest: +NORMALIZE_WHITESPACE
    SELECT (SELECT CASE count(*) WHEN 1 THEN CAST(group_concat(CASE WHEN length(value)
    THEN value ELSE x'980100' END, '') AS BLOB) WHEN 0 THEN NULL ELSE x'' END
    FROM "t" INDEXED BY "t_cover" WHERE entity_key = k.column1 AND value IS NOT NULL
    AND +feature_name IN (?3)) FROM (VALUES (?1),(?2)) AS k
    """
    keys = ",".join(f"(?{i})" for i in range(1, n_keys + 1))
    names = ",".join(f"?{i}" for i in range(n_keys + 1, n_keys + n_names + 1))
    value = f"CASE WHEN length(value) THEN value ELSE x'{NULL_VALUE.hex()}' END"
    packed = (
        f"CASE count(*) WHEN {n_names} THEN CAST(group_concat({value}, '') AS BLOB) "
        "WHEN 0 THEN NULL ELSE x'' END"
    )
    # One aggregate per key rather than a GROUP BY over all keys: no key comparison per row,
    # and the rows come back in the keys' order. SQLite tests "value IS NOT NULL" on no row
    # of the covering index, whose condition it is. The unary + keeps the name test a filter
    # on the index walk, not one seek per name.
    return (
        f'SELECT (SELECT {packed} FROM "{table}" INDEXED BY "{index}" '
        f"WHERE entity_key = k.column1 AND value IS NOT NULL AND +feature_name IN ({names})) "
        f"FROM (VALUES {keys}) AS k"
    )


@dataclass(frozen=True, slots=True)
class _PackedLayout:
    """Where each requested feature sits in a packed read.

    ``tables`` holds, per table, the requested names it stores in sorted order (the order of
    the packed values) and their defaults; ``order`` gives the place of each of ``names`` in
    those tables' names laid end to end; ``defaults`` are those of ``names``, in their order.
    """

    names: tuple[str, ...]
    tables: tuple[tuple[str, tuple[str, ...], tuple[FeatureValue, ...]], ...]
    order: tuple[int, ...]
    defaults: tuple[FeatureValue, ...]

    @classmethod
    def of(cls, names: Sequence[str], table_of: Mapping[str, str]) -> _PackedLayout:
        tables = []
        for table in sorted({table_of[name] for name in names}):
            stored = tuple(sorted({name for name in names if table_of[name] == table}))
            tables.append((table, stored, tuple(_ALL_DEFAULTS[name] for name in stored)))
        stacked = [name for _, stored, _ in tables for name in stored]
        defaults = tuple(_ALL_DEFAULTS[name] for name in names)
        return cls(tuple(names), tuple(tables), tuple(map(stacked.index, names)), defaults)


class SqliteFeatureClient(CachedFeatureClient):
    """Direct reads of Feast's SQLite online store with a bounded, explicitly stale cache.

    Parameters
    ----------
    settings
        Locates the online store file (``{data_dir}/feast/online.db``).
    features
        Feature names to return; default all.
    project
        Feast project the tables belong to.
    max_staleness
        How long a cached row may be served without checking the store for changes.
    max_entries
        Cache bound in recipients (the oldest loaded are dropped first).

    Notes
    -----
    A cold read takes the keys' prepared rows (:mod:`features.prepared`: one blob per key and
    view, which :func:`features.store.materialize` makes and triggers drop when Feast's rows
    change), one key lookup each, 500 keys per statement. Keys without them (unknown, changed
    since the last materialization, or holding a value of another form), or all keys of a
    store without them, are read from Feast's rows. Fewer than :data:`PACKED_MIN_KEYS` of
    them are read in one statement for every view together (a ``UNION ALL``), the value blobs
    of the requested features decoded through a :class:`DecodedValues` memo shared by every
    read of the client. More have SQLite pack each key's values into one blob per view
    (:func:`_packed_select`), per 500 keys in key order, decoded all at once
    (:mod:`features.packed_values`); a key whose rows are incomplete or hold a form the bulk
    decoder leaves to protobuf is read row by row. Packed reads walk the covering index
    (:func:`cover_index`) that :func:`features.store.materialize` adds, which holds every
    column they read, or, in a store without it, Feast's primary-key index and a table lookup
    per value.

    Every thread reads rows on a connection of its own, so a read is :attr:`interruptible`:
    inside :class:`inboxlab.sqlite_deadline.statement_deadline` SQLite stops it at the
    deadline, on the reading thread (the render path's time budget, :mod:`serving.budget`).
    One shared connection checks the store's version and looks up its schema.
    """

    #: Reads stop themselves at a thread's statement deadline (see the class notes).
    interruptible = True

    def __init__(
        self,
        settings: Settings,
        features: Sequence[str] | None = None,
        *,
        project: str = "inboxlab",
        max_staleness: timedelta = timedelta(seconds=5),
        max_entries: int = 1_000_000,
    ) -> None:
        from features.store import online_db_path

        self.features = check_features(features)
        self._decoded = DecodedValues(value_message())
        path = online_db_path(settings)
        if not path.exists():
            raise StoreError(f"no online store at {path}; run `inboxlab features materialize`")
        self._uri = f"file:{path}?mode=ro"
        # Read-only. This one is shared by every thread (SQLite serializes access itself) for
        # the version check and schema look-ups; rows are read on each thread's own
        # connection (_reader), which a statement deadline may watch.
        self._conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        self._readers = ConnectionPerThread(
            lambda: sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        )
        # A second connection on a thread of its own, opened at the first read of a chunk of
        # keys or more: it runs half of the read's statements while the calling thread runs
        # the other half (see _packed_rows).
        self._second: tuple[ThreadPoolExecutor, sqlite3.Connection] | None = None
        self._second_lock = threading.Lock()
        self._closed = False
        views = sorted({VIEW_OF_FEATURE[f] for f in self.features})
        self._tables = tuple(f"{project}_{view}" for view in views)
        self._max_staleness = max_staleness.total_seconds()
        self._cache = RowCache(max_entries)
        self._variant_cache = RowCache(max_entries)
        self._errors = (sqlite3.Error,)
        self._store_name = "online store"
        self._variant_table = f"{project}_{VARIANT_VIEW}"
        self._variant_table_exists: bool | None = None  # looked up once per store version
        table_of = {name: f"{project}_{VIEW_OF_FEATURE[name]}" for name in self.features}
        self._layout = _PackedLayout.of(self.features, table_of)
        self._variant_layout = _PackedLayout.of(
            VARIANT_FEATURES, dict.fromkeys(VARIANT_FEATURES, self._variant_table)
        )
        self._packed_via: dict[str, str | None] = {}  # per table, once per store version
        self._prepared = PreparedReader(self._conn, table_of)
        self._prepared.check()
        self._checked_at = 0.0
        self._data_version = self._version()

    def close(self) -> None:
        """Close the SQLite connections; a read after this fails with ``StoreError``."""
        with self._second_lock:
            self._closed = True
            if self._second is not None:
                pool, conn = self._second
                pool.shutdown(wait=True)
                conn.close()
                self._second = None
        self._readers.close(reopen=False)
        self._conn.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for reading rows (see :class:`ConnectionPerThread`)."""
        return self._readers.get()

    def _packed_rows(
        self, statements: Sequence[tuple[str, list[Any]]], *, parallel: bool
    ) -> list[bytes | None]:
        """The first column of every row of ``statements``, in order. With ``parallel`` and
        several statements the later half runs on the second connection's thread at the same
        time: SQLite runs without the GIL, so a large read uses two cores. (A small read, such
        as a group of single decisions, stays on one thread: the hand-off would cost more
        than it saves, and a busy server's other core is taken anyway.)

        Each statement is its own read of the store (as the statements of one connection
        are): a key's rows of one table always come from one statement.
        """
        reader = self._reader()
        # Under a statement deadline the read stays on this thread: the second connection's
        # thread has none, and waiting for it would not be bounded.
        if not parallel or len(statements) < 2 or deadline_active():
            return [blob for sql, args in statements for (blob,) in reader.execute(sql, args)]
        half = len(statements) // 2
        pool, conn = self._second_connection()

        def read(conn: sqlite3.Connection, part: Sequence[tuple[str, list[Any]]]) -> list[Any]:
            return [blob for sql, args in part for (blob,) in conn.execute(sql, args)]

        try:
            later = pool.submit(read, conn, statements[half:])
        except RuntimeError as exc:  # shut down by close() since it was handed out
            raise sqlite3.ProgrammingError("the online store client is closed") from exc
        first = read(reader, statements[:half])
        return first + later.result()

    def _second_connection(self) -> tuple[ThreadPoolExecutor, sqlite3.Connection]:
        with self._second_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the online store client is closed")
            if self._second is None:
                conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
                pool = ThreadPoolExecutor(1, thread_name_prefix="online-read")
                self._second = (pool, conn)
            return self._second

    def _version(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _revalidate(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._max_staleness:
            return
        self._checked_at = now
        version = self._version()
        if version != self._data_version:
            self._data_version = version
            self._cache.clear()
            self._variant_cache.clear()
            self._variant_table_exists = None
            self._packed_via.clear()
            self._prepared.check()

    def _key(self, recipient_id: str) -> bytes:
        return entity_key(recipient_id)

    def _rows(self, tables: tuple[str, ...], keys: list[bytes]) -> dict[bytes, list[Row]]:
        """The rows ``(..., feature_name, value)`` of each of ``keys`` in ``tables``."""
        execute = self._reader().execute
        if len(keys) == 1:
            return {keys[0]: execute(_select(tables, 1), keys).fetchall()}
        found: dict[bytes, list[Row]] = {key: [] for key in keys}
        for chunk in key_chunks(keys, KEYS_PER_STATEMENT):
            rows = execute(_select(tables, len(chunk)), chunk).fetchall()
            # A key's rows come in one run per table: add them by run, not row by row.
            for key, run in groupby(rows, itemgetter(0)):
                found[key].extend(run)
        return found

    def _fill(
        self, rows: list[Row], names: tuple[str, ...], defaults: tuple[FeatureValue, ...]
    ) -> FeatureRow:
        """The row of ``names`` from their ``rows``: values decoded, missing or null defaulted."""
        if not rows:
            return dict(zip(names, defaults, strict=True))
        *_, got, blobs = zip(*rows, strict=True)
        if got != names:  # not exactly these features in this order: pick them by name
            by_name = dict(zip(got, blobs, strict=True))
            blobs = tuple(map(by_name.get, names, repeat(b"")))  # b"": no value, so null
        values = list(map(self._decoded.__getitem__, blobs))
        if None not in values:  # complete: nothing to default
            return dict(zip(names, cast(list[FeatureValue], values), strict=True))
        return {
            name: default if value is None else value
            for name, value, default in zip(names, values, defaults, strict=True)
        }

    def _load(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        with watched(self._reader()):
            return self._load_rows(recipient_ids)

    def _load_rows(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        keys = [self._key(rid) for rid in recipient_ids]
        prepared = self._prepared.read(keys, self._reader())
        if len(prepared) == len(keys):
            return dict(zip(recipient_ids, map(prepared.__getitem__, keys), strict=True))
        # Recipients without a prepared row (unknown, changed since the last materialization,
        # a value of another form, or a store without them): packed when they are many, else
        # row by row.
        rest = [key for key in keys if key not in prepared]
        packed = self._read_packed(rest, self._layout)
        if packed is not None:
            found = dict(zip(rest, packed, strict=True))
        else:
            rows = self._rows(self._tables, rest)
            names, defaults = self.features, self._defaults
            found = {key: self._fill(rows[key], names, defaults) for key in rest}
        return {
            rid: prepared[key] if key in prepared else found[key]
            for rid, key in zip(recipient_ids, keys, strict=True)
        }

    def _packs(self, keys: Sequence[bytes], layout: _PackedLayout) -> tuple[str, ...] | None:
        """The index to walk in each of ``layout``'s tables to read ``keys`` packed, or
        ``None`` to read them row by row: too few keys, or a table that does not walk as
        planned."""
        if len(keys) < PACKED_MIN_KEYS:
            return None
        indexes = []
        for table, names, _ in layout.tables:
            index = self._packed_index(table, names)
            if index is None:
                return None
            indexes.append(index)
        return tuple(indexes)

    def _packed_index(self, table: str, names: tuple[str, ...]) -> str | None:
        """The index a packed read of ``table`` walks, or ``None`` to read it row by row.

        Checked once per table and store version: the covering index if SQLite walks it
        alone, else the primary-key index (a store Feast wrote without it), and each only
        if SQLite walks it without sorting (no temporary B-tree), so the packed values are
        in name order.
        """
        if table not in self._packed_via:
            # Read from the schema first: an EXPLAIN alone may be served by a statement
            # prepared before another connection dropped or added an index.
            present = {
                name
                for (name,) in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                    (table,),
                )
            }
            chosen: str | None = None
            for index, step in (
                (cover_index(table), "USING COVERING INDEX"),
                (f"sqlite_autoindex_{table}_1", "USING INDEX"),
            ):
                if index not in present:
                    continue
                plan = self._conn.execute(
                    "EXPLAIN QUERY PLAN " + _packed_select(table, 2, len(names), index),
                    [b"", b"\x00", *names],
                ).fetchall()
                steps = " ".join(str(row[-1]) for row in plan)
                if f"{step} {index}" in steps and "TEMP B-TREE" not in steps:
                    chosen = index
                    break
            # Set once, whole: another thread reads it at any time, and a revalidation may
            # clear the dict meanwhile.
            self._packed_via[table] = chosen
            return chosen
        return self._packed_via.get(table)

    def _read_packed(self, keys: Sequence[bytes], layout: _PackedLayout) -> list[FeatureRow] | None:
        """The rows of ``keys`` read packed, or ``None`` to read them row by row: too few keys,
        a table that does not walk as planned, or an index dropped since it was chosen (a
        table Feast re-created: the choice is made again at the next read)."""
        indexes = self._packs(keys, layout)
        if indexes is None:
            return None
        try:
            return self._load_packed(keys, layout, indexes)
        except sqlite3.OperationalError as exc:
            if "no such index" not in str(exc):
                raise
            self._packed_via.clear()
            return None

    def _load_packed(
        self, keys: Sequence[bytes], layout: _PackedLayout, indexes: Sequence[str]
    ) -> list[FeatureRow]:
        """The rows of ``keys``: packed per key by SQLite walking ``indexes`` (one per table
        of ``layout``), decoded in bulk.

        Keys the bulk decoder leaves aside (incomplete rows, another value form) are read
        row by row, so every row is what protobuf and the defaults give.
        """
        # Keys in sorted order: neighbours share the index's pages.
        order = np.array(sorted(range(len(keys)), key=keys.__getitem__), np.int64)
        ordered = [keys[i] for i in order.tolist()]
        slow = np.zeros(len(keys), np.bool_)
        blocks = []
        statements = [
            (_packed_select(table, len(chunk), len(names), index), [*chunk, *names])
            for (table, names, _), index in zip(layout.tables, indexes, strict=True)
            for chunk in key_chunks(ordered, KEYS_PER_STATEMENT)
        ]
        blobs = self._packed_rows(statements, parallel=len(keys) >= KEYS_PER_STATEMENT)
        for t, (_, names, defaults) in enumerate(layout.tables):
            packed = blobs[t * len(keys) : (t + 1) * len(keys)]
            # A key with no row here (None) keeps the defaults; one with some of the rows (an
            # empty blob) is not decoded: it is read row by row.
            held = [i for i, blob in enumerate(packed) if blob is not None]
            values, ok = decode_packed([blob for blob in packed if blob is not None], defaults)
            at = order[held]
            slow[at[~ok]] = True
            block = np.empty((len(names), len(keys)), np.object_)
            for k, default in enumerate(defaults):
                block[k] = default
            block[:, at[ok]] = values[:, ok]
            blocks.append(block)
        columns = np.concatenate(blocks)[list(layout.order)].tolist()
        rows = list(map(dict, map(zip, repeat(layout.names), zip(*columns, strict=True))))
        if slow.any():
            redo = [keys[i] for i in np.flatnonzero(slow).tolist()]
            tables = tuple(table for table, _, _ in layout.tables)
            by_key = self._rows(tables, redo)
            for i in np.flatnonzero(slow).tolist():
                rows[i] = self._fill(by_key[keys[i]], layout.names, layout.defaults)
        return rows

    def _has_variant_table(self) -> bool:
        """Whether the store has the per-variant table (looked up once per store version)."""
        if self._variant_table_exists is None:
            found = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (self._variant_table,),
            ).fetchone()
            self._variant_table_exists = found is not None
        return self._variant_table_exists

    def _load_variants(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], FeatureRow]:
        with watched(self._reader()):
            return self._load_variant_rows(pairs)

    def _load_variant_rows(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], FeatureRow]:
        keys = [variant_entity_key(rid, vid) for rid, vid in pairs]
        # An online store applied before the view existed has no table: every pair is unknown.
        exists = self._has_variant_table()
        packed = self._read_packed(keys, self._variant_layout) if exists else None
        if packed is not None:
            return dict(zip(pairs, packed, strict=True))
        found = self._rows((self._variant_table,), keys) if exists else {}
        defaults = self._variant_defaults
        rows = {
            pair: self._fill(found.get(key, []), VARIANT_FEATURES, defaults)
            for pair, key in zip(pairs, keys, strict=True)
        }
        return rows
