from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from experiments.bayes import (
    ApproxPosterior,
    beta_posterior,
    chance_to_beat,
    expected_loss,
    lift_interval,
    probability_best,
    ratio_exceeds,
)
from experiments.statistics import BinaryStatistic


def closed_form_chance(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """Evan Miller's exact sum for integer Beta parameters: P(θ_t > θ_c)."""
    terms = [
        special.betaln(a_c + i, b_c + b_t)
        - math.log(b_t + i)
        - special.betaln(1 + i, b_t)
        - special.betaln(a_c, b_c)
        for i in range(a_t)
    ]
    return float(np.exp(special.logsumexp(terms)))


def test_beta_posterior_matches_scipy_interval() -> None:
    p = beta_posterior(BinaryStatistic(2000, 150))
    lo, hi = stats.beta.interval(0.95, 151, 1851)
    assert (p.alpha, p.beta) == (151, 1851)
    assert p.mean == pytest.approx(151 / 2002)
    assert (p.ci_low, p.ci_high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))


def test_beta_posterior_pinned_numbers() -> None:
    p = beta_posterior(BinaryStatistic(1000, 100))
    assert (round(p.mean, 6), round(p.ci_low, 6), round(p.ci_high, 6)) == (
        0.100798,
        0.082936,
        0.120169,
    )


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((1000, 100), (1000, 120)), ((50, 3), (40, 5)), ((200_000, 10_000), (200_000, 10_150))],
)
def test_chance_to_beat_control_matches_monte_carlo(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    c, t = beta_posterior(BinaryStatistic(*control)), beta_posterior(BinaryStatistic(*treatment))
    rng = np.random.default_rng(20260301)
    draws = 10_000_000
    mc = np.mean(rng.beta(t.alpha, t.beta, draws) > rng.beta(c.alpha, c.beta, draws))
    # The MC standard error is at most 0.5/sqrt(1e7) = 0.016 pp, far inside 0.2 pp.
    assert abs(chance_to_beat(t, c) - mc) < 0.002


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((1000, 100), (1000, 120)), ((50, 3), (40, 5)), ((10, 0), (10, 0)), ((5000, 40), (4000, 25))],
)
def test_chance_to_beat_control_equals_closed_form_sum(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    c, t = beta_posterior(BinaryStatistic(*control)), beta_posterior(BinaryStatistic(*treatment))
    exact = closed_form_chance(int(t.alpha), int(t.beta), int(c.alpha), int(c.beta))
    assert chance_to_beat(t, c) == pytest.approx(exact, abs=1e-8)


def test_chance_to_beat_is_accurate_for_ten_million_unit_arms() -> None:
    c = beta_posterior(BinaryStatistic(10_000_000, 500_000))
    t = beta_posterior(BinaryStatistic(10_000_000, 501_000))

    # At this size both posteriors are normal to many digits: z = difference / its sd.
    def var(a: float, b: float) -> float:
        return a * b / ((a + b) ** 2 * (a + b + 1))

    z = (t.mean - c.mean) / math.sqrt(var(t.alpha, t.beta) + var(c.alpha, c.beta))
    assert chance_to_beat(t, c) == pytest.approx(stats.norm.cdf(z), abs=1e-4)


def test_ratio_exceeds_matches_monte_carlo() -> None:
    c, t = beta_posterior(BinaryStatistic(3000, 30)), beta_posterior(BinaryStatistic(3000, 36))
    rng = np.random.default_rng(7)
    ratio = rng.beta(t.alpha, t.beta, 2_000_000) / rng.beta(c.alpha, c.beta, 2_000_000)
    for r in (0.8, 1.1, 1.5):
        assert ratio_exceeds(t, c, r) == pytest.approx(np.mean(ratio > r), abs=0.002)


def test_lift_interval_matches_monte_carlo_quantiles() -> None:
    c, t = beta_posterior(BinaryStatistic(1000, 100)), beta_posterior(BinaryStatistic(1000, 120))
    rng = np.random.default_rng(11)
    lift = rng.beta(t.alpha, t.beta, 2_000_000) / rng.beta(c.alpha, c.beta, 2_000_000) - 1
    lo, hi = lift_interval(t, c)
    mc_lo, mc_hi = np.quantile(lift, [0.025, 0.975])
    assert lo == pytest.approx(mc_lo, abs=0.003)
    assert hi == pytest.approx(mc_hi, abs=0.003)
    assert (round(lo, 4), round(hi, 4)) == (-0.0654, 0.5408)


def test_probability_best_matches_monte_carlo_and_sums_to_one() -> None:
    posts = [beta_posterior(BinaryStatistic(1000, k)) for k in (100, 120, 110, 90)]
    rng = np.random.default_rng(3)
    draws = np.column_stack([rng.beta(p.alpha, p.beta, 2_000_000) for p in posts])
    mc = np.bincount(draws.argmax(axis=1), minlength=len(posts)) / len(draws)
    got = probability_best(posts)
    assert sum(got) == pytest.approx(1.0, abs=1e-12)
    # MC standard error <= 0.5/sqrt(2e6) = 0.00035.
    np.testing.assert_allclose(got, mc, atol=0.002)
    assert [round(x, 4) for x in got] == [0.0456, 0.7239, 0.2254, 0.0051]


def test_expected_loss_matches_monte_carlo() -> None:
    posts = [beta_posterior(BinaryStatistic(1000, k)) for k in (100, 120, 110)]
    rng = np.random.default_rng(5)
    draws = np.column_stack([rng.beta(p.alpha, p.beta, 2_000_000) for p in posts])
    mc = (draws.max(axis=1, keepdims=True) - draws).mean(axis=0)
    np.testing.assert_allclose(expected_loss(posts), mc, atol=1e-4)


def test_probability_best_and_loss_work_on_normal_posteriors() -> None:
    posts = [ApproxPosterior(1.0, 0.1), ApproxPosterior(1.1, 0.2), ApproxPosterior(0.5, 0.5)]
    rng = np.random.default_rng(9)
    draws = np.column_stack([rng.normal(p.loc, p.scale, 2_000_000) for p in posts])
    mc_best = np.bincount(draws.argmax(axis=1), minlength=3) / len(draws)
    mc_loss = (draws.max(axis=1, keepdims=True) - draws).mean(axis=0)
    np.testing.assert_allclose(probability_best(posts), mc_best, atol=0.002)
    np.testing.assert_allclose(expected_loss(posts), mc_loss, atol=5e-4)


def test_identical_arms_have_even_chances() -> None:
    p = beta_posterior(BinaryStatistic(500, 50))
    assert chance_to_beat(p, p) == pytest.approx(0.5, abs=1e-9)
    assert probability_best([p, p, p]) == pytest.approx((1 / 3,) * 3, abs=1e-9)


def test_arm_without_units_gives_prior_not_error() -> None:
    empty, c = beta_posterior(BinaryStatistic(0, 0)), beta_posterior(BinaryStatistic(100, 10))
    assert empty.mean == 0.5
    assert 0.0 < chance_to_beat(empty, c) < 1.0
