from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.metrics import evaluate, expected_calibration_error, top_decile_lift


def _slow_ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    pairs = sorted(zip(p.tolist(), y.tolist(), strict=True), key=lambda t: t[0])
    n = len(pairs)
    # numpy's array_split puts the larger chunks first; mirror it exactly
    sizes = [n // bins + (1 if i < n % bins else 0) for i in range(bins)]
    edges = [sum(sizes[:i]) for i in range(bins + 1)]
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        chunk = pairs[lo:hi]
        if chunk:
            total += len(chunk) * abs(
                sum(t[1] for t in chunk) / len(chunk) - sum(t[0] for t in chunk) / len(chunk)
            )
    return total / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_matches_a_slow_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 8, 1_003)
    y = (rng.random(1_003) < np.clip(p * 1.3, 0, 1)).astype(int)
    assert expected_calibration_error(y, p, bins=10) == pytest.approx(_slow_ece(y, p, 10))


def test_ece_is_small_for_calibrated_and_large_for_shifted_predictions() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1, 10, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, p * 2) > 0.05


def test_top_decile_lift_against_a_hand_count() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 10)
    p = np.where(y == 1, 0.9, 0.1) * (np.arange(100) % 2 == 0)  # half the positives ranked high
    top = np.argsort(-p, kind="stable")[:10]
    assert top_decile_lift(y, p) == pytest.approx(y[top].mean() / y.mean())


def test_evaluate_agrees_with_sklearn_and_handles_one_class() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    assert evaluate(y, p)["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    single = evaluate(np.zeros(10, dtype=int), np.full(10, 0.1))
    assert np.isnan(single["roc_auc"])
    assert single["brier"] == pytest.approx(0.01)
