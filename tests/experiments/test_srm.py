from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.srm import srm_check, srm_from_propensities
from experiments.statistics import PropensityStatistic


def test_planted_52_48_split_at_100k_units_is_flagged() -> None:
    r = srm_check({"a": 52_000, "b": 48_000}, {"a": 1, "b": 1})
    assert r.flagged
    assert r.p_value == pytest.approx(stats.chisquare([52_000, 48_000]).pvalue)


def test_fair_split_at_100k_units_is_not_flagged() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        n_a = int(rng.binomial(100_000, 0.5))
        assert not srm_check({"a": n_a, "b": 100_000 - n_a}, {"a": 1, "b": 1}).flagged


def test_unequal_weights_and_three_arms_use_chi_square() -> None:
    observed = {"a": 50_400, "b": 24_800, "c": 24_800}
    r = srm_check(observed, {"a": 2, "b": 1, "c": 1})
    expected = stats.chisquare([50_400, 24_800, 24_800], [50_000, 25_000, 25_000])
    assert r.p_value == pytest.approx(expected.pvalue)
    assert r.expected == {"a": 50_000, "b": 25_000, "c": 25_000}


def test_arm_with_no_units_is_flagged() -> None:
    assert srm_check({"a": 1000}, {"a": 1, "b": 1}).flagged


def _bandit(rng: np.random.Generator, drop_b: float = 0.0) -> dict[str, PropensityStatistic]:
    # Allocation to b grows from 30 % to 90 % over 20 batches of 5,000 units.
    stats_: dict[str, PropensityStatistic] = {
        a: PropensityStatistic(0, 0.0, 0.0) for a in ("a", "b")
    }
    for share in np.linspace(0.3, 0.9, 20):
        is_b = rng.random(5000) < share
        if drop_b:
            is_b = is_b[~(is_b & (rng.random(5000) < drop_b))]
        for arm, mask, p in (("a", ~is_b, 1 - share), ("b", is_b, share)):
            k = int(mask.sum())
            stats_[arm] = stats_[arm] + PropensityStatistic(k, k / p, k * (1 - p) / p**2)
    return stats_


def test_bandit_checked_against_logged_propensities_not_fixed_weights() -> None:
    rng = np.random.default_rng(2)
    props = _bandit(rng)
    observed = {a: p.n for a, p in props.items()}
    assert srm_check(observed, {"a": 1, "b": 1}).flagged  # a fixed-weight check cries wolf
    r = srm_from_propensities(props)
    assert r.method == "horvitz-thompson"
    assert not r.flagged
    assert r.expected["b"] == pytest.approx(observed["b"], rel=0.02)


def test_bandit_losing_units_of_one_arm_is_flagged() -> None:
    rng = np.random.default_rng(3)
    assert srm_from_propensities(_bandit(rng, drop_b=0.05)).flagged


def test_horvitz_thompson_check_has_about_its_nominal_false_alarm_rate() -> None:
    rng = np.random.default_rng(4)
    p_values = [srm_from_propensities(_bandit(rng)).p_value for _ in range(200)]
    # Bonferroni over two arms is conservative: at most ~5 % below 0.05.
    assert np.mean(np.array(p_values) < 0.05) <= 0.08


def test_logged_allocation_uses_pearson_against_expected_counts() -> None:
    props = {
        "a": PropensityStatistic(30_600, np.nan, np.nan, 30_000.0),
        "b": PropensityStatistic(69_400, np.nan, np.nan, 70_000.0),
    }
    r = srm_from_propensities(props)
    assert r.method == "chi-square (logged allocation)"
    assert r.p_value == pytest.approx(stats.chisquare([30_600, 69_400], [30_000, 70_000]).pvalue)
    assert r.flagged
