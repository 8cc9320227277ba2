from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from inboxlab.records import EventKind
from inboxlab.settings import Settings
from serving.app import MAX_OUTCOMES_PER_CALL, Resources, create_app
from serving.scoring.models import ModelSet
from serving.store import RewardRule
from tests.serving.conftest import T0, decision

# Starlette 1.x deprecates its test client over httpx (it wants the httpx2 fork); the warning
# is raised once at import, so it is ignored here by its message, and only here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        settings,
        reward_rules={"exp-open": RewardRule(kind=EventKind.OPEN)},
        features=None,
        models=ModelSet(settings),
    )
    with TestClient(app) as test_client:
        yield test_client


def resources(client: TestClient) -> Resources:
    res = client.app_state["resources"]
    assert isinstance(res, Resources)
    return res


def bearer(client: TestClient, *scopes: str) -> dict[str, str]:
    created = resources(client).keys.create(f"key-{'-'.join(scopes)}", scopes=scopes)
    return {"Authorization": f"Bearer {created.plaintext}"}


def click(**overrides: Any) -> dict[str, Any]:
    body = {
        "recipient_id": "r-1",
        "kind": "click",
        "occurred_at": (T0 + timedelta(hours=1)).isoformat(),
        "decision_id": "d-1",
    }
    return {**body, **overrides}


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_not_ready_when_the_store_does_not_answer(client: TestClient) -> None:
    resources(client).store.engine.dispose()
    resources(client).store.drop_schema()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "decision store" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "'Basic'"),
        ({"Authorization": "Bearer"}, "Bearer <key>"),
        ({"Authorization": "Bearer nonsense"}, "malformed"),
        ({"Authorization": "Bearer ilk_0123456789ab_" + "x" * 43}, "not valid"),
    ],
)
def test_requests_without_a_valid_key_get_401(
    client: TestClient, headers: dict[str, str], fragment: str
) -> None:
    response = client.post("/v1/outcomes", json=click(), headers=headers)
    assert response.status_code == 401
    assert fragment in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_key_without_the_scope_gets_403_naming_it(client: TestClient) -> None:
    response = client.post("/v1/outcomes", json=click(), headers=bearer(client, "decide"))
    assert response.status_code == 403
    assert "'outcomes'" in response.json()["detail"]


def test_revoked_key_gets_401(client: TestClient) -> None:
    headers = bearer(client, "outcomes")
    resources(client).keys.revoke("key-outcomes")
    response = client.post("/v1/outcomes", json=click(), headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_outcome_posted_twice_counts_once(client: TestClient) -> None:
    resources(client).store.record_decision(decision())
    headers = bearer(client, "outcomes")
    first = client.post("/v1/outcomes", json=click(), headers=headers)
    again = client.post("/v1/outcomes", json=[click(), click(event_id="e-9")], headers=headers)
    assert first.json() == {"stored": 1, "duplicates": 0, "counted": 1}
    assert again.json() == {"stored": 0, "duplicates": 2, "counted": 0}
    (stat,) = resources(client).store.arm_statistics("exp-1")
    assert (stat.successes, stat.trials) == (1, 1)


def test_experiment_reward_kind_decides_what_counts(client: TestClient) -> None:
    store = resources(client).store
    store.record_decision(decision(experiment_id="exp-open"))
    headers = bearer(client, "outcomes")
    machine = click(kind="open", is_machine_open=True)
    human = click(kind="open", is_machine_open=False)
    response = client.post("/v1/outcomes", json=[click(), machine, human], headers=headers)
    assert response.json() == {"stored": 3, "duplicates": 0, "counted": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (click(kind="teleport"), "body.kind"),
        (click(occurred_at="2026-03-02T10:00:00"), "body.occurred_at"),
        (click(recipient_id="ann@example.com"), "body.recipient_id"),
        (click(value=-3), "body.value"),
        (click(surprise=1), "body.surprise"),
        ([click(), click(kind="nope")], "body.1.kind"),
        ([], "body"),
        ("not json", "body"),
    ],
)
def test_invalid_outcomes_get_422_naming_the_field(
    client: TestClient, body: Any, field: str
) -> None:
    response = client.post("/v1/outcomes", json=body, headers=bearer(client, "outcomes"))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert field in fields, fields
    assert field in response.json()["detail"]


def test_too_many_outcomes_in_one_call_get_422(client: TestClient) -> None:
    body = [click(decision_id=None, event_id=str(i)) for i in range(MAX_OUTCOMES_PER_CALL + 1)]
    response = client.post("/v1/outcomes", json=body, headers=bearer(client, "outcomes"))
    assert response.status_code == 422


def test_erasure_needs_admin_and_is_audited(client: TestClient) -> None:
    store = resources(client).store
    store.record_decision(decision())
    client.post("/v1/outcomes", json=click(), headers=bearer(client, "outcomes"))
    forbidden = client.delete("/v1/recipients/r-1", headers=bearer(client, "decide"))
    done = client.delete("/v1/recipients/r-1", headers=bearer(client, "admin"))
    assert forbidden.status_code == 403
    assert done.status_code == 200
    assert done.json() | {"audit_id": 0} == {
        "recipient_id": "r-1",
        "decisions": 1,
        "outcomes": 1,
        "events": 0,
        "feature_rows": 0,
        "online_rows": 0,
        "audit_id": 0,
    }
    (entry,) = store.audit_entries()
    assert (entry.actor, entry.subject) == ("key-admin", "r-1")
    assert store.get_decision("d-1") is None


def test_metrics_count_requests_per_route_template(client: TestClient) -> None:
    headers = bearer(client, "admin")
    client.delete("/v1/recipients/r-1", headers=headers)
    client.delete("/v1/recipients/r-2", headers=headers)
    client.get("/healthz")
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'inboxlab_http_requests_total{method="DELETE",route="/v1/recipients/{recipient_id}",'
        'status="200"} 2.0' in text
    )
    assert 'inboxlab_http_request_duration_seconds_count{method="GET",route="/healthz"}' in text
    assert "r-1" not in text


def test_metrics_need_a_key(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/metrics", "/v1/outcomes"} <= set(paths)
    assert "/v1/recipients/{recipient_id}" in paths


def test_the_app_reads_features_through_the_fast_client_of_the_configured_store(
    settings: Settings,
) -> None:
    from features.online_redis import RedisFeatureClient
    from inboxlab.settings import StoreSettings
    from serving.app import open_features

    redis = settings.model_copy(update={"stores": StoreSettings(online="redis")})
    assert isinstance(open_features(redis), RedisFeatureClient)
    # no SQLite online store materialized yet: served with defaults, not refused
    assert open_features(settings) is None
