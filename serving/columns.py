"""Feature rows of many recipients as one numeric matrix: built once per chunk of a batch,
read by every model and by the send-time profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from features.engineering.tables import DEFAULTS
from features.online import FeatureRow

__all__ = ["FeatureBlock", "value_rows", "values_of"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def values_of(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``mapping -> (mapping[name] for name in names)`` as a tuple, in one C-level call
    (``KeyError`` when a name is missing): ``operator.itemgetter``, which gives a bare value
    for a single name, made uniform.

    >>> values_of(["b", "a"])({"a": 1, "b": 2}), values_of(["a"])({"a": 1}), values_of([])({})
    ((2, 1), (1,), ())
    """
    if len(names) == 0:
        return lambda _: ()
    if len(names) == 1:
        (name,) = names
        return lambda mapping: (mapping[name],)
    return itemgetter(*names)


def value_rows(
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    take: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None,
) -> list[tuple[Any, ...]]:
    """Each row's values of ``names``, ``None`` for a missing one. Rows from the store hold
    every feature (the clients fill defaults): one C-level call a row through ``take``
    (default :func:`values_of` of ``names``); a partial row sends them all name by name.

    >>> value_rows(["a", "b"], [{"a": 1, "b": 2}]), value_rows(["a", "b"], [{"a": 1}])
    ([(1, 2)], [(1, None)])
    """
    try:
        return list(map(take or values_of(names), rows))
    except KeyError:
        return [tuple(r.get(n) for n in names) for r in rows]


class FeatureBlock:
    """Feature rows of distinct recipients as one numeric matrix plus text lists."""

    def __init__(self, rows: Sequence[FeatureRow]) -> None:
        first = rows[0] if rows else {}
        self.text = [n for n, v in first.items() if isinstance(v, str)]
        self.numeric = [n for n in first if n not in self.text]
        self.position = {n: j for j, n in enumerate(self.numeric)}
        self.matrix = self._numbers(rows)
        self.strings = {n: [r.get(n) for r in rows] for n in self.text}

    def _numbers(self, rows: Sequence[FeatureRow]) -> FloatArray:
        names = self.numeric
        if not names:
            return np.empty((len(rows), 0))
        values = value_rows(names, rows)
        return np.array(values, dtype=np.float64).reshape(len(rows), len(names))

    def columns(self, index: IntArray) -> dict[str, Any]:
        """Named columns of the rows at ``index``: numeric as float arrays, text as lists."""
        sub = self.matrix[index]
        out: dict[str, Any] = {n: sub[:, j] for j, n in enumerate(self.numeric)}
        for name in self.text:
            values = self.strings[name]
            out[name] = [values[i] for i in index.tolist()]
        return out

    def profile(self, names: Sequence[str], index: IntArray, default: float | None) -> FloatArray:
        """``float(row.get(name, fallback))`` of each name for the rows at ``index``.

        ``default`` None: a missing name takes its documented default; otherwise ``default``,
        and null or zero values count as zero (the profile fallback of the single path).
        """
        out = np.empty((len(index), len(names)))
        for j, name in enumerate(names):
            k = self.position.get(name)
            if k is None:
                out[:, j] = DEFAULTS[name] if default is None else default
            else:
                out[:, j] = self.matrix[index, k]
        return out if default is None else np.nan_to_num(out, nan=0.0)
