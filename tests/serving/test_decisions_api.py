from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from features.online import InMemoryFeatureClient
from inboxlab.cli.serve import render_report
from inboxlab.settings import Settings
from serving.app import create_app
from tests.serving.models import planted_models

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).isoformat()
EXPERIMENT = {
    "id": "subject-test",
    "type": "bandit",
    "arms": [{"id": "v0", "control": True}, {"id": "v1"}],
    "primary_metric": "click",
}


@pytest.fixture(scope="module")
def models_factory() -> object:
    return planted_models(Settings())


@pytest.fixture
def client(settings: Settings, models_factory: object) -> Iterator[TestClient]:
    settings = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(update={"allocation_refresh_seconds": 1e-6})
        }
    )
    app = create_app(
        settings,
        features=InMemoryFeatureClient({"r1": {"timezone": "Europe/Berlin"}}),
        models=models_factory,  # type: ignore[arg-type]
        report_renderer=render_report,
        rng=np.random.default_rng(0),
    )
    with TestClient(app) as c:
        yield c


def key(client: TestClient, *scopes: str) -> dict[str, str]:
    ring = client.app_state["resources"].keys
    created = ring.create(f"k-{'-'.join(scopes)}-{len(ring.list_keys())}", scopes=scopes)
    return {"Authorization": f"Bearer {created.plaintext}"}


def test_decision_needs_a_key_with_the_decide_scope(client: TestClient) -> None:
    body = {"recipient_id": "r1", "campaign_id": "c1", "now": NOW}
    assert client.post("/v1/decisions", json=body).status_code == 401
    assert (
        client.post("/v1/decisions", json=body, headers=key(client, "outcomes")).status_code == 403
    )
    response = client.post("/v1/decisions", json=body, headers=key(client, "decide"))
    assert response.status_code == 200
    assert response.json()["action"] == "send"


def test_each_decision_is_counted_in_a_decision_group(client: TestClient) -> None:
    headers = key(client, "decide", "admin")
    for rid in ("r1", "r2"):
        body = {"recipient_id": rid, "campaign_id": "c1", "now": NOW}
        assert client.post("/v1/decisions", json=body, headers=headers).status_code == 200
    unknown = {"recipient_id": "r3", "campaign_id": "c1", "experiment_id": "nope"}
    assert client.post("/v1/decisions", json=unknown, headers=headers).status_code == 404
    text = client.get("/metrics", headers=headers).text
    # one request at a time: two groups of one; the refused request is in none
    assert "inboxlab_decision_group_size_count 2.0" in text
    assert "inboxlab_decision_group_size_sum 2.0" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"campaign_id": "c1"}, "body.recipient_id"),
        ({"recipient_id": "ann@example.com", "campaign_id": "c1"}, "body.recipient_id"),
        ({"recipient_id": "r1", "campaign_id": "c1", "now": "2026-03-02T10:00"}, "body.now"),
        (
            {
                "recipient_id": "r1",
                "campaign_id": "c1",
                "send_window": {"start": NOW, "end": "2026-03-01T00:00:00+00:00"},
            },
            "body.send_window",
        ),
        (
            {"recipient_id": "r1", "campaign_id": "c1", "context": {"timezone": "Mars/Base"}},
            "body.context.timezone",
        ),
        ({"recipient_id": "r1", "campaign_id": "c1", "variants": ["a", "a"]}, "body.variants"),
    ],
)
def test_bad_requests_get_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/decisions", json=body, headers=key(client, "decide"))
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_well_formed_decisions_skip_dependency_solving_and_errors_do_not(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.dependencies.utils import solve_dependencies as solve

    solved: list[str] = []

    async def counting(*args: object, **kwargs: object) -> object:
        request = kwargs["request"]
        solved.append(request.url.path)  # type: ignore[attr-defined]
        return await solve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("fastapi.routing.solve_dependencies", counting)
    good = {"recipient_id": "r1", "campaign_id": "c1", "now": NOW}
    headers = key(client, "decide")
    response = client.post("/v1/decisions", json=good, headers=headers)
    assert response.status_code == 200 and response.json()["action"] == "send"
    assert solved == []  # parsed from its bytes, key checked, no dependency solving
    # every other answer is the standard route's
    assert client.post("/v1/decisions", json=good).status_code == 401
    assert client.post("/v1/decisions", json=good, headers=key(client, "admin")).status_code == 403
    bad = client.post("/v1/decisions", json={"campaign_id": "c1"}, headers=headers)
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["body.recipient_id"]
    plain = client.post(
        "/v1/decisions",
        content=json.dumps(good),
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert plain.status_code == 422
    assert solved == ["/v1/decisions"] * 4
    # the fast lane's decision is counted under the route's template like the others
    metrics = client.get("/metrics", headers=key(client, "admin")).text
    assert 'inboxlab_http_requests_total{method="POST",route="/v1/decisions",status="200"} 1.0' in (
        metrics
    )
    # the OpenAPI document still describes the route from its signature
    operation = client.get("/openapi.json").json()["paths"]["/v1/decisions"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "DecisionRequest"
    )


def test_batch_streams_one_line_per_request_in_order(client: TestClient) -> None:
    requests = [{"recipient_id": f"r{i}", "campaign_id": "c1", "now": NOW} for i in range(25)]
    response = client.post(
        "/v1/decisions/batch", json={"decisions": requests}, headers=key(client, "decide")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["recipient_id"] for line in lines] == [f"r{i}" for i in range(25)]


def test_experiment_lifecycle_and_outcomes_move_the_bandit(client: TestClient) -> None:
    admin, decide = key(client, "admin"), key(client, "decide")
    outcomes = key(client, "outcomes")
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 409
    assert client.get("/v1/experiments/subject-test", headers=admin).json()["type"] == "bandit"
    assert client.get("/v1/experiments/nope", headers=admin).status_code == 404
    bad = {**EXPERIMENT, "id": "x", "arms": [{"id": "only", "control": True}]}
    assert client.post("/v1/experiments", json=bad, headers=admin).status_code == 422
    # v1 gets every click: its allocation must grow
    for i in range(150):
        d = client.post(
            "/v1/decisions",
            json={"recipient_id": f"u{i}", "campaign_id": "c1", "experiment_id": "subject-test"},
            headers=decide,
        ).json()
        if d["variant_id"] == "v1":
            event = {
                "recipient_id": f"u{i}",
                "kind": "click",
                "occurred_at": datetime.now(UTC).isoformat(),
                "decision_id": d["decision_id"],
            }
            assert client.post("/v1/outcomes", json=event, headers=outcomes).status_code == 200
    last = [
        client.post(
            "/v1/decisions",
            json={"recipient_id": f"w{i}", "campaign_id": "c1", "experiment_id": "subject-test"},
            headers=decide,
        ).json()
        for i in range(20)
    ]
    p_v1 = {d["variant_propensity"] for d in last if d["variant_id"] == "v1"}
    assert p_v1 and min(p_v1) > 0.9
    report = client.get(
        "/v1/experiments/subject-test/report",
        headers={**admin, "Accept": "application/json"},
    )
    assert report.status_code == 200
    arms = {a["arm"] for a in report.json()["primary"]["arms"]}
    assert arms == {"v0", "v1"}
    html = client.get("/v1/experiments/subject-test/report", headers=admin)
    assert html.status_code == 200 and "subject-test" in html.text


def test_report_of_an_experiment_without_decisions_is_its_prior(client: TestClient) -> None:
    # A newly created experiment (the demo's, right after `make run`) has no sent decision:
    # its report says to keep running rather than failing on an empty unit table.
    admin = key(client, "admin")
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    report = client.get(
        "/v1/experiments/subject-test/report", headers={**admin, "Accept": "application/json"}
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert [(a["arm"], a["units"]) for a in body["primary"]["arms"]] == [("v0", 0), ("v1", 0)]
    assert body["recommendation"]["decision"] == "keep running"
    assert "arm 'v1' has no units; its results are the prior only" in body["warnings"]
    html = client.get("/v1/experiments/subject-test/report", headers=admin)
    assert html.status_code == 200 and "subject-test" in html.text


def test_a_domain_refusal_names_its_field_in_errors_as_validation_does(
    client: TestClient,
) -> None:
    admin, decide = key(client, "admin"), key(client, "decide")
    assert client.post("/v1/experiments", json=EXPERIMENT, headers=admin).status_code == 201
    body = {
        "recipient_id": "r1",
        "campaign_id": "c1",
        "experiment_id": "subject-test",
        "variants": ["v0", "elsewhere"],  # well-formed, but not the experiment's arms
    }
    response = client.post("/v1/decisions", json=body, headers=decide)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["field"], e["type"]) for e in errors] == [("variants", "invalid_input")]
    assert errors[0]["message"] == response.json()["detail"]
    missing = client.get("/v1/experiments/nope", headers=admin).json()
    assert "errors" not in missing  # a 404 names no field


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    admin = key(client, "admin")
    response = client.put("/v1/experiments", json={}, headers=admin)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"  # two routes share the path
    single = client.delete("/v1/decisions", headers=admin)
    assert (single.status_code, single.headers["allow"]) == (405, "POST")
    assert single.json() == {"detail": "Method Not Allowed"}
