from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.bayes import beta_posterior
from experiments.segments import log_lift, shrink, shrink_segments
from experiments.statistics import BinaryStatistic, Statistic


def test_log_lift_matches_monte_carlo() -> None:
    t, c = BinaryStatistic(4000, 240), BinaryStatistic(4000, 200)
    y, s = log_lift(t, c)
    pt, pc = beta_posterior(t), beta_posterior(c)
    rng = np.random.default_rng(1)
    draws = np.log(rng.beta(pt.alpha, pt.beta, 1_000_000) / rng.beta(pc.alpha, pc.beta, 1_000_000))
    assert y == pytest.approx(np.log(pt.mean / pc.mean))
    assert s == pytest.approx(draws.std(), rel=0.01)


def test_homogeneous_segments_collapse_onto_overall_effect() -> None:
    means, _, factors = shrink([0.12, 0.08, 0.1], [0.05, 0.05, 0.05], 0.1, 0.03)
    assert factors == [1.0, 1.0, 1.0]
    assert means == pytest.approx([0.1, 0.1, 0.1])


def test_precise_heterogeneous_segments_keep_their_effects() -> None:
    means, _, factors = shrink([0.3, -0.2, 0.05], [0.01, 0.01, 0.01], 0.05, 0.005)
    assert max(factors) < 0.01
    assert means == pytest.approx([0.3, -0.2, 0.05], abs=0.005)


def test_shrinkage_matches_method_of_moments_reference() -> None:
    y, s = np.array([0.4, 0.0, 0.2, -0.1]), np.array([0.1, 0.15, 0.05, 0.2])
    w = 1 / s**2
    ybar = (w * y).sum() / w.sum()
    tau2 = max(0, ((w * (y - ybar) ** 2).sum() - 3) / (w.sum() - (w**2).sum() / w.sum()))
    b = s**2 / (s**2 + tau2)
    means, sds, factors = shrink(list(y), list(s), 0.15, 0.04)
    np.testing.assert_allclose(factors, b)
    np.testing.assert_allclose(means, 0.15 + (1 - b) * (y - 0.15))
    np.testing.assert_allclose(sds, np.sqrt((1 - b) * s**2 + b**2 * 0.04**2))


def test_small_segment_with_a_lucky_win_is_not_reported_as_a_winner() -> None:
    # Three big segments with no effect; a tiny one where the variant looks 80 % better.
    levels: dict[str, dict[str, Statistic]] = {
        name: {"a": BinaryStatistic(50_000, 2500), "b": BinaryStatistic(50_000, 2500 + d)}
        for name, d in (("x", 30), ("y", -25), ("z", 0))
    }
    levels["tiny"] = {"a": BinaryStatistic(200, 10), "b": BinaryStatistic(200, 18)}
    overall = log_lift(BinaryStatistic(150_200, 7510), BinaryStatistic(150_200, 7523))
    warnings: list[str] = []
    out = shrink_segments({"tier": levels}, "a", ["b"], {"b": overall}, warnings)
    tiny = next(s for s in out if s.level == "tiny")
    assert tiny.raw_lift > 0.7
    assert tiny.lift < 0.05
    assert tiny.chance_to_beat < 0.95
    assert not warnings


def test_segment_without_control_units_is_skipped_with_warning() -> None:
    levels: dict[str, dict[str, Statistic]] = {
        "x": {"a": BinaryStatistic(1000, 50), "b": BinaryStatistic(1000, 60)},
        "y": {"b": BinaryStatistic(10, 1)},
    }
    warnings: list[str] = []
    out = shrink_segments({"tier": levels}, "a", ["b"], {"b": (0.1, 0.1)}, warnings)
    assert [s.level for s in out] == ["x"]
    assert warnings == ["segment tier=y: no units in b or a"]
    assert math.isfinite(out[0].lift)
