from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from inboxlab.errors import InvalidInputError
from training.fit import fit_and_evaluate, time_split

NUMERIC = ["recency", "score"]
CATEGORICAL = ["variant_id"]


def test_model_nears_the_auc_of_the_true_probabilities_and_is_calibrated(
    sends: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, truth = sends
    result = fit_and_evaluate(frame, "clicked", NUMERIC, CATEGORICAL)
    hold = result.split.holdout
    oracle = roc_auc_score(hold["clicked"], truth[hold.index])
    assert result.metrics["roc_auc"] / oracle > 0.97
    assert result.metrics["ece"] < 0.02
    assert result.baseline_metrics["roc_auc"] / oracle > 0.9


def test_split_is_by_time_with_the_holdout_last(sends: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, _ = sends
    split = time_split(frame, "clicked", holdout_days=14, calibration_days=7)
    assert split.train["sent_at"].max() < split.calibration["sent_at"].min()
    assert split.calibration["sent_at"].max() < split.holdout["sent_at"].min()
    assert len(split.train) + len(split.calibration) + len(split.holdout) == len(frame)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.iloc[0:0], "no labelled sends"),
        (lambda f: f.assign(clicked=0), "positive 'clicked' labels"),
        (lambda f: f.assign(clicked=1), "positive 'clicked' labels"),
        (lambda f: f[f["sent_at"] > f["sent_at"].max() - pd.Timedelta(days=10)], "empty"),
        (lambda f: f.assign(clicked=(np.arange(len(f)) < 5).astype(int)), "need at least 20"),
    ],
)
def test_unusable_data_is_refused_with_the_reason(
    sends: tuple[pd.DataFrame, np.ndarray], change: object, message: str
) -> None:
    frame, _ = sends
    with pytest.raises(InvalidInputError, match=message):
        fit_and_evaluate(change(frame), "clicked", NUMERIC, CATEGORICAL)  # type: ignore[operator]


def test_missing_feature_columns_are_named(sends: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, _ = sends
    with pytest.raises(InvalidInputError, match="nope"):
        fit_and_evaluate(frame, "clicked", [*NUMERIC, "nope"], CATEGORICAL)
