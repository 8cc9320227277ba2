from __future__ import annotations

import numpy as np
import pytest

from experiments.statistics import BinaryStatistic, MeanStatistic, WeightedStatistic


def _mean_stat(x: np.ndarray) -> MeanStatistic:
    return MeanStatistic(len(x), float(x.sum()), float((x * x).sum()), int((x != 0).sum()))


def test_binary_statistics_add_up() -> None:
    assert BinaryStatistic(10, 2) + BinaryStatistic(30, 4) == BinaryStatistic(40, 6)
    assert BinaryStatistic(40, 6).rate == 0.15


def test_mean_statistics_add_up_to_statistics_of_the_union() -> None:
    rng = np.random.default_rng(1)
    x = np.where(rng.random(1000) < 0.1, rng.lognormal(2, 1, 1000), 0.0)
    whole = _mean_stat(x)
    parts = _mean_stat(x[:300]) + _mean_stat(x[300:])
    assert parts.n == whole.n and parts.nonzero == whole.nonzero
    assert parts.total == pytest.approx(whole.total)
    assert parts.variance == pytest.approx(np.var(x, ddof=1))
    assert parts.nonzero_mean == pytest.approx(x[x != 0].mean())
    assert parts.nonzero_variance == pytest.approx(np.var(x[x != 0], ddof=1))


def test_weighted_statistic_matches_naive_loop() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.1, 0.9, 500)
    y = (rng.random(500) < 0.3).astype(float)
    w = 1 / p
    s = WeightedStatistic(
        500, w.sum(), (w * y).sum(), (w * w).sum(), (w * w * y).sum(), (w * w * y * y).sum()
    )
    mu = (w * y).sum() / w.sum()
    assert s.mean == pytest.approx(mu)
    assert s.mean_variance == pytest.approx(((w * (y - mu)) ** 2).sum() / w.sum() ** 2)


@pytest.mark.parametrize(("n", "successes"), [(-1, 0), (10, 11), (10, -1)])
def test_impossible_binary_statistic_is_rejected(n: int, successes: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        BinaryStatistic(n, successes)


def test_empty_statistics_give_nan_not_errors() -> None:
    assert np.isnan(BinaryStatistic(0, 0).rate)
    assert np.isnan(MeanStatistic(0, 0.0, 0.0, 0).mean)
    assert np.isnan(MeanStatistic(1, 1.0, 1.0, 1).variance)
    assert np.isnan(WeightedStatistic(0, 0.0, 0.0, 0.0, 0.0, 0.0).mean)
