from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.simulator import EmailEnvironment, GroundTruth, SimulationConfig
from inboxlab.settings import Settings
from training.evaluation import (
    evaluate_against_truth,
    expected_auc,
    fixed_hour_policy,
    prepare_world,
    send_time_quality,
)
from training.fit import FitResult, TimeSplit

#: Small trees: the 5,000-recipient world has only about a thousand training clicks.
SMALL_PARAMS: dict[str, object] = {"n_estimators": 150, "learning_rate": 0.03, "num_leaves": 7}


def test_expected_auc_matches_the_mean_auc_of_sampled_outcomes() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1, 6, 400)
    score = p + rng.normal(0, 0.05, 400)
    draws = [roc_auc_score(rng.random(400) < p, score) for _ in range(400)]
    # The expected AUC is a ratio of expectations, the mean of draws an expectation of
    # ratios: equal to within the sampling error of 400 draws.
    assert expected_auc(p, score) == pytest.approx(np.mean(draws), abs=0.005)
    assert expected_auc(p, p) > expected_auc(p, score) > 0.5


@pytest.mark.parametrize(
    ("utc_hours", "local_hours", "expected"),
    [
        ([15, 15, 15, 9], [16, 10, 16, 10], (15, "utc")),
        ([14, 8, 15, 9], [9, 9, 9, 10], (9, "local")),
    ],
)
def test_fixed_hour_is_the_mode_on_the_clock_the_history_was_scheduled_on(
    utc_hours: list[int], local_hours: list[int], expected: tuple[int, str]
) -> None:
    sends = pd.DataFrame(
        {
            "sent_at": [
                pd.Timestamp("2026-01-05", tz="UTC") + pd.Timedelta(hours=h) for h in utc_hours
            ],
            "local_hour": local_hours,
        }
    )
    assert fixed_hour_policy(sends) == expected


# About 20 s on an idle 2-core machine, over a minute when it is shared.
@pytest.mark.slow
def test_models_trained_on_a_simulated_history_approach_the_ground_truth(
    settings: Settings,
) -> None:
    config = SimulationConfig(recipients=5_000, days=45, seed=1)
    report = evaluate_against_truth(settings, config, params=SMALL_PARAMS, seed=0)

    eng = report.engagement
    assert eng.sends > 4_000
    assert eng.clicks > 50
    assert eng.expected_auc_ratio > 0.7
    assert eng.ece_vs_truth < 0.01

    st = report.send_time
    assert st.recipients > 800
    assert st.open_rate_fixed <= st.open_rate_oracle
    assert st.open_rate_model <= st.open_rate_oracle
    assert st.lift_share > 0.0


class _TruthScorer:
    """A stand-in model scoring each candidate send from its true open probability."""

    def __init__(self, truth: GroundTruth, score: Callable[[np.ndarray, pd.DataFrame], np.ndarray]):
        self._env = EmailEnvironment(truth, np.random.default_rng(0))
        self._score = score

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        at = pd.to_datetime(x["sent_at"]).to_numpy().astype("datetime64[us]")
        p = self._score(self._env.expected_open_rate(x["recipient_id"].tolist(), at), x)
        return np.column_stack([1 - p, p])


def _fake_fit(model: _TruthScorer) -> FitResult:
    """A fit whose inputs are the recipient, the send time and its local hour."""
    empty = pd.DataFrame()
    now = pd.Timestamp("2026-01-01", tz="UTC")
    return FitResult(
        model=model,
        baseline=None,
        metrics={},
        baseline_metrics={},
        numeric=("local_hour",),
        categorical=("recipient_id", "sent_at"),
        split=TimeSplit(empty, empty, empty, now, now),
    )


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, GroundTruth]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("world") / "data")
    truth = prepare_world(settings, SimulationConfig(recipients=300, days=21, seed=3))
    return settings, truth


@pytest.mark.parametrize(
    ("score", "share"),
    [
        (lambda p, x: p, 1.0),
        # Prefers the fixed policy's hour (10:00 local) everywhere: no lift at all.
        (lambda p, x: (x["local_hour"] == 10).to_numpy(dtype=float), 0.0),
    ],
    ids=["truth", "fixed hour"],
)
def test_send_time_judge_gives_the_oracle_all_the_lift_and_the_fixed_hour_none(
    small_world: tuple[Settings, GroundTruth],
    score: Callable[[np.ndarray, pd.DataFrame], np.ndarray],
    share: float,
) -> None:
    settings, truth = small_world
    ids = truth.population.recipient_ids[:200]
    fit = _fake_fit(_TruthScorer(truth, score))
    st = send_time_quality(settings, truth, fit, ids, day=truth.config.end, fixed=(10, "local"))

    assert st.week_lift_share == pytest.approx(share, abs=1e-9)
    assert [d.lift_share for d in st.days] == pytest.approx([share] * 7, abs=1e-9)
    assert st.lift_share == pytest.approx(share, abs=1e-9)
    # The model's hour is the oracle's for every recipient and day exactly when it gets all.
    assert (st.week_best_hour_agreement == 1.0) == (share == 1.0)


def test_send_time_judge_scores_each_day_of_the_week_after_the_history(
    small_world: tuple[Settings, GroundTruth],
) -> None:
    settings, truth = small_world
    ids = truth.population.recipient_ids[:200]
    # Every hour scores the same: the judge takes the first, midnight, worse than 10:00.
    fit = _fake_fit(_TruthScorer(truth, lambda p, x: np.full(len(p), 0.3)))
    st = send_time_quality(settings, truth, fit, ids, day=truth.config.end, fixed=(10, "local"))

    assert [d.day for d in st.days] == [truth.config.end + timedelta(days=k) for k in range(7)]
    assert sorted(d.weekday for d in st.days) == sorted(calendar.day_name)
    assert st.recipients > 150
    first = st.days[0]
    assert (st.open_rate_fixed, st.open_rate_model, st.open_rate_oracle) == (
        first.open_rate_fixed,
        first.open_rate_model,
        first.open_rate_oracle,
    )
    assert st.week_open_rate_model == pytest.approx(np.mean([d.open_rate_model for d in st.days]))
    assert all(d.open_rate_model < d.open_rate_fixed < d.open_rate_oracle for d in st.days)
    assert st.week_lift_share < 0
    # Weekend curves are flatter: the oracle's lift over the fixed hour is smaller then.
    gaps = {d.weekday: d.open_rate_oracle - d.open_rate_fixed for d in st.days}
    assert max(gaps["Saturday"], gaps["Sunday"]) < min(gaps[d] for d in calendar.day_name[:5])
