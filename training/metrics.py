"""Evaluation metrics of a probability model, as logged to MLflow for model and baseline."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "METRIC_NAMES",
    "evaluate",
    "expected_auc",
    "expected_calibration_error",
    "top_decile_lift",
]

METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile")


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error with equal-mass bins.

    The weighted mean, over ``bins`` quantile bins of the predictions, of
    ``|mean(y) - mean(p)|``. Equal-mass bins, because email rates pile up near zero and
    equal-width bins would leave most of them empty.

    Examples
    --------
    >>> expected_calibration_error([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0])
    0.0
    >>> round(expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], bins=2), 3)
    0.0
    """
    y = np.asarray(y_true, dtype=float)
    q = np.asarray(p, dtype=float)
    if y.size == 0:
        return float("nan")
    order = np.argsort(q, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, y.size)):
        if chunk.size:
            total += chunk.size * abs(y[chunk].mean() - q[chunk].mean())
    return float(total / y.size)


def expected_auc(p_true: np.ndarray, score: np.ndarray) -> float:
    """The AUC that ``score`` has in expectation when outcomes are drawn with ``p_true``.

    Each row counts as a positive with weight ``p`` and as a negative with weight ``1 - p``:
    the weighted AUC is the expected number of correctly ordered (positive, negative) pairs
    over the expected number of pairs.

    Examples
    --------
    >>> p = np.array([0.1, 0.2, 0.7])
    >>> round(expected_auc(p, p), 3) > round(expected_auc(p, -p), 3)
    True
    """
    n = len(p_true)
    y = np.r_[np.ones(n), np.zeros(n)]
    weight = np.r_[p_true, 1.0 - p_true]
    return float(roc_auc_score(y, np.r_[score, score], sample_weight=weight))


def top_decile_lift(y_true: ArrayLike, p: ArrayLike) -> float:
    """Positive rate among the 10% highest predictions divided by the overall rate.

    >>> top_decile_lift([1] + [0] * 9 + [1] * 0, [0.9] + [0.1] * 9)
    10.0
    """
    y = np.asarray(y_true, dtype=float)
    q = np.asarray(p, dtype=float)
    base = y.mean() if y.size else 0.0
    if base == 0:
        return float("nan")
    k = max(1, int(np.ceil(0.1 * y.size)))
    top = np.argsort(-q, kind="stable")[:k]
    return float(y[top].mean() / base)


def evaluate(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` for predictions ``p`` of binary ``y_true``."""
    y = np.asarray(y_true, dtype=int)
    q = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, q)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, q)) if both else float("nan"),
        "log_loss": float(log_loss(y, q, labels=[0, 1])),
        "brier": float(brier_score_loss(y, q)),
        "ece": expected_calibration_error(y, q),
        "lift_top_decile": top_decile_lift(y, q),
    }
