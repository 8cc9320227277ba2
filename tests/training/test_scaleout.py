from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from inboxlab.settings import MlflowSettings, Settings
from tests.conftest import need
from training.estimator import calibrate, make_lightgbm, positive_proba
from training.fit import fit_and_evaluate, time_split
from training.registry import list_versions
from training.specs import SPECS, ModelKind
from training.tracking import CHALLENGER, fingerprint, log_training_run

# DaskLGBMClassifier always forwards the scikit-learn ``n_jobs`` parameter and then warns
# that Dask's per-worker thread count overrides it.
pytestmark = pytest.mark.filterwarnings("ignore:Parameter n_jobs will be ignored:UserWarning")

NUMERIC = ["recency", "score"]
CATEGORICAL = ["variant_id"]
#: Fewer trees than the defaults keep the test short; both backends get the same ones.
PARAMS = {"n_estimators": 120}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    available = all(importlib.util.find_spec(m) for m in ("dask", "distributed"))
    need("dask", available, "dask or distributed is not installed")
    from training.scaleout import local_client

    with local_client(n_workers=2, threads_per_worker=1) as dask_client:
        yield dask_client


@pytest.mark.dask
def test_dask_lightgbm_ranks_as_well_as_in_process_lightgbm(
    client: Any, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from training.scaleout import fit_lightgbm_dask

    frame, truth = sends
    split = time_split(frame, "clicked")
    cols = [*CATEGORICAL, *NUMERIC]
    x_hold, y_hold = split.holdout[cols], split.holdout["clicked"].to_numpy()

    distributed = fit_lightgbm_dask(
        split.train, "clicked", NUMERIC, CATEGORICAL, client=client, params=PARAMS
    )
    local = make_lightgbm(NUMERIC, CATEGORICAL, PARAMS).fit(
        split.train[cols], split.train["clicked"]
    )

    p = positive_proba(distributed, x_hold)
    assert p.shape == (len(x_hold),)
    assert np.all((p > 0) & (p < 1))
    auc_dask = roc_auc_score(y_hold, p)
    auc_local = roc_auc_score(y_hold, positive_proba(local, x_hold))
    oracle = roc_auc_score(y_hold, truth[split.holdout.index])
    assert abs(auc_dask - auc_local) < 0.01
    assert auc_dask / oracle > 0.97
    # The returned pipeline is an ordinary one: it calibrates like an in-process fit.
    calibrated = calibrate(
        distributed, split.calibration[cols], split.calibration["clicked"].to_numpy()
    )
    assert 0 < positive_proba(calibrated, x_hold).mean() < 0.5


@pytest.mark.dask
def test_dask_frame_input_and_full_evaluation_give_a_loggable_result(
    client: Any, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import dask.dataframe as dd

    from training.scaleout import fit_and_evaluate_dask, fit_lightgbm_dask

    frame, _ = sends
    result = fit_and_evaluate_dask(
        frame, "clicked", NUMERIC, CATEGORICAL, client=client, params=PARAMS
    )
    assert result.metrics["roc_auc"] > 0.7
    assert result.metrics["roc_auc"] >= result.baseline_metrics["roc_auc"] - 0.01
    assert result.params["backend"] == "dask"

    lazy = dd.from_pandas(frame.head(20_000), npartitions=4)  # type: ignore[no-untyped-call]
    pipeline = fit_lightgbm_dask(
        lazy, "clicked", NUMERIC, CATEGORICAL, client=client, params=PARAMS
    )
    unseen = frame.tail(5)[[*CATEGORICAL, *NUMERIC]].assign(variant_id="v9")
    assert positive_proba(pipeline, unseen).shape == (5,)


@pytest.fixture
def mlflow_postgres_uri(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one MLflow tracking store, dropped afterwards."""
    import psycopg

    name = f"mlflow_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            # FORCE: MLflow's SQLAlchemy pool still holds connections to the database.
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_training_run_is_logged_and_registered_in_a_postgres_tracking_store(
    mlflow_postgres_uri: str, tmp_path: Path, sends: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from mlflow import MlflowClient

    spec = SPECS[ModelKind.ENGAGEMENT]
    settings = Settings(
        data_dir=tmp_path / "data",
        mlflow=MlflowSettings(
            tracking_uri=mlflow_postgres_uri, artifact_location=str(tmp_path / "artifacts")
        ),
    )
    frame, _ = sends
    result = fit_and_evaluate(frame, "clicked", NUMERIC, CATEGORICAL, params={"n_estimators": 40})
    logged = log_training_run(
        settings, spec, result, data_fingerprint=fingerprint(result.split.holdout)
    )

    client = MlflowClient(tracking_uri=mlflow_postgres_uri)
    version = client.get_model_version_by_alias(spec.registered_name, CHALLENGER)
    assert str(version.version) == logged.version
    assert version.run_id == logged.run_id
    run = client.get_run(logged.run_id)
    assert run.data.params["feature_service"] == spec.feature_service
    assert run.data.metrics["roc_auc"] == pytest.approx(logged.metrics["roc_auc"])
    assert any((tmp_path / "artifacts").rglob("MLmodel"))
    listed = list_versions(settings)
    assert [(v.version, v.aliases) for v in listed] == [(logged.version, (CHALLENGER,))]
