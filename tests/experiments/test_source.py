from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.source import aggregate, read_columns
from experiments.statistics import BinaryStatistic, MeanStatistic
from inboxlab.errors import InvalidInputError


@pytest.mark.parametrize("name", ["units.parquet", "units.csv"])
def test_aggregate_matches_pandas_groupby(
    name: str, units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> None:
    df = units({"a": 0.05, "b": 0.06}, 5000, seed=3)
    data = aggregate(write_table(df, name))
    assert data.arms == ("a", "b")
    assert data.metrics == {"click": "binary", "unsubscribe": "binary", "revenue": "numeric"}
    for arm, g in df.groupby("arm"):
        assert data.units[str(arm)] == len(g)
        assert data.stats["click"][str(arm)] == BinaryStatistic(len(g), int(g["click"].sum()))
        rev = data.stats["revenue"][str(arm)]
        assert isinstance(rev, MeanStatistic)
        assert rev.total == pytest.approx(g["revenue"].sum())
        assert rev.total_sq == pytest.approx((g["revenue"] ** 2).sum())
        assert rev.nonzero == int((g["revenue"] > 0).sum())
    assert data.propensity is None and data.weighted is None


def test_segments_keep_top_levels_and_timeline_counts_every_unit(
    units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> None:
    df = units({"a": 0.05, "b": 0.06}, 4000, seed=4)
    data = aggregate(write_table(df), segments=["tier"], top_levels=2)
    assert data.segments is not None
    assert set(data.segments["tier"]) == {"low", "mid"}
    low = df[df["tier"] == "low"]
    assert data.segments["tier"]["low"]["a"] == BinaryStatistic(
        int((low["arm"] == "a").sum()), int(low.loc[low["arm"] == "a", "click"].sum())
    )
    assert sum(p.units for p in data.timeline) == len(df)
    assert sum(p.total for p in data.timeline) == df["click"].sum()


def test_propensities_give_weighted_statistics(write_table: Callable[..., Path]) -> None:
    df = pd.DataFrame({"arm": ["a", "a", "b"], "click": [1, 0, 1], "pscore": [0.5, 0.25, 0.5]})
    data = aggregate(write_table(df))
    assert data.weighted is not None and data.propensity is not None
    wa = data.weighted["click"]["a"]
    assert (wa.sum_w, wa.sum_wy, wa.sum_w2) == (6.0, 2.0, 20.0)
    assert data.propensity["a"].sum_inv_var == pytest.approx(0.5 / 0.25 + 0.75 / 0.0625)


def test_full_allocation_columns_give_expected_counts(write_table: Callable[..., Path]) -> None:
    df = pd.DataFrame(
        {
            "arm": ["a", "b", "b"],
            "click": [1, 0, 1],
            "pscore": [0.2, 0.8, 0.5],
            "pscore_a": [0.2, 0.2, 0.5],
            "pscore_b": [0.8, 0.8, 0.5],
        }
    )
    data = aggregate(write_table(df))
    assert data.propensity is not None
    assert data.propensity["a"].expected == pytest.approx(0.9)
    assert data.propensity["b"].expected == pytest.approx(2.1)
    assert "pscore_a" not in data.metrics


@pytest.mark.parametrize(
    ("df", "kwargs", "field"),
    [
        (pd.DataFrame({"variant": ["a"], "click": [1]}), {}, "arm"),
        (pd.DataFrame({"arm": ["a"], "click": [1]}), {"metrics": ["open"]}, "metric"),
        (pd.DataFrame({"arm": ["a"], "note": ["x"]}), {}, "metric"),
        (
            pd.DataFrame({"arm": ["a"], "click": [1], "note": ["x"]}),
            {"metrics": ["note"]},
            "metric",
        ),
        (pd.DataFrame({"arm": ["a"], "click": [1]}), {"segments": ["tier"]}, "segment"),
        (pd.DataFrame({"arm": ["a"], "click": [1], "pscore": [0.0]}), {}, "pscore"),
        (pd.DataFrame({"arm": ["a"], "click": [1], "pscore": [1.5]}), {}, "pscore"),
    ],
)
def test_unusable_table_is_rejected_naming_the_field(
    df: pd.DataFrame, kwargs: dict[str, object], field: str, write_table: Callable[..., Path]
) -> None:
    with pytest.raises(InvalidInputError) as info:
        aggregate(write_table(df), **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("name", ["missing.parquet", "units.xlsx"])
def test_missing_or_unknown_file_is_rejected(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".xlsx"):
        path.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="data file"):
        aggregate(path)


def test_read_columns_returns_arrays(write_table: Callable[..., Path]) -> None:
    df = pd.DataFrame({"arm": ["a", "b"], "click": [1, 0]})
    cols = read_columns(write_table(df), ["arm", "click"])
    np.testing.assert_array_equal(cols["click"], [1, 0])
    with pytest.raises(InvalidInputError):
        read_columns(write_table(df), ["pscore"])
