"""Feature rows of many recipients as one numeric matrix: built once per chunk of a batch,
read by every model and by the send-time profile."""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from features.engineering.tables import DEFAULTS
from features.online import FeatureRow

__all__ = ["FeatureBlock"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which names of a row are text and where the numeric ones go in the matrix."""

    text: list[str]
    numeric: list[str]
    position: dict[str, int]
    take: Callable[[FeatureRow], Any] | None

    @classmethod
    def of(cls, first: FeatureRow) -> _Layout:
        # Rows of one client share names and types: the layout is worked out once per kind
        # of row, not once per block (a single decision builds a block of one row).
        key = (tuple(first), tuple(map(type, first.values())))
        found = _LAYOUTS.get(key)
        if found is None:
            text = [n for n, v in first.items() if isinstance(v, str)]
            numeric = [n for n in first if n not in text]
            position = {n: j for j, n in enumerate(numeric)}
            found = cls(text, numeric, position, itemgetter(*numeric) if numeric else None)
            if len(_LAYOUTS) > 64:
                _LAYOUTS.clear()
            _LAYOUTS[key] = found
        return found


_LAYOUTS: dict[tuple[tuple[str, ...], tuple[type, ...]], _Layout] = {}


class FeatureBlock:
    """Feature rows of distinct recipients as one numeric matrix plus text lists."""

    def __init__(self, rows: Sequence[FeatureRow]) -> None:
        #: The rows themselves (read-only), for callers that encode a few rows directly.
        self.rows = rows
        layout = _Layout.of(rows[0] if rows else {})
        self.text = layout.text
        self.numeric = layout.numeric
        self.position = layout.position
        self.matrix = self._numbers(rows, layout.take)
        self.strings = {n: [r.get(n) for r in rows] for n in self.text}
        self._positions: dict[tuple[str, ...], list[int | None]] = {}

    def _numbers(self, rows: Sequence[FeatureRow], take: Any) -> FloatArray:
        names = self.numeric
        if not names:
            return np.empty((len(rows), 0))
        try:  # every row has every name (the clients fill defaults): one C-level call a row
            values = [take(r) for r in rows] if len(names) > 1 else [(take(r),) for r in rows]
        except KeyError:
            values = [tuple(r.get(n) for n in names) for r in rows]
        return np.array(values, dtype=np.float64).reshape(len(rows), len(names))

    def columns(self, index: IntArray, names: Container[str] | None = None) -> dict[str, Any]:
        """Named columns of the rows at ``index``: numeric as float arrays, text as lists;
        only ``names`` when given."""
        if names is None:
            numeric, sub = self.numeric, self.matrix[index]
        else:
            numeric = [n for n in self.numeric if n in names]
            sub = self.matrix[index][:, [self.position[n] for n in numeric]]
        # Each column a view: the rows of the transpose, produced by iteration in C rather
        # than one slice call per name.
        out: dict[str, Any] = dict(zip(numeric, sub.T, strict=True))
        for name in self.text:
            if names is None or name in names:
                values = self.strings[name]
                out[name] = [values[i] for i in index.tolist()]
        return out

    def profile(self, names: Sequence[str], index: IntArray, default: float | None) -> FloatArray:
        """``float(row.get(name, fallback))`` of each name for the rows at ``index``.

        ``default`` None: a missing name takes its documented default; otherwise ``default``,
        and null or zero values count as zero (the profile fallback of the single path).
        """
        key = tuple(names)
        positions = self._positions.get(key)
        if positions is None:
            positions = self._positions[key] = [self.position.get(n) for n in key]
        if None not in positions:  # one gather for every name
            out = self.matrix[index][:, cast(list[int], positions)]
        else:
            out = np.empty((len(index), len(names)))
            for j, (name, k) in enumerate(zip(key, positions, strict=True)):
                if k is None:
                    out[:, j] = DEFAULTS[name] if default is None else default
                else:
                    out[:, j] = self.matrix[index, k]
        return out if default is None else np.nan_to_num(out, nan=0.0)
