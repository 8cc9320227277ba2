"""How a decision's features are stored: a layout id and the values, the names kept once.

Every decision stores the features it used. As a JSON object, the demo's 109 features took
3.4 KB a row, over half of it the names, the same in every row, and writing them was the
largest cost of a batch decision. A row now stores a JSON array: the id of its *layout* (the
ordered feature names) and then the values, 1.6 KB for the same row::

    ["fl:8c1e5f3b2a9d4e07", 2, 2, 0.67535, ..., "Asia/Kolkata"]

The ``feature_layouts`` table keeps each layout's names once; the insert that first uses a
layout stores it in the same transaction, so a stored row never names a missing layout. A
layout id is a digest of the names, so every process and replica derives the same id.

Rows stored as JSON objects (before this encoding, or an empty feature set) read back as they
are: :func:`decode_features` accepts both.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from inboxlab.errors import StoreError
from serving.store.engine import json_compact
from serving.store.schema import feature_layouts
from serving.store.stats import insert_for

__all__ = [
    "LAYOUT_PREFIX",
    "Layout",
    "add_layouts",
    "add_layouts_sqlite",
    "decode_features",
    "distinct_layouts",
    "encode_features",
    "feature_values",
    "layout_of",
    "stored_layouts",
]

#: First characters of a layout id, which tell a compact row from any other JSON array.
LAYOUT_PREFIX = "fl:"


@dataclass(frozen=True, slots=True)
class Layout:
    """An ordered list of feature names, under the id its rows name."""

    layout_id: str
    names: tuple[str, ...]
    #: The names as the JSON text stored, made once: every group commit stores its layouts.
    names_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names_json", json.dumps(list(self.names)))


_layouts: dict[tuple[str, ...], Layout] = {}
_lock = threading.Lock()


def layout_of(names: Iterable[str]) -> Layout:
    """The layout of ``names`` in this order (made once per process, then looked up)."""
    key = tuple(names)
    found = _layouts.get(key)
    if found is not None:
        return found
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:16]
    layout = Layout(LAYOUT_PREFIX + digest, key)
    with _lock:
        if len(_layouts) > 1_000:  # layouts are few (one per feature service); bound them anyway
            _layouts.clear()
        return _layouts.setdefault(key, layout)


def feature_values(features: Mapping[str, Any]) -> tuple[list[Any] | dict[str, Any], Layout | None]:
    """The JSON value stored for ``features`` and the layout it names (None for no features)."""
    if not features:
        return {}, None
    layout = layout_of(features)
    return [layout.layout_id, *features.values()], layout


def encode_features(features: Mapping[str, Any]) -> tuple[str, Layout | None]:
    """``features`` as stored JSON text (NaN kept, NumPy scalars as plain values), and the
    layout it names."""
    value, layout = feature_values(features)
    return json_compact(value), layout


def is_compact(value: Any) -> bool:
    """Whether a stored (decoded JSON) value is a layout id followed by values."""
    return (
        isinstance(value, list)
        and len(value) > 0
        and isinstance(value[0], str)
        and value[0].startswith(LAYOUT_PREFIX)
    )


def decode_features(value: Any, names: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The features of a stored row, as a mapping of name to value.

    ``value`` is the column's decoded JSON; ``names`` maps layout ids to their names (the
    ``feature_layouts`` table). Rows stored as objects are returned as they are.

    Raises :class:`~inboxlab.errors.StoreError` when the row names a layout that is not
    stored or holds another number of values than its layout has names.
    """
    if isinstance(value, Mapping):
        return dict(value)
    if not is_compact(value):
        raise StoreError(f"stored features are neither an object nor a layout row: {value!r:.80}")
    layout_id = value[0]
    found = names.get(layout_id)
    if found is None:
        raise StoreError(f"stored features name the unknown layout {layout_id!r}")
    if len(found) != len(value) - 1:
        raise StoreError(
            f"stored features hold {len(value) - 1} values for the {len(found)} names "
            f"of layout {layout_id!r}"
        )
    return dict(zip(found, value[1:], strict=True))


_SQLITE_ADD_LAYOUT = (
    "INSERT INTO feature_layouts (layout_id, names) VALUES (?, ?) "
    "ON CONFLICT (layout_id) DO NOTHING"
)


def add_layouts(conn: Connection, layouts: Iterable[Layout | None]) -> None:
    """Store ``layouts`` not stored yet, in the transaction of ``conn`` (any database)."""
    rows = [{"layout_id": x.layout_id, "names": list(x.names)} for x in distinct_layouts(layouts)]
    if rows:
        statement = insert_for(conn.dialect.name, feature_layouts).on_conflict_do_nothing()
        conn.execute(statement, rows)


def add_layouts_sqlite(cursor: Any, layouts: Iterable[Layout | None]) -> None:
    """:func:`add_layouts` on a DB-API cursor of SQLite, inside its open transaction."""
    rows = [(x.layout_id, x.names_json) for x in distinct_layouts(layouts)]
    if rows:
        cursor.executemany(_SQLITE_ADD_LAYOUT, rows)


def distinct_layouts(layouts: Iterable[Layout | None]) -> tuple[Layout, ...]:
    """Each layout of ``layouts`` once, in first-seen order (``None`` skipped)."""
    return tuple({x.layout_id: x for x in layouts if x is not None}.values())


def stored_layouts(conn: Connection, values: Iterable[Any]) -> dict[str, list[str]]:
    """The names of every layout that the stored feature values ``values`` name."""
    ids = sorted({v[0] for v in values if is_compact(v)})
    if not ids:
        return {}
    query = select(feature_layouts.c.layout_id, feature_layouts.c.names).where(
        feature_layouts.c.layout_id.in_(ids)
    )
    return {layout_id: list(names) for layout_id, names in conn.execute(query)}
