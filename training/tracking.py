"""MLflow: one run per training, the model registered with the ``@challenger`` alias."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from inboxlab.errors import InvalidInputError
from inboxlab.settings import Settings
from training.estimator import positive_proba
from training.fit import FitResult, model_input
from training.specs import ModelSpec

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT",
    "HOLDOUT_ARTIFACT",
    "LoggedModel",
    "client_for",
    "fingerprint",
    "log_training_run",
]

logger = logging.getLogger(__name__)

EXPERIMENT = "inboxlab-training"
CHALLENGER = "challenger"
CHAMPION = "champion"
#: The holdout rows (features + label) are stored with the run, so promotion can score the
#: champion on exactly the data the challenger was judged on.
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
#: What a logged pipeline needs to load. Stated rather than inferred: MLflow's inference
#: re-imports the model in a subprocess, which took 10 s of every 12 s spent logging.
_MODEL_PACKAGES = ("scikit-learn", "lightgbm", "numpy", "pandas", "scipy", "skops")
#: Models are stored with skops, which rebuilds objects of allowed types only, rather than
#: unpickling whatever the artifact says (code a tampered artifact would run on load). The
#: types a pipeline holds beyond those skops allows by default (scikit-learn's public
#: estimators, NumPy arrays, builtins): LightGBM's model, the calibrator's private classes
#: and NumPy's dtype objects (the encoders' ``dtype`` parameter).
SKOPS_TRUSTED_TYPES = (
    "collections.OrderedDict",
    "numpy.dtype",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


def _log_pipeline(model: Any, name: str, **kwargs: Any) -> Any:
    """Log ``model`` in skops format; refuse one that holds a type not allowed on load.

    Raises
    ------
    InvalidInputError
        The pipeline holds a type outside :data:`SKOPS_TRUSTED_TYPES` (it could be stored,
        but not loaded).
    """
    import skops.io

    extra = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    extra -= set(SKOPS_TRUSTED_TYPES)
    if extra:
        raise InvalidInputError(
            f"the {name} pipeline holds types skops would not load: {sorted(extra)}; "
            "add them to training.tracking.SKOPS_TRUSTED_TYPES if they are safe",
            field="model",
        )
    return mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pip_requirements=_pip_requirements(),
        **kwargs,
    )


def _pip_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in _MODEL_PACKAGES]


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """Where a training run went."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]


def client_for(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    if settings.mlflow.tracking_uri.startswith("sqlite:///"):
        db = Path(settings.mlflow.tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = settings.mlflow.artifact_location
        if "://" not in location:
            location = Path(location).resolve().as_uri()
        client.create_experiment(EXPERIMENT, artifact_location=location)
    return client


def fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of the training data: same rows, same fingerprint."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def log_training_run(
    settings: Settings,
    spec: ModelSpec,
    result: FitResult,
    *,
    data_fingerprint: str,
    extra_params: dict[str, Any] | None = None,
) -> LoggedModel:
    """Log params, metrics, plots, holdout and model; register it and alias it @challenger."""
    client = client_for(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    holdout = result.split.holdout
    x_hold = model_input(holdout, result.numeric, result.categorical)
    y_hold = holdout[spec.label].to_numpy(dtype=int)
    p_model = positive_proba(result.model, x_hold)
    p_base = positive_proba(result.baseline, x_hold)
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.set_tags({"model": spec.kind.value, "feature_service": spec.feature_service})
        mlflow.log_params(
            {
                "feature_service": spec.feature_service,
                "label": spec.label,
                "data_fingerprint": data_fingerprint,
                "rows_train": len(result.split.train),
                "rows_calibration": len(result.split.calibration),
                "rows_holdout": len(holdout),
                "holdout_start": result.split.holdout_start.isoformat(),
                "calibration_start": result.split.calibration_start.isoformat(),
                "features": ",".join(result.features),
                **{f"lgbm_{k}": v for k, v in result.params.items()},
                **(extra_params or {}),
            }
        )
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {f"baseline_{k}": v for k, v in result.baseline_metrics.items() if np.isfinite(v)}
        )
        # Imported here: the serving app imports this module to load models and never draws.
        import matplotlib.pyplot as plt

        from training.plots import calibration_figure, importance_figure, roc_figure

        curves = {"LightGBM": p_model, "logistic baseline": p_base}
        for name, fig in (
            ("plots/roc.png", roc_figure(y_hold, curves)),
            ("plots/calibration.png", calibration_figure(y_hold, curves)),
            ("plots/feature_importance.png", importance_figure(result.model, result.features)),
        ):
            mlflow.log_figure(fig, name)
            plt.close(fig)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
            stored = x_hold.copy()
            stored[spec.label] = y_hold
            stored["sent_at"] = holdout["sent_at"].to_numpy()
            stored.to_parquet(path)
            mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))
        info = _log_pipeline(
            result.model,
            "model",
            signature=infer_signature(x_hold.head(100), p_model[:100]),
            input_example=x_hold.head(5),
            registered_model_name=spec.registered_name,
            pyfunc_predict_fn="predict_proba",
        )
        _log_pipeline(result.baseline, "baseline")
    version = str(info.registered_model_version)
    client.set_registered_model_alias(spec.registered_name, CHALLENGER, version)
    client.update_registered_model(spec.registered_name, description=spec.description)
    logger.info("registered %s version %s as @%s", spec.registered_name, version, CHALLENGER)
    return LoggedModel(
        name=spec.registered_name,
        version=version,
        run_id=run.info.run_id,
        metrics=result.metrics,
        baseline_metrics=result.baseline_metrics,
    )
