from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import Model

from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings
from training.fit import FitResult, fit_and_evaluate
from training.registry import list_versions, promote
from training.specs import SPECS, ModelKind
from training.tracking import fingerprint, log_training_run

SPEC = SPECS[ModelKind.ENGAGEMENT]


def _fit(frame: pd.DataFrame, *, weak: bool = False) -> FitResult:
    # A weak model: two stumps, on the same data and features as the good one.
    params = {"n_estimators": 2, "num_leaves": 2} if weak else {"n_estimators": 60}
    return fit_and_evaluate(frame, "clicked", ["recency", "score"], ["variant_id"], params=params)


def _log(settings: Settings, result: FitResult) -> str:
    logged = log_training_run(
        settings, SPEC, result, data_fingerprint=fingerprint(result.split.holdout)
    )
    return logged.version


def test_run_logs_metrics_plots_holdout_and_registers_a_challenger(
    settings: Settings, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = sends
    version = _log(settings, _fit(frame))
    client = MlflowClient()
    mv = client.get_model_version_by_alias(SPEC.registered_name, "challenger")
    assert str(mv.version) == version
    run = client.get_run(mv.run_id)
    assert {"roc_auc", "ece", "baseline_roc_auc", "lift_top_decile"} <= set(run.data.metrics)
    assert run.data.params["feature_service"] == SPECS[ModelKind.ENGAGEMENT].feature_service
    artifacts = {a.path for a in client.list_artifacts(mv.run_id, "plots")}
    assert artifacts == {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"}
    model = mlflow.sklearn.load_model(f"models:/{SPEC.registered_name}@challenger")
    proba = model.predict_proba(frame[["variant_id", "recency", "score"]].head(3))
    assert proba.shape == (3, 2)
    # Stored with skops (objects of allowed types only), not as a pickle.
    flavor = Model.load(f"models:/{SPEC.registered_name}@challenger").flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["pickled_model"] == "model.skops"


class _Unvetted:
    """A type no pipeline of training holds, so skops would refuse to load it."""


def test_a_pipeline_holding_an_unvetted_type_is_refused_and_nothing_registered(
    settings: Settings, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = sends
    result = _fit(frame)
    result.model.note_ = _Unvetted()
    with pytest.raises(InvalidInputError, match="_Unvetted") as caught:
        _log(settings, result)
    assert caught.value.field == "model"
    assert MlflowClient().search_model_versions(f"name='{SPEC.registered_name}'") == []


def test_promotion_needs_a_win_on_the_same_holdout_unless_forced(
    settings: Settings, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = sends
    with pytest.raises(NotFoundError, match="challenger"):
        promote(settings, "engagement")
    good = _log(settings, _fit(frame))
    first = promote(settings, "engagement")
    assert first.promoted and first.champion_before is None
    worse = _log(settings, _fit(frame, weak=True))
    second = promote(settings, "engagement")
    assert not second.promoted
    assert second.champion_score is not None and second.challenger_score > second.champion_score
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(SPEC.registered_name, "champion").version) == good
    forced = promote(settings, "engagement", force=True)
    assert forced.promoted and forced.forced
    assert str(client.get_model_version_by_alias(SPEC.registered_name, "champion").version) == worse
    assert client.get_model_version(SPEC.registered_name, worse).tags["promoted_by_force"] == "true"
    listed = {v.version: v.aliases for v in list_versions(settings)}
    assert listed == {good: (), worse: ("challenger", "champion")}
