from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.simulator import SimulationConfig
from inboxlab.settings import Settings
from training.evaluation import evaluate_against_truth, expected_auc, fixed_hour_policy

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
