from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.means import mean_lift, mean_posterior, weighted_lift
from experiments.source import aggregate
from experiments.statistics import BinaryStatistic, MeanStatistic


def _stat(x: np.ndarray) -> MeanStatistic:
    return MeanStatistic(len(x), float(x.sum()), float((x * x).sum()), int((x != 0).sum()))


def _revenue(rng: np.random.Generator, n: int, conversion: float, scale: float) -> np.ndarray:
    # Zero-inflated and heavy-tailed: few buyers, log-normal order values.
    return np.where(rng.random(n) < conversion, rng.lognormal(np.log(scale), 1.0, n), 0.0)


def test_revenue_lift_agrees_with_bootstrap_of_units() -> None:
    rng = np.random.default_rng(42)
    c, t = _revenue(rng, 20_000, 0.03, 40.0), _revenue(rng, 20_000, 0.034, 40.0)
    lift = mean_lift(mean_posterior(_stat(t)), mean_posterior(_stat(c)))
    boots = 4000
    mc = np.array([rng.choice(c, c.size).mean() for _ in range(boots)])
    mt = np.array([rng.choice(t, t.size).mean() for _ in range(boots)])
    ratio = mt / mc - 1
    assert lift.chance_to_beat == pytest.approx(np.mean(mt > mc), abs=0.03)
    lo, hi = np.quantile(ratio, [0.025, 0.975])
    assert lift.ci_low == pytest.approx(lo, abs=0.03)
    assert lift.ci_high == pytest.approx(hi, abs=0.03)


def test_revenue_interval_covers_truth_in_repeated_experiments() -> None:
    rng = np.random.default_rng(5)
    truth = 0.03 * 40.0 * np.exp(0.5)  # conversion × mean of the log-normal order value
    covered = 0
    for _ in range(200):
        p = mean_posterior(_stat(_revenue(rng, 5000, 0.03, 40.0)))
        covered += p.ci_low <= truth <= p.ci_high
    assert 0.90 <= covered / 200 <= 0.99


def test_metric_with_negative_values_falls_back_to_normal_means() -> None:
    rng = np.random.default_rng(6)
    c, t = rng.normal(-1.0, 2.0, 4000), rng.normal(-0.9, 2.0, 4000)
    pc, pt = mean_posterior(_stat(c)), mean_posterior(_stat(t))
    assert np.isnan(pc.log_sd)
    assert pc.mean == pytest.approx(c.mean())
    diff_sd = np.hypot(c.std(ddof=1), t.std(ddof=1)) / np.sqrt(4000)
    lift = mean_lift(pt, pc)
    assert lift.chance_to_beat == pytest.approx(
        stats.norm.cdf((t.mean() - c.mean()) / diff_sd), abs=1e-3
    )


def test_arm_without_revenue_gives_nan_not_error() -> None:
    p = mean_posterior(MeanStatistic(100, 0.0, 0.0, 0))
    lift = mean_lift(p, mean_posterior(MeanStatistic(100, 50.0, 2500.0, 1)))
    assert p.mean == 0.0
    assert np.isnan(lift.chance_to_beat) or 0 <= lift.chance_to_beat <= 1


def test_ipw_lift_removes_bias_of_a_drifting_bandit(write_table: Callable[..., Path]) -> None:
    # Two periods with the same true rate for both arms (no effect), but a base rate that
    # drops from 10 % to 2 % while the bandit moves traffic from 20 % to 80 % on arm b.
    rng = np.random.default_rng(8)
    frames = []
    for share_b, rate, n in ((0.2, 0.10, 100_000), (0.8, 0.02, 100_000)):
        is_b = rng.random(n) < share_b
        frames.append(
            pd.DataFrame(
                {
                    "arm": np.where(is_b, "b", "a"),
                    "click": (rng.random(n) < rate).astype(np.int8),
                    "pscore": np.where(is_b, share_b, 1 - share_b),
                }
            )
        )
    data = aggregate(write_table(pd.concat(frames)))
    assert data.weighted is not None
    a, b = data.stats["click"]["a"], data.stats["click"]["b"]
    assert isinstance(a, BinaryStatistic) and isinstance(b, BinaryStatistic)
    naive = b.rate / a.rate - 1
    ipw = weighted_lift(data.weighted["click"]["b"], data.weighted["click"]["a"])
    assert naive < -0.4  # the naive comparison invents a large loss
    assert ipw.ci_low < 0 < ipw.ci_high
    assert abs(ipw.estimate) < 0.05
