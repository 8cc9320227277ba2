"""The result as plain JSON-ready data (``None`` for undefined numbers, ISO 8601 times)."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any

from experiments.analysis import ExperimentResult

__all__ = ["SCHEMA_VERSION", "to_dict"]

SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # strict JSON has no NaN
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_dict(result: ExperimentResult) -> dict[str, Any]:
    """A JSON-serialisable dict of every field of the result (strict JSON: no NaN).

    Examples
    --------
    >>> from experiments.analysis import analyze
    >>> from experiments.source import ExperimentData
    >>> from experiments.statistics import BinaryStatistic
    >>> data = ExperimentData(("a", "b"), {"a": 1000, "b": 1000}, {"click": "binary"},
    ...     {"click": {"a": BinaryStatistic(1000, 50), "b": BinaryStatistic(1000, 90)}})
    >>> d = to_dict(analyze(data, control="a"))
    >>> d["recommendation"]["decision"], d["primary"]["arms"][1]["arm"]
    ('ship', 'b')
    """
    out: dict[str, Any] = _plain(result)
    out["schema_version"] = SCHEMA_VERSION
    out["arms"] = list(result.arms)
    return out
