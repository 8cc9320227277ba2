"""Evaluation plots logged with every run: ROC, calibration and feature importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: runs train on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

__all__ = ["calibration_figure", "importance_figure", "roc_figure"]


def roc_figure(y: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """ROC curves of each named prediction vector against ``y``."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(y: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """Reliability diagram (equal-mass bins) of each named prediction vector."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, p in curves.items():
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
        top = max(top, float(np.max(mean)), float(np.max(frac)))
    ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration (holdout)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def importance_figure(model: Any, features: Sequence[str], top: int = 25) -> Figure:
    """Gain importance of the LightGBM booster inside a calibrated pipeline."""
    booster = _booster(model)
    gains = booster.feature_importance(importance_type="gain")
    names = booster.feature_name()
    order = np.argsort(gains)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(order) + 1)))
    ax.barh([names[i] for i in order], gains[order])
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def _booster(model: Any) -> Any:
    # CalibratedClassifierCV → FrozenEstimator → Pipeline → LGBMClassifier → Booster
    inner = model.calibrated_classifiers_[0].estimator
    pipeline = getattr(inner, "estimator", inner)
    return pipeline.named_steps["model"].booster_
