from __future__ import annotations

import numpy as np

from features.engineering.tables import SEND_HOUR_RATES
from training.context import (
    LATE_HOURS,
    OPEN_DAYS,
    OPEN_HOURS,
    context_features,
    late_peak_features,
)


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


def test_profiles_given_once_per_owner_equal_profiles_repeated_per_row() -> None:
    rng = np.random.default_rng(3)
    names = (*OPEN_HOURS, *LATE_HOURS, *OPEN_DAYS, *SEND_HOUR_RATES)
    per_owner = {n: rng.random(3) for n in names}
    per_owner["late_open_hour_05"][1] = 5.0  # one owner with a clear late peak
    for n in LATE_HOURS:  # and one with a flat late profile
        per_owner[n][2] = 0.1
    owners = np.array([0, 0, 1, 2, 1, 2, 0])
    hours = np.array([0, 23, 5, 7, 4, 12, 9])
    days = np.array([0, 6, 2, 3, 5, 1, 4])

    def once(wanted: object) -> np.ndarray:
        return np.column_stack([per_owner[n] for n in wanted])  # type: ignore[attr-defined]

    def repeated(wanted: object) -> np.ndarray:
        return once(wanted)[owners]

    shared = context_features(once, hours, days, owners)
    expected = context_features(repeated, hours, days)
    assert shared.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(shared[name], values, err_msg=name)
