from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from features.engineering.tables import DEFAULTS
from serving.audience import _new_ids
from serving.columns import FeatureBlock


@pytest.mark.parametrize("n", [1, 3, 8, 9, 500], ids=lambda n: f"n={n}")
def test_decision_ids_are_time_ordered_version_7_uuids(n: int) -> None:
    before = time.time_ns() // 1_000_000
    ids = _new_ids(n)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == n
    for text in ids:
        assert len(text) == 32
        value = uuid.UUID(hex=text)
        assert value.version == 7 and value.variant == uuid.RFC_4122
        assert before <= value.int >> 80 <= after
    # the random part is not constant across ids
    assert n == 1 or len({text[13:] for text in ids}) == n


def test_named_columns_are_the_full_columns_restricted() -> None:
    rows = [
        {"a": 1.0, "b": 2, "timezone": "UTC", "c": None},
        {"a": 3.5, "b": 4, "timezone": "Asia/Tokyo", "c": 0.25},
    ]
    block = FeatureBlock(rows)
    index = np.array([1, 0, 1])
    full = block.columns(index)
    some = block.columns(index, {"c", "timezone", "missing"})
    assert set(some) == {"c", "timezone"}
    np.testing.assert_array_equal(some["c"], full["c"])
    assert some["timezone"] == full["timezone"] == ["Asia/Tokyo", "UTC", "Asia/Tokyo"]
    np.testing.assert_array_equal(full["a"], [3.5, 1.0, 3.5])


def test_profile_gathers_named_values_and_fills_the_missing_ones() -> None:
    rows = [{"open_hour_00": 0.5, "open_hour_01": None}, {"open_hour_00": 0.1, "open_hour_01": 0.2}]
    block = FeatureBlock(rows)
    index = np.array([1, 0])
    got = block.profile(["open_hour_01", "open_hour_00"], index, None)
    np.testing.assert_array_equal(got, [[0.2, 0.1], [np.nan, 0.5]])
    # a name no row has: its documented default, or the given one; nulls count as zero then
    got = block.profile(["open_hour_00", "open_hour_02"], index, None)
    np.testing.assert_array_equal(got[:, 1], [DEFAULTS["open_hour_02"]] * 2)
    got = block.profile(["open_hour_01", "open_hour_02"], index, 0.25)
    np.testing.assert_array_equal(got, [[0.2, 0.25], [0.0, 0.25]])
