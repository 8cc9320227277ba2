"""The request-time columns derived from stored features, in training as in serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.engineering.tables import (
    DEFAULTS,
    SEND_TIME_FEATURES,
    VARIANT_DEFAULTS,
    VARIANT_FEATURES,
)
from training.context import PROFILE_COLUMNS, engagement_rows
from training.dataset import add_context_features, model_columns, model_frame, service_features
from training.specs import spec_for


def _frame(local_hours: list[int]) -> pd.DataFrame:
    row = {name: DEFAULTS[name] for name in SEND_TIME_FEATURES}
    row.update({f"send_hour_rate_{h:02d}": h / 100 for h in range(0, 24, 3)})
    row.update({f"late_open_hour_{h:02d}": float(h == 19) for h in range(24)})
    frame = pd.DataFrame([row] * len(local_hours))
    frame["local_hour"] = local_hours
    frame["local_weekday"] = 0
    return frame


@pytest.mark.parametrize(
    ("local_hour", "rate"), [(0, 0.0), (2, 0.0), (3, 0.03), (11, 0.09), (23, 0.21)]
)
def test_send_hour_rate_is_the_rate_of_the_local_hours_bucket(local_hour: int, rate: float) -> None:
    out = add_context_features(_frame([local_hour]))
    assert out["send_hour_rate"].iloc[0] == pytest.approx(rate)


def test_late_hour_affinity_counts_the_hour_and_its_neighbours() -> None:
    out = add_context_features(_frame([17, 18, 19, 20, 21]))
    assert out["late_hour_affinity"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def _engagement_frame() -> pd.DataFrame:
    """Three sends of one recipient, one per variant, with stored features as retrieved."""
    spec = spec_for("engagement")
    stored = service_features(spec.feature_service)
    row = {name: {**DEFAULTS, **VARIANT_DEFAULTS}[name] for name in stored}
    row.update({f"open_hour_{h:02d}": 0.5 if h == 9 else 0.5 / 23 for h in range(24)})
    row.update({"click_rate_90d": 0.04, "opens_90d": 5})
    frame = pd.DataFrame([row] * 3)
    frame["variant_id"] = ["v0", "v1", "v2"]
    frame["variant_deliveries_90d"] = [6, 0, 3]
    frame["variant_click_rate_90d"] = [0.08, 0.0, 0.02]
    frame["local_hour"] = 9
    frame["local_weekday"] = 2
    return frame


def test_engagement_row_has_every_model_column_and_no_profile() -> None:
    spec = spec_for("engagement")
    numeric, categorical = model_columns(spec)
    out = model_frame(spec, _engagement_frame())
    assert set(numeric) | set(categorical) <= set(out.columns)
    assert not set(PROFILE_COLUMNS) & set(numeric)
    assert {"hour_affinity", "variant_click_lift", "variant_clicks_90d"} <= set(numeric)
    assert categorical == ("variant_id",)
    assert out["hour_affinity"].tolist() == [0.5, 0.5, 0.5]
    # The pair's rate over the person's: 2x, no deliveries of v1 (no evidence), half.
    assert out["variant_click_lift"].tolist() == pytest.approx([2.0, 1.0, 0.5])


def test_serving_rows_equal_the_training_rows() -> None:
    spec = spec_for("engagement")
    numeric, _ = model_columns(spec)
    frame = _engagement_frame()
    trained = model_frame(spec, frame)
    recipient = {c: frame[c].iloc[0] for c in frame.columns if c not in VARIANT_FEATURES}
    variants = {
        v: {c: frame[c].iloc[i] for c in VARIANT_FEATURES}
        for i, v in enumerate(frame["variant_id"])
    }
    served = engagement_rows(recipient, variants, local_hour=9, local_weekday=2)
    assert served["variant_id"] == trained["variant_id"].tolist()
    for name in numeric:
        assert np.asarray(served[name], dtype=float).tolist() == pytest.approx(
            trained[name].to_numpy(dtype=float).tolist()
        ), name
