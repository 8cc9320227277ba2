"""The API answers what its OpenAPI document says, for requests generated from that document.

Schemathesis generates valid and invalid requests for every operation of ``/openapi.json``
and checks each answer: never a 5xx, only documented status codes, the documented content
type, headers and body schema, and authentication enforced. Three of its checks do not
apply here:

- ``positive_data_acceptance``: the document cannot express every rule of a valid request
  (a time zone that exists, a window whose end follows its start, arms with unique ids);
  those requests get a 422 that names the field.
- ``negative_data_rejection``: pydantic's lax mode takes ``"true"`` or ``1`` for a boolean and
  ``"1.5"`` for a number, as FastAPI applications do by default.
- ``allow_header_conformance``: Starlette's 405 lists the methods of the route it matched
  first, not of every route on the path (``GET`` and ``POST /v1/experiments``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
)

from features.online import InMemoryFeatureClient
from inboxlab.cli.serve import render_report
from inboxlab.settings import Settings, get_settings
from serving.app import create_app
from tests.serving.models import planted_models

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

EXPERIMENT = {"id": "e1", "type": "bandit", "arms": [{"id": "v0", "control": True}, {"id": "v1"}]}
NOT_APPLICABLE = [allow_header_conformance, negative_data_rejection, positive_data_acceptance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app (its lifespan running) with one experiment, and a key with every scope."""
    root = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("INBOXLAB_DATA_DIR", str(root / "data"))
        env.setenv("INBOXLAB_ENVIRONMENT", "test")
        env.setenv("INBOXLAB_MLFLOW__TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        env.setenv("INBOXLAB_MLFLOW__ARTIFACT_LOCATION", str(root / "artifacts"))
        get_settings.cache_clear()
        app = create_app(
            get_settings(),
            features=InMemoryFeatureClient({"r1": {"timezone": "Europe/Berlin"}}),
            models=planted_models(Settings()),  # type: ignore[arg-type]
            report_renderer=render_report,
            rng=np.random.default_rng(0),
        )
        with TestClient(app) as client:
            ring = client.app_state["resources"].keys
            key = ring.create("contract", scopes=("decide", "outcomes", "admin")).plaintext
            headers = {"Authorization": f"Bearer {key}"}
            assert (
                client.post("/v1/experiments", json=EXPERIMENT, headers=headers).status_code == 201
            )
            yield app, key
        get_settings.cache_clear()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    served: tuple[Any, str], mode: GenerationMode
) -> None:
    app, key = served
    operations = _operations(app)
    assert len(operations) >= 12  # every endpoint of DESIGN.md is in the document
    for operation in operations:

        @settings(
            max_examples=25,
            derandomize=True,  # the same requests on every run: CI fails only on a change
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"}, excluded_checks=NOT_APPLICABLE
            )

        try:
            answers_as_documented()
        except Unsatisfiable:
            # No input to make invalid (``/healthz``, ``/readyz``): nothing negative to send.
            assert mode is GenerationMode.NEGATIVE
