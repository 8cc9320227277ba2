"""Arbitrary experiment definitions, then decisions, outcomes and reports under them.

``test_openapi_contract`` checks each operation alone, from the OpenAPI document. This test
goes through the life of an experiment: a well-formed definition with one field replaced by
arbitrary JSON, dropped or given an arbitrary nested field (or any JSON document instead); a
definition the API accepts is then decided singly and in a batch, every outcome kind is
posted for its decision, and its report is read as JSON and as HTML. No answer may be a 5xx,
every 422 must name its fields, and an accepted experiment's report must render.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.served import served_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NOW = "2026-03-02T00:30:00+00:00"
EXPERIMENT = {
    "id": "e1",
    "type": "bandit",
    "arms": [{"id": "v0", "control": True}, {"id": "v1"}],
    "primary_metric": "click",
    "holdout_pct": 5,
    "attribution_window_hours": 72,
    "segment_columns": ["engagement_tier"],
    "guardrails": [{"metric": "unsubscribe", "margin": 0.1}],
    "bandit": {"weight_floor": 0.05, "discount_per_day": 0.01, "contextual": True},
}
DECISION = {
    "recipient_id": "r1",
    "campaign_id": "c1",
    "experiment_id": "e1",
    "variants": ["v0", "v1"],
    "now": NOW,
    "send_window": {"start": NOW, "end": "2026-03-03T00:30:00+00:00"},
    "context": {"timezone": "Europe/Berlin"},
}

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "r1", "e1", "v0", "v1", NOW, "2026-03-02", "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00Z", "Europe/Berlin", "Mars/Base", "", "click", "-1e309",
        ]
    ),
)  # fmt: skip
JSON = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with one field replaced, dropped or given a nested field; or any JSON."""
    keys = sorted(base)
    nested = st.text(max_size=8) | st.sampled_from(["start", "end", "timezone", "id"])
    return st.one_of(
        JSON,
        st.builds(lambda k, v: {**base, k: v}, st.sampled_from(keys), JSON),
        st.builds(lambda k: {n: v for n, v in base.items() if n != k}, st.sampled_from(keys)),
        st.builds(
            lambda k, n, v: {**base, k: {**(base[k] if isinstance(base[k], dict) else {}), n: v}},
            st.sampled_from(keys),
            nested,
            JSON,
        ),
    )


FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("fuzz")
    with served_app(root, EXPERIMENT, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, path: str, body: Any) -> Any:
    response = client.post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code < 500, (path, body, response.status_code, response.text[:300])
    if response.status_code == 422:
        errors = response.json()["errors"]
        assert errors and all(e["field"] for e in errors), response.text[:300]
    return response


@FUZZ
@given(body=mutated(EXPERIMENT), n=st.integers(0, 10**12))
def test_experiments_then_decisions_outcomes_and_reports(
    client: TestClient, body: Any, n: int
) -> None:
    if isinstance(body, dict):
        body = {**body, "id": f"x{n}"}  # a new experiment each time, not a 409
    if post(client, "/v1/experiments", body).status_code != 201:
        return
    arms = [arm["id"] for arm in body["arms"]]
    request = {**DECISION, "experiment_id": body["id"], "variants": arms}
    post(client, "/v1/decisions/batch", {"decisions": [request, request]})
    decided = post(client, "/v1/decisions", request).json()
    for kind in ("open", "click", "convert", "unsubscribe", "complaint", "bounce"):
        outcome = {
            "kind": kind,
            "recipient_id": "r1",
            "occurred_at": "2026-03-02T05:00:00+00:00",
            "decision_id": decided["decision_id"],
            "variant_id": decided.get("variant_id"),
            "value": 1.0 if kind == "convert" else None,
        }
        post(client, "/v1/outcomes", outcome)
    for accept in ("application/json", "text/html"):
        report = client.get(f"/v1/experiments/{body['id']}/report", headers={"Accept": accept})
        assert report.status_code == 200, report.text[:300]
