from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from inboxlab.errors import InvalidInputError
from serving.bandit import (
    Allocation,
    ArmCounts,
    BanditConfig,
    ThompsonSampler,
    apply_floor,
    best_arm_probabilities,
    discounted_counts,
    segment_posteriors,
)


def exact_two_arm(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(theta_2 > theta_1) by numerical integration: integral of f2(x) F1(x) dx."""
    value, _ = integrate.quad(lambda x: stats.beta.pdf(x, a2, b2) * stats.beta.cdf(x, a1, b1), 0, 1)
    return float(value)


@pytest.mark.parametrize(
    ("a1", "b1", "a2", "b2"),
    [(1, 1, 1, 1), (11, 91, 16, 86), (3, 40, 2, 10), (50, 950, 60, 940)],
)
def test_monte_carlo_allocation_matches_exact_two_arm_probability(
    a1: float, b1: float, a2: float, b2: float
) -> None:
    p = best_arm_probabilities(
        np.array([a1, a2], dtype=float),
        np.array([b1, b2], dtype=float),
        n_draws=100_000,
        rng=np.random.default_rng(11),
    )
    # 100k draws: standard error <= 0.0016, so 0.01 is over 6 standard errors.
    assert p[1] == pytest.approx(exact_two_arm(a1, b1, a2, b2), abs=0.01)


@pytest.mark.parametrize("floor", [0.0, 0.01, 0.1, 0.25])
def test_floor_is_respected_and_probabilities_sum_to_one(floor: float) -> None:
    config = BanditConfig(arms=("a", "b", "c", "d"), floor=floor, n_draws=5_000)
    sampler = ThompsonSampler(config, rng=np.random.default_rng(2))
    counts = {"a": ArmCounts(5, 500), "b": ArmCounts(90, 500), "c": ArmCounts(20, 500)}
    p = np.array(sampler.allocation(counts).probabilities)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert (p >= floor - 1e-12).all()


@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=8).filter(lambda p: sum(p) > 1e-6),
    st.floats(0, 1),
)
def test_floor_holds_sums_to_one_and_keeps_the_order(raw: list[float], share: float) -> None:
    floor = share / len(raw)
    p = apply_floor(np.array(raw), floor)
    assert p.sum() == pytest.approx(1.0)
    assert (p >= floor - 1e-12).all()
    order = np.argsort(raw, kind="stable")
    assert (np.diff(p[order]) >= -1e-12).all()


def test_floor_of_one_over_arms_gives_uniform_allocation() -> None:
    assert apply_floor(np.array([1.0, 0.0, 0.0, 0.0]), 0.25).tolist() == [0.25] * 4


def test_floor_leaves_probabilities_above_it_in_proportion() -> None:
    p = apply_floor(np.array([0.6, 0.3, 0.1, 0.0]), 0.05)
    assert p[3] == pytest.approx(0.05)
    assert p[0] / p[1] == pytest.approx(2.0)


def test_propensity_matches_empirical_draw_frequency() -> None:
    allocation = Allocation.from_probabilities(("a", "b", "c"), np.array([0.6, 0.3, 0.1]), 1)
    rng = np.random.default_rng(5)
    n = 20_000
    draws = [allocation.draw(rng) for _ in range(n)]
    for arm in ("a", "b", "c"):
        propensities = {p for a, p in draws if a == arm}
        assert propensities == {allocation.probability(arm)}
        share = sum(1 for a, _ in draws if a == arm) / n
        p = allocation.probability(arm)
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_arm_with_zero_probability_is_never_drawn() -> None:
    allocation = Allocation.from_probabilities(("a", "b"), np.array([0.0, 1.0]), 1)
    rng = np.random.default_rng(0)
    assert {allocation.draw(rng)[0] for _ in range(1_000)} == {"b"}


def test_allocation_is_cached_until_the_posterior_version_changes() -> None:
    sampler = ThompsonSampler(BanditConfig(arms=("a", "b")), rng=np.random.default_rng(0))
    counts = {"a": ArmCounts(3, 10)}
    first = sampler.allocation(counts, version=1)
    assert sampler.allocation({"a": ArmCounts(9, 10)}, version=1) is first
    assert sampler.allocation(counts, version=2) is not first
    # Without an explicit version the posterior itself is the key.
    implicit = sampler.allocation(counts)
    assert sampler.allocation(dict(counts)) is implicit


def _simulate(
    config: BanditConfig,
    rates: list[np.ndarray],
    *,
    days: int,
    per_day: int,
    seed: int,
    policy: str = "thompson",
) -> tuple[float, Allocation | None]:
    """Pull arms for ``days`` days; rates[d] holds the true click rates on day d."""
    rng = np.random.default_rng(seed)
    sampler = ThompsonSampler(config, rng=np.random.default_rng(seed + 1))
    history: list[tuple[str, date, float, float]] = []
    start = date(2026, 1, 1)
    regret = 0.0
    allocation = None
    for d in range(days):
        today = start + timedelta(days=d)
        counts = discounted_counts(history, today=today, discount=config.discount)
        if policy == "thompson":
            allocation = sampler.allocation(counts)
            p = np.array(allocation.probabilities)
        else:
            p = np.full(len(config.arms), 1 / len(config.arms))
        pulls = rng.multinomial(per_day, p)
        true = rates[d]
        wins = rng.binomial(pulls, true)
        regret += float(per_day * true.max() - pulls @ true)
        history += [
            (arm, today, float(w), float(n))
            for arm, w, n in zip(config.arms, wins, pulls, strict=True)
        ]
    return regret, allocation


def test_bandit_concentrates_on_the_best_arm_with_less_regret_than_uniform() -> None:
    config = BanditConfig(arms=("a", "b", "c"), n_draws=4_000)
    world = [np.array([0.04, 0.05, 0.08])] * 30
    ts_regret, allocation = _simulate(config, world, days=30, per_day=200, seed=1)
    uniform_regret, _ = _simulate(config, world, days=30, per_day=200, seed=1, policy="uniform")
    assert allocation is not None
    assert allocation.probability("c") > 0.9
    assert ts_regret < 0.5 * uniform_regret


def test_discounting_tracks_a_switched_best_arm() -> None:
    before, after = np.array([0.08, 0.04, 0.04]), np.array([0.03, 0.04, 0.10])
    world = [before] * 30 + [after] * 10
    kept = BanditConfig(arms=("a", "b", "c"), n_draws=4_000, discount=1.0)
    forgetting = BanditConfig(arms=("a", "b", "c"), n_draws=4_000, discount=0.7)
    _, stale = _simulate(kept, world, days=40, per_day=200, seed=4)
    _, fresh = _simulate(forgetting, world, days=40, per_day=200, seed=4)
    assert stale is not None and fresh is not None
    assert fresh.probability("c") > 0.8
    assert fresh.probability("c") > stale.probability("c")


def test_segment_with_no_data_inherits_the_pooled_rates() -> None:
    config = BanditConfig(arms=("a", "b"), shrinkage=0.5, max_prior_trials=100)
    pooled = {"a": ArmCounts(10, 1_000), "b": ArmCounts(100, 1_000)}
    alpha, beta = segment_posteriors(config, {}, pooled)
    means = alpha / (alpha + beta)
    # The cap lends at most 100 pseudo-trials at the pooled rates (plus the Beta(1, 1) prior).
    assert alpha + beta == pytest.approx([102, 102])
    assert means[1] > means[0]


def test_segment_data_outweighs_a_capped_pooled_prior() -> None:
    config = BanditConfig(arms=("a", "b"), shrinkage=1.0, max_prior_trials=50)
    pooled = {"a": ArmCounts(100, 1_000), "b": ArmCounts(10, 1_000)}
    own = {"a": ArmCounts(5, 1_000), "b": ArmCounts(100, 1_000)}
    alpha, beta = segment_posteriors(config, own, pooled)
    means = alpha / (alpha + beta)
    assert means[1] > means[0]


def test_discounted_counts_weigh_days_by_age() -> None:
    rows = [("a", date(2026, 1, 1), 4.0, 10.0), ("a", date(2026, 1, 3), 2.0, 10.0)]
    counts = discounted_counts(rows, today=date(2026, 1, 3), discount=0.5)
    assert counts["a"] == ArmCounts(successes=2 + 4 * 0.25, trials=10 + 10 * 0.25)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arms": ("a",)}, "arms"),
        ({"arms": ("a", "a")}, "arms"),
        ({"arms": ("a", "b"), "floor": 0.6}, "floor"),
        ({"arms": ("a", "b"), "floor": -0.1}, "floor"),
        ({"arms": ("a", "b"), "discount": 0.0}, "discount"),
        ({"arms": ("a", "b"), "discount": 1.5}, "discount"),
        ({"arms": ("a", "b"), "prior_alpha": 0.0}, "prior_alpha"),
        ({"arms": ("a", "b"), "n_draws": 10}, "n_draws"),
        ({"arms": ("a", "b"), "shrinkage": -1.0}, "shrinkage"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        BanditConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(("successes", "trials"), [(-1, 5), (6, 5)])
def test_impossible_counts_are_refused(successes: float, trials: float) -> None:
    with pytest.raises(InvalidInputError, match="successes"):
        ArmCounts(successes, trials)
