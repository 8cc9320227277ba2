"""Feature engineering: DuckDB SQL over the event log → Parquet feature tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from features.engineering.context import LocalContext, local_context, valid_timezone
from features.engineering.tables import (
    DEFAULTS,
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    FEATURE_TABLES,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    FeatureValue,
    table_dir,
)

__all__ = [
    "DEFAULTS",
    "ENGAGEMENT_FEATURES",
    "ENGAGEMENT_TABLE",
    "FEATURE_TABLES",
    "SEND_TIME_FEATURES",
    "SEND_TIME_TABLE",
    "BuildResult",
    "FeatureValue",
    "LocalContext",
    "build_features",
    "existing_days",
    "local_context",
    "table_dir",
    "valid_timezone",
]

if TYPE_CHECKING:
    from features.engineering.build import BuildResult, build_features, existing_days

#: Loaded on first use: the build brings DuckDB and the event log's importer, which the
#: serving path (it reads only the tables' names and defaults) has no use for.
_BUILD = frozenset({"BuildResult", "build_features", "existing_days"})


def __getattr__(name: str) -> Any:
    if name in _BUILD:
        from features.engineering import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
