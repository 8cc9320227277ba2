"""The request-time columns derived from the stored send-time features."""

from __future__ import annotations

import pandas as pd
import pytest

from features.engineering.tables import DEFAULTS, SEND_TIME_FEATURES
from training.dataset import add_context_features


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
