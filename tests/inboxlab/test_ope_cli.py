"""``inboxlab ope EXPERIMENT_ID``: logged decisions, arms rescored by the engagement champion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
from mlflow import MlflowClient
from typer.testing import CliRunner

from inboxlab.cli import app
from inboxlab.experiment import parse_definition
from inboxlab.records import Action, DecisionRecord, EventKind, EventRecord
from inboxlab.settings import Settings
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from tests.serving.models import planted_pipeline
from training.specs import SPECS, ModelKind
from training.tracking import client_for

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _log_decisions(settings: Settings) -> None:
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    ExperimentStore(store.engine).create(
        parse_definition(
            {
                "id": "ope-1",
                "type": "bandit",
                "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
            }
        )
    )
    rng = np.random.default_rng(2)
    events = []
    for i in range(600):
        arm = ["v0", "v1", "v2"][int(rng.integers(3))]
        store.record_decision(
            DecisionRecord(
                decision_id=f"d{i}",
                recipient_id=f"r{i}",
                campaign_id="c",
                experiment_id="ope-1",
                decided_at=T0,
                action=Action.SEND,
                variant_id=arm,
                variant_propensity=1 / 3,
                send_at=T0 + timedelta(hours=1),
                segment="casual",
                policy="bandit",
            ),
            features={"timezone": "UTC", "opens_90d": 3.0},
        )
        if rng.random() < (0.3 if arm == "v1" else 0.05):
            events.append(
                EventRecord(
                    recipient_id=f"r{i}",
                    kind=EventKind.CLICK,
                    occurred_at=T0 + timedelta(hours=2),
                    decision_id=f"d{i}",
                )
            )
    store.record_outcomes(events)
    store.close()


def _register_engagement_champion(settings: Settings) -> None:
    client = client_for(settings)
    name = SPECS[ModelKind.ENGAGEMENT].registered_name
    experiment = client.get_experiment_by_name("inboxlab-training")
    assert experiment is not None
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.sklearn.log_model(
            planted_pipeline(ModelKind.ENGAGEMENT, best_variant="v1"),
            name="model",
            registered_model_name=name,
            serialization_format="cloudpickle",
        )
    MlflowClient().set_registered_model_alias(name, "champion", info.registered_model_version)


def test_ope_of_a_stored_experiment_includes_greedy_on_model_scores(settings: Settings) -> None:
    _log_decisions(settings)
    _register_engagement_champion(settings)
    result = CliRunner().invoke(app, ["ope", "ope-1", "--bootstrap", "50", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "greedy" in result.output.lower()
    assert "uniform" in result.output.lower()


def test_ope_of_an_unknown_experiment_is_a_clear_error(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["ope", "nope"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
