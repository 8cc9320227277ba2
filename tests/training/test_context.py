from __future__ import annotations

import numpy as np

from training.context import LATE_HOURS, context_features, late_peak_features


def test_a_flat_late_profile_ranks_no_hour_above_another() -> None:
    window = np.full((24, 24), 3 / 24)
    out = late_peak_features(window, np.arange(24))
    assert out["late_hour_relative"].tolist() == [1.0] * 24
    assert out["late_peak_distance"].tolist() == [0.0] * 24


def test_the_distance_wraps_around_midnight_and_follows_the_late_profile() -> None:
    late = np.zeros((3, 24))
    late[:, [22, 23, 0]] = [0.25, 0.5, 0.25]  # late opens around 23:00, across midnight

    def profile(names: object) -> np.ndarray | None:
        return late if names == LATE_HOURS else None

    out = context_features(profile, np.array([23, 1, 11]), np.zeros(3, dtype=int))
    assert out["late_peak_distance"].tolist() == [0.0, 2.0, 12.0]
    assert out["late_hour_relative"].tolist() == [1.0, 0.25, 0.0]
