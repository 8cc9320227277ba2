"""Feature engineering: DuckDB SQL over the event log → Parquet feature tables."""

from __future__ import annotations

from features.engineering.build import BuildResult, build_features, existing_days
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
