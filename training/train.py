"""One entry point per model: ``train(settings, "engagement" | "send-time" | "propensity")``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inboxlab.settings import Settings
from training.dataset import build_training_set
from training.fit import fit_and_evaluate
from training.specs import spec_for
from training.tracking import LoggedModel, fingerprint, log_training_run

__all__ = ["train"]


def train(
    settings: Settings,
    kind: str,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout_days: int = 14,
    calibration_days: int = 7,
    progress: Callable[[str], None] | None = None,
) -> LoggedModel:
    """Build the training set, fit, calibrate, evaluate, log to MLflow, alias @challenger.

    Nothing is registered when the data cannot give a model (empty window, a single class,
    too few positives, an unknown feature service): the error says which.
    """
    spec = spec_for(kind)
    data = build_training_set(settings, spec, progress=progress)
    result = fit_and_evaluate(
        data.frame,
        spec.label,
        data.numeric,
        data.categorical,
        params={**spec.lgbm_params, **(params or {})},
        seed=seed,
        holdout_days=holdout_days,
        calibration_days=calibration_days,
        progress=progress,
    )
    if progress:
        progress("logging to MLflow")
    return log_training_run(
        settings,
        spec,
        result,
        data_fingerprint=fingerprint(data.frame[[*result.features, spec.label]]),
        extra_params={"log_end": data.log_end.isoformat()},
    )
