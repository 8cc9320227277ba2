"""Feast feature views over the feature tables, and the request-time on-demand view.

TTLs are two days: snapshots are daily, so a row older than that means the build stopped;
retrieval then returns the cold-start defaults instead of stale numbers (a TTL also keeps
Feast's point-in-time join bounded, which matters for its speed). The per-variant view is the
exception: its rows are written only when a pair's values change, so its TTL is
:data:`~features.engineering.tables.VARIANT_TTL` (91 days, see
:mod:`features.engineering.variant`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feast import FeatureView, Field, FileSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    SEND_TIME_FEATURES,
    VARIANT_FEATURES,
    VARIANT_TTL,
    feature_type,
)
from features.feature_repo.entities import recipient, variant
from features.feature_repo.sources import (
    engagement_source,
    request_context,
    send_time_source,
    variant_source,
)

__all__ = [
    "SNAPSHOT_TTL",
    "engagement",
    "make_engagement_view",
    "make_send_time_view",
    "make_variant_view",
    "request_time",
    "send_time",
    "variant_history",
]

SNAPSHOT_TTL = timedelta(days=2)


def _dtype(name: str) -> Any:
    return {str: String, float: Float64, int: Int64}[feature_type(name)]


def make_engagement_view(source: FileSource) -> FeatureView:
    """Engagement, fatigue, RFM and tenure per recipient."""
    return FeatureView(
        name="recipient_engagement",
        entities=[recipient],
        ttl=SNAPSHOT_TTL,
        schema=[Field(name=n, dtype=_dtype(n)) for n in ENGAGEMENT_FEATURES],
        source=source,
        online=True,
        description="Engagement over 7/30/90 days, smoothed rates, recency, decayed score and "
        "trend, fatigue, consent state, machine-open share, RFM and tenure.",
        tags={"table": "engagement", "owner": "features"},
    )


def make_send_time_view(source: FileSource) -> FeatureView:
    """Open-time profiles, open rate by local send hour, and the time zone."""
    return FeatureView(
        name="recipient_send_time",
        entities=[recipient],
        ttl=SNAPSHOT_TTL,
        schema=[Field(name=n, dtype=_dtype(n)) for n in SEND_TIME_FEATURES],
        source=source,
        online=True,
        description="Share of human opens by local hour (24) and weekday (7) over 90 days, "
        "smoothed toward the time-zone cohort; the same by local hour for late opens (2 h or "
        "more after delivery); human-open rate within 24 h of a send by local "
        "send hour (3-hour buckets) over 90 days, shrunk toward the cohort's rate; the "
        "recipient's time zone.",
        tags={"table": "send_time", "owner": "features"},
    )


def make_variant_view(source: FileSource) -> FeatureView:
    """History of each recipient with each variant."""
    return FeatureView(
        name="recipient_variant",
        entities=[recipient, variant],
        ttl=VARIANT_TTL,
        schema=[Field(name=n, dtype=_dtype(n)) for n in VARIANT_FEATURES],
        source=source,
        online=True,
        description="Per recipient and variant over 90 days: sends, deliveries, human opens, "
        "clicks, conversions; click rate per delivery and per human open, shrunk toward the "
        "variant's population rate. Rows only on the days the values change.",
        tags={"table": "recipient_variant", "owner": "features"},
    )


engagement = make_engagement_view(engagement_source)
send_time = make_send_time_view(send_time_source)
variant_history = make_variant_view(variant_source)


@on_demand_feature_view(  # type: ignore[untyped-decorator]
    sources=[request_context],
    schema=[Field(name="local_hour", dtype=Int64), Field(name="local_weekday", dtype=Int64)],
    mode="python",
    description="Local hour (0-23) and weekday (Monday = 0) of the request in its time zone.",
    tags={"owner": "features"},
)
def request_time(inputs: dict[str, Any]) -> dict[str, Any]:
    """Local hour and weekday of each request (unknown time zones count as UTC)."""
    # Feast stores the function's source and re-runs it out of this module: import inside.
    from features.engineering.context import local_context

    contexts = [
        local_context(tz, at)
        for tz, at in zip(inputs["request_timezone"], inputs["request_at"], strict=True)
    ]
    return {
        "local_hour": [c.hour for c in contexts],
        "local_weekday": [c.weekday for c in contexts],
    }
