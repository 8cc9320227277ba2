"""Small real models with the production feature columns, trained in a second.

Each is the same kind of pipeline training registers (ordinal encoding, LightGBM, sigmoid
calibration), fitted on random features with a planted signal, so tests know what it prefers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engineering.tables import DEFAULTS
from serving.scoring.compiled import CompiledModel
from serving.scoring.models import LoadedModel, ModelSet
from training.dataset import model_columns
from training.estimator import calibrate, make_lightgbm
from training.specs import SPECS, ModelKind


def _columns(kind: ModelKind) -> tuple[list[str], list[str]]:
    numeric, categorical = model_columns(SPECS[kind])
    return list(numeric), list(categorical)


def planted_model(
    kind: ModelKind, *, best_hour: int = 10, best_variant: str = "v1"
) -> CompiledModel:
    """A model whose probability peaks at local ``best_hour`` and variant ``best_variant``."""
    return CompiledModel(planted_pipeline(kind, best_hour=best_hour, best_variant=best_variant))


def planted_pipeline(kind: ModelKind, *, best_hour: int = 10, best_variant: str = "v1") -> object:
    """The calibrated scikit-learn pipeline behind :func:`planted_model`."""
    rng = np.random.default_rng(0)
    n = 6_000
    numeric, categorical = _columns(kind)
    frame = pd.DataFrame({c: np.full(n, float(DEFAULTS.get(c, 0.0) or 0.0)) for c in numeric})
    for c in categorical:
        frame[c] = rng.choice(["v0", "v1", "v2"], n) if c == "variant_id" else "UTC"
    if "local_hour" in frame:
        frame["local_hour"] = rng.integers(0, 24, n).astype(float)
        frame["local_weekday"] = rng.integers(0, 7, n).astype(float)
    logit = np.full(n, -2.0)
    if "local_hour" in frame:
        logit += 2.5 * (frame["local_hour"].to_numpy() == best_hour)
    if "variant_id" in frame:
        logit += 1.5 * (frame["variant_id"].to_numpy() == best_variant)
    if kind is ModelKind.PROPENSITY:
        frame["engagement_score"] = rng.exponential(1.0, n)
        logit += frame["engagement_score"].to_numpy()
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x = frame[[*categorical, *numeric]]
    fitted = make_lightgbm(numeric, categorical, {"n_estimators": 40, "min_child_samples": 20})
    fitted.fit(x, y)
    return calibrate(fitted, x, y, method="sigmoid")


def planted_models(settings: object, **kwargs: object) -> ModelSet:
    """A :class:`ModelSet` holding a planted model of every kind (no registry involved)."""
    models = ModelSet(settings)  # type: ignore[arg-type]
    models.models = {
        kind: LoadedModel(kind, SPECS[kind].registered_name, "1", planted_model(kind, **kwargs))  # type: ignore[arg-type]
        for kind in ModelKind
    }
    return models
