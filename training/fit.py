"""Time-based split, fit, calibration and evaluation of a model and its baseline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from inboxlab.errors import InvalidInputError
from training.estimator import calibrate, make_baseline, make_lightgbm, positive_proba
from training.metrics import evaluate

__all__ = [
    "MIN_POSITIVES",
    "FitResult",
    "TimeSplit",
    "fit_and_evaluate",
    "model_input",
    "time_split",
]

#: Fewer positives than this in any part of the split gives no usable model or metric.
MIN_POSITIVES = 20

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Train on the past, calibrate on what followed, evaluate on the most recent days."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    holdout: pd.DataFrame
    calibration_start: pd.Timestamp
    holdout_start: pd.Timestamp


@dataclass(frozen=True, slots=True)
class FitResult:
    """A fitted, calibrated model and baseline with their holdout metrics."""

    model: Any
    baseline: Any
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    split: TimeSplit
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.categorical, *self.numeric)


def time_split(
    frame: pd.DataFrame, label: str, *, holdout_days: int = 14, calibration_days: int = 7
) -> TimeSplit:
    """Split labelled rows by ``sent_at`` into train / calibration / holdout.

    Raises :class:`InvalidInputError` naming the problem when a part is empty or has too few
    positives (fewer than :data:`MIN_POSITIVES`) or a single class.
    """
    if frame.empty:
        raise InvalidInputError("the training window holds no labelled sends", field="window")
    frame = frame.sort_values("sent_at", kind="stable")
    end = frame["sent_at"].max()
    holdout_start = end - pd.Timedelta(days=holdout_days)
    calibration_start = holdout_start - pd.Timedelta(days=calibration_days)
    parts = {
        "train": frame[frame["sent_at"] < calibration_start],
        "calibration": frame[
            (frame["sent_at"] >= calibration_start) & (frame["sent_at"] < holdout_start)
        ],
        "holdout": frame[frame["sent_at"] >= holdout_start],
    }
    for name, part in parts.items():
        positives = int(part[label].sum())
        if part.empty:
            raise InvalidInputError(
                f"the {name} part of the time split is empty (holdout {holdout_days} d, "
                f"calibration {calibration_days} d); the data spans too few days",
                field="window",
            )
        if positives < MIN_POSITIVES or positives == len(part):
            raise InvalidInputError(
                f"the {name} part has {positives} positive {label!r} labels out of {len(part)}; "
                f"need at least {MIN_POSITIVES} positives and some negatives",
                field=label,
            )
    return TimeSplit(
        train=parts["train"],
        calibration=parts["calibration"],
        holdout=parts["holdout"],
        calibration_start=calibration_start,
        holdout_start=holdout_start,
    )


def model_input(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """The model's input columns: categories as strings, numbers as float64 (NaN if missing).

    Training, evaluation and the logged signature all use this, and serving sends the same
    types, so a model never sees integers in one place and floats in another.
    """
    x = frame[[*categorical, *numeric]].copy()
    x[list(numeric)] = x[list(numeric)].astype("float64")
    for c in categorical:
        x[c] = x[c].astype("string").fillna("missing").astype(object)
    return x


def _fit_early_stopped(pipeline: Any, x: pd.DataFrame, y: np.ndarray) -> Any:
    """Fit with early stopping on the most recent tenth of the training rows.

    Email labels are sparse; a fixed number of trees overfits a small audience and underfits
    a large one. The stopping rows are the latest of the training part (rows are in time
    order), so neither calibration nor holdout data chooses the number of trees.
    """
    import lightgbm

    cut = int(len(x) * 0.9)
    if cut < 1_000 or len(np.unique(y[cut:])) < 2:
        return pipeline.fit(x, y)
    # The preparation is fitted once and its steps are the pipeline's own, so fitting them
    # one by one leaves the whole pipeline fitted (as pipeline.fit would, without a second
    # pass of the encoder over the training rows).
    prepare, model = pipeline[:-1], pipeline[-1]
    model.fit(
        prepare.fit_transform(x.iloc[:cut]),
        y[:cut],
        eval_X=prepare.transform(x.iloc[cut:]),
        eval_y=y[cut:],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    return pipeline


def fit_and_evaluate(
    frame: pd.DataFrame,
    label: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout_days: int = 14,
    calibration_days: int = 7,
    progress: Progress | None = None,
    fit_lightgbm: Callable[[pd.DataFrame], Any] | None = None,
) -> FitResult:
    """Fit LightGBM and the logistic baseline, calibrate both, evaluate on the holdout.

    ``fit_lightgbm`` trains the LightGBM pipeline elsewhere (e.g. on a Dask cluster) from the
    raw training rows; by default it is fitted in process with early stopping.
    """
    step = progress or (lambda _msg: None)
    missing = [c for c in (*numeric, *categorical, label, "sent_at") if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"training frame lacks columns {missing}", field="features")
    split = time_split(frame, label, holdout_days=holdout_days, calibration_days=calibration_days)

    def xy(part: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        return model_input(part, numeric, categorical), part[label].to_numpy(dtype=int)

    x_train, y_train = xy(split.train)
    x_cal, y_cal = xy(split.calibration)
    x_hold, y_hold = xy(split.holdout)
    step(f"fitting LightGBM on {len(x_train):,} sends")
    if fit_lightgbm is None:
        lgbm = _fit_early_stopped(
            make_lightgbm(numeric, categorical, params, seed=seed), x_train, y_train
        )
    else:
        lgbm = fit_lightgbm(split.train)
    step("fitting the logistic-regression baseline")
    base = make_baseline(numeric, categorical).fit(x_train, y_train)
    step(f"calibrating on {len(x_cal):,} later sends")
    model = calibrate(lgbm, x_cal, y_cal)
    baseline = calibrate(base, x_cal, y_cal, method="sigmoid")
    step(f"evaluating on the {len(x_hold):,} most recent sends")
    return FitResult(
        model=model,
        baseline=baseline,
        metrics=evaluate(y_hold, positive_proba(model, x_hold)),
        baseline_metrics=evaluate(y_hold, positive_proba(baseline, x_hold)),
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        split=split,
        params={**(params or {}), "seed": seed},
    )
