"""The model and its baseline: one scikit-learn pipeline each, calibrated on held-out data.

The whole pipeline (preprocessing + LightGBM + calibration) is what MLflow stores, so serving
runs exactly what training evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

__all__ = [
    "DEFAULT_LGBM_PARAMS",
    "calibrate",
    "make_baseline",
    "make_lightgbm",
    "positive_proba",
]

#: Conservative defaults for sparse email labels: small leaves, strong regularisation.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 2,
    "verbose": -1,
}


def make_lightgbm(
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Pipeline:
    """Ordinal-encoded categoricals, numerics as they are (LightGBM handles missing values).

    ``params`` are LightGBM's, plus ``monotone``: a mapping of input column to ``1`` (the
    score may only rise with it) or ``-1`` (only fall), turned into LightGBM's positional
    ``monotone_constraints``.

    Raises
    ------
    ValueError
        When ``monotone`` names a column that is not an input or a direction other than ±1.

    Examples
    --------
    >>> pipe = make_lightgbm(["a", "b"], ["c"], {"monotone": {"b": 1}})
    >>> pipe[-1].get_params()["monotone_constraints"]
    [0, 0, 1]
    """
    prepare = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    encoded_missing_value=-1,
                    dtype=np.float64,
                ),
                list(categorical),
            ),
            ("numeric", "passthrough", list(numeric)),
        ],
        verbose_feature_names_out=False,
    )
    merged = {**DEFAULT_LGBM_PARAMS, **(params or {}), "random_state": seed}
    monotone = merged.pop("monotone", None)
    if monotone:
        columns = [*categorical, *numeric]  # the order of the prepared matrix
        unknown = sorted(set(monotone) - set(columns))
        if unknown:
            raise ValueError(f"monotone constraint on {unknown}, which are not model inputs")
        bad = {k: v for k, v in monotone.items() if v not in (1, -1)}
        if bad:
            raise ValueError(f"monotone directions must be 1 or -1, got {bad}")
        merged["monotone_constraints"] = [int(monotone.get(c, 0)) for c in columns]
    model = LGBMClassifier(**merged)
    return Pipeline([("prepare", prepare), ("model", model)])


def make_baseline(numeric: Sequence[str], categorical: Sequence[str]) -> Pipeline:
    """Logistic regression on the same features: what a data scientist compares against."""
    prepare = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
                list(categorical),
            ),
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                list(numeric),
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=500))])


def calibrate(
    fitted: Pipeline,
    x_cal: pd.DataFrame,
    y_cal: np.ndarray,
    method: Literal["isotonic", "sigmoid"] = "isotonic",
) -> CalibratedClassifierCV:
    """Calibrate an already fitted pipeline on data it was not trained on.

    Isotonic needs a few thousand calibration rows to beat Platt scaling; with fewer, or with
    few positives, :func:`calibrate` falls back to the sigmoid (Platt) method.
    """
    if method == "isotonic" and (len(y_cal) < 5_000 or int(np.sum(y_cal)) < 200):
        method = "sigmoid"
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(x_cal, y_cal)


def positive_proba(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class as a float array."""
    return np.asarray(model.predict_proba(x)[:, 1], dtype=float)
