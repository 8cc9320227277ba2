"""Feature services: one per model, versioned. A new feature set is a new service."""

from __future__ import annotations

from feast import FeatureService, FeatureView, OnDemandFeatureView

from features.engineering.tables import SEND_HOUR_RATES, SEND_TIME_FEATURES
from features.feature_repo.views import engagement, request_time, send_time, variant_history

__all__ = [
    "engagement_v1",
    "engagement_v2",
    "make_services",
    "propensity_v1",
    "send_time_v1",
    "send_time_v2",
]

_PROPENSITY = [
    "conversions_30d", "conversions_90d", "revenue_30d", "revenue_90d",
    "conversion_rate_30d", "conversion_rate_90d", "click_rate_30d", "click_rate_90d",
    "days_since_last_conversion", "days_since_last_click", "conversions_total",
    "revenue_total", "avg_order_value", "engagement_score", "engagement_trend", "tenure_days",
]  # fmt: skip


#: Send-time columns the engagement model reads its hour and weekday affinities from.
_PROFILES = [
    *(f"open_hour_{h:02d}" for h in range(24)),
    *(f"open_dow_{d}" for d in range(7)),
    *(f"late_open_hour_{h:02d}" for h in range(24)),
    *SEND_HOUR_RATES,
]


def make_services(
    engagement_view: FeatureView,
    send_time_view: FeatureView,
    context: OnDemandFeatureView,
    variant_view: FeatureView,
) -> list[FeatureService]:
    """The services of every model version: engagement, send time and propensity."""
    v2_only = ("send_hour_", "late_open")
    v1_send_time = [n for n in SEND_TIME_FEATURES if not n.startswith(v2_only)]
    recent = ["opens_30d", "days_since_last_open", "engagement_score"]
    return [
        FeatureService(
            name="engagement_v1",
            features=[engagement_view, context],
            description="Features of the open/click engagement model (p_open, p_click).",
            tags={"model": "engagement", "version": "1"},
        ),
        FeatureService(
            name="send_time_v1",
            features=[send_time_view[v1_send_time], engagement_view[recent], context],
            description="Features of the send-time model: open-time profile and context.",
            tags={"model": "send-time", "version": "1"},
        ),
        FeatureService(
            name="send_time_v2",
            features=[send_time_view, engagement_view[recent], context],
            description="Features of the send-time model: open-time profiles of all and of "
            "late opens, open rate by local send hour, and context.",
            tags={"model": "send-time", "version": "2"},
        ),
        FeatureService(
            name="propensity_v1",
            features=[engagement_view[_PROPENSITY]],
            description="Features of the conversion propensity model (p_convert).",
            tags={"model": "propensity", "version": "1"},
        ),
        FeatureService(
            name="engagement_v2",
            features=[engagement_view, send_time_view[_PROFILES], variant_view, context],
            description="Features of the engagement model (p_click): engagement, the open-time "
            "profiles its hour and weekday affinities are read from at the send's local hour, "
            "and the recipient's history with the send's variant.",
            tags={"model": "engagement", "version": "2"},
        ),
    ]


engagement_v1, send_time_v1, send_time_v2, propensity_v1, engagement_v2 = make_services(
    engagement, send_time, request_time, variant_history
)
