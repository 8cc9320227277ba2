from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from features.online import InMemoryFeatureClient
from inboxlab.settings import Settings
from serving.app import create_app
from serving.batch import BATCH_HEAP
from serving.schemas import DecisionResponse
from tests.serving.models import planted_models

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).isoformat()


@pytest.fixture(scope="module")
def models_factory() -> object:
    return planted_models(Settings())


@pytest.fixture
def client(settings: Settings, models_factory: object) -> Iterator[TestClient]:
    app = create_app(
        settings,
        features=InMemoryFeatureClient({"r1": {"timezone": "Europe/Berlin"}}),
        models=models_factory,  # type: ignore[arg-type]
        rng=np.random.default_rng(0),
    )
    with TestClient(app) as c:
        yield c


def decide_key(client: TestClient) -> dict[str, str]:
    created = client.app_state["resources"].keys.create("batch", scopes=("decide",))
    return {"Authorization": f"Bearer {created.plaintext}"}


def test_batch_lines_are_decision_responses_in_order(client: TestClient) -> None:
    asked = [{"recipient_id": f"r{i % 3}", "campaign_id": "c1", "now": NOW} for i in range(30)]
    response = client.post(
        "/v1/decisions/batch", json={"decisions": asked}, headers=decide_key(client)
    )
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert [json.loads(line)["recipient_id"] for line in lines] == [
        a["recipient_id"] for a in asked
    ]
    for line in lines:
        assert DecisionResponse.model_validate_json(line).model_dump_json() == line
    assert len({json.loads(line)["decision_id"] for line in lines}) == 30


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"campaign_id": "c1"}, "body.decisions.1.recipient_id"),
        ({"recipient_id": "a@b.example", "campaign_id": "c1"}, "body.decisions.1.recipient_id"),
        ({"recipient_id": "r1", "campaign_id": "c1", "colour": 1}, "body.decisions.1.colour"),
        (
            {"recipient_id": "r1", "campaign_id": "c1", "variants": ["a", "a"]},
            "body.decisions.1.variants",
        ),
    ],
)
def test_an_invalid_item_is_a_422_naming_it(
    client: TestClient, item: dict[str, object], field: str
) -> None:
    good = {"recipient_id": "r1", "campaign_id": "c1"}
    response = client.post(
        "/v1/decisions/batch", json={"decisions": [good, item]}, headers=decide_key(client)
    )
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_malformed_json_and_empty_batches_are_422(client: TestClient) -> None:
    headers = {**decide_key(client), "Content-Type": "application/json"}
    assert client.post("/v1/decisions/batch", content=b"{", headers=headers).status_code == 422
    empty = client.post("/v1/decisions/batch", json={"decisions": []}, headers=headers)
    assert empty.status_code == 422


def test_an_unknown_experiment_refuses_the_batch_before_any_line(client: TestClient) -> None:
    asked = [
        {"recipient_id": "r1", "campaign_id": "c1"},
        {"recipient_id": "r2", "campaign_id": "c1", "experiment_id": "nope"},
    ]
    response = client.post(
        "/v1/decisions/batch", json={"decisions": asked}, headers=decide_key(client)
    )
    assert response.status_code == 404
    assert "nope" in response.text


def test_batch_needs_the_decide_scope_and_documents_its_body(client: TestClient) -> None:
    body = {"decisions": [{"recipient_id": "r1", "campaign_id": "c1"}]}
    assert client.post("/v1/decisions/batch", json=body).status_code == 401
    operation = client.get("/openapi.json").json()["paths"]["/v1/decisions/batch"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    item = schema["properties"]["decisions"]["items"]
    assert {"recipient_id", "campaign_id", "send_window"} <= set(item["properties"])
    assert "$ref" not in json.dumps(schema)


def _no_batch_held() -> bool:
    gc.collect()  # a stream dropped inside a reference cycle is freed by the collector
    return BATCH_HEAP.holders == 0 and gc.get_freeze_count() == 0


def test_a_streamed_batch_keeps_its_requests_frozen_until_the_stream_is_done(
    client: TestClient,
) -> None:
    asked = [{"recipient_id": f"r{i % 3}", "campaign_id": "c1", "now": NOW} for i in range(12)]
    seen: list[tuple[int, int]] = []
    with client.stream(
        "POST", "/v1/decisions/batch", json={"decisions": asked}, headers=decide_key(client)
    ) as response:
        for _line in response.iter_lines():
            seen.append((BATCH_HEAP.holders, gc.get_freeze_count()))
    assert len(seen) == 12
    assert all(holders == 1 and frozen > 0 for holders, frozen in seen)
    assert _no_batch_held()


def test_a_batch_left_by_its_client_or_refused_releases_its_hold(client: TestClient) -> None:
    asked = [{"recipient_id": "r1", "campaign_id": "c1", "now": NOW}] * 3
    key = decide_key(client)
    with client.stream(
        "POST", "/v1/decisions/batch", json={"decisions": asked}, headers=key
    ) as response:
        assert response.status_code == 200  # the client leaves before reading a line
    assert _no_batch_held()
    refused = [{"recipient_id": "r1", "campaign_id": "c1", "experiment_id": "nope"}]
    response = client.post("/v1/decisions/batch", json={"decisions": refused}, headers=key)
    assert response.status_code == 404
    assert _no_batch_held()
