from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from features.online import InMemoryFeatureClient
from inboxlab.settings import Settings
from serving.app import create_app
from serving.batch_process import BatchProcesses, EngineFactory
from serving.store import DecisionStore
from serving.store.schema import decisions
from tests.serving.batch_engines import (
    FEATURES,
    Pipelines,
    failing_engine,
    keep_planted,
    model_set,
    planted_engine,
    planted_pipelines,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC).isoformat()
EXPERIMENT = {
    "id": "subject",
    "type": "bandit",
    "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
}
#: More requests than a chunk, so that the lines come in several messages.
AUDIENCE = [
    # r4 has no features (cold start); every third one asks between given variants
    {"recipient_id": f"r{i % 4 + 1}", "campaign_id": "c1", "now": NOW}
    | ({"variants": ["a", "b"]} if i % 3 == 0 else {})
    for i in range(7_000)
]


def _settings(root: Path, processes: int) -> Settings:
    settings = Settings(data_dir=root / "data", environment="test")
    decisions = settings.decisions.model_copy(
        update={"batch_processes": processes, "batch_process_min_bytes": 0}
    )
    return settings.model_copy(update={"decisions": decisions})


@pytest.fixture(scope="module")
def planted() -> Pipelines:
    return planted_pipelines()


def _client(root: Path, planted: Pipelines, factory: EngineFactory | None) -> TestClient:
    """An app over a data dir of its own; batches in processes when ``factory`` is given."""
    settings = _settings(root, 1 if factory is not None else 0)
    keep_planted(settings, planted)
    app = create_app(
        settings,
        features=InMemoryFeatureClient(FEATURES),
        models=model_set(settings, planted),
        rng=np.random.default_rng(0),
        batch_engine=factory,
    )
    return TestClient(app)


@pytest.fixture
def clients(tmp_path: Path, planted: Pipelines) -> Iterator[tuple[TestClient, TestClient]]:
    """The same app twice: batches decided in the worker, and in a process of their own."""
    with (
        _client(tmp_path / "worker", planted, None) as worker,
        _client(tmp_path / "process", planted, planted_engine) as process,
    ):
        for c in (worker, process):
            key = c.app_state["resources"].keys.create("all", scopes=("decide", "admin"))
            c.headers["Authorization"] = f"Bearer {key.plaintext}"
            assert c.post("/v1/experiments", json=EXPERIMENT).status_code == 201
        yield worker, process


def _comparable(line: str) -> dict[str, Any]:
    decision = json.loads(line)
    decision.pop("decision_id")  # time-ordered ids: unique to each run
    return dict(decision)


def test_a_batch_process_decides_what_the_worker_decides(
    clients: tuple[TestClient, TestClient],
) -> None:
    worker, process = clients
    assert worker.app_state["resources"].batch_processes is None
    assert process.app_state["resources"].batch_processes is not None
    answers = [c.post("/v1/decisions/batch", json={"decisions": AUDIENCE}) for c in clients]
    assert [a.status_code for a in answers] == [200, 200]
    here, there = (a.text.splitlines() for a in answers)
    assert len(here) == len(there) == len(AUDIENCE)
    # Same seed, same models and features: the same actions, variants, hours, propensities
    # and scores, line for line.
    assert [_comparable(line) for line in there] == [_comparable(line) for line in here]
    # Every line the process sent is a stored decision.
    url = process.app_state["resources"].settings.decision_store_url
    ids = [json.loads(line)["decision_id"] for line in there]
    with DecisionStore.opened(url) as store, store.engine.connect() as conn:
        stored = set(conn.execute(select(decisions.c.decision_id)).scalars())
    assert stored == set(ids)
    # The process stays for the next batch, which it decides with the stores it opened.
    processes = process.app_state["resources"].batch_processes
    [pid] = processes.running
    again = process.post("/v1/decisions/batch", json={"decisions": AUDIENCE[:10]})
    assert again.status_code == 200 and len(again.text.splitlines()) == 10
    assert processes.running == {pid}


def test_a_batch_process_draws_the_bandit_arms_of_the_experiment(
    clients: tuple[TestClient, TestClient],
) -> None:
    # The allocation's Monte Carlo has entropy of its own, so arms are compared by share.
    asked = [{**a, "experiment_id": "subject", "variants": None} for a in AUDIENCE[:3_000]]
    shares = []
    for client in clients:
        answer = client.post("/v1/decisions/batch", json={"decisions": asked})
        assert answer.status_code == 200
        sent = [json.loads(line) for line in answer.text.splitlines()]
        sent = [d for d in sent if d["action"] == "send"]
        assert {d["variant_id"] for d in sent} == {"v0", "v1", "v2"}
        assert all(0.3 < d["variant_propensity"] < 0.37 for d in sent)  # no data: a third each
        shares.append(np.mean([d["variant_id"] == "v0" for d in sent]))
    assert abs(shares[0] - shares[1]) < 0.05


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"decisions": [{"campaign_id": "c1"}]}, 422, "body.decisions.0.recipient_id"),
        ({"decisions": []}, 422, "body.decisions"),
        (
            {"decisions": [{"recipient_id": "r1", "campaign_id": "c", "experiment_id": "nope"}]},
            404,
            "'nope' does not exist",
        ),
        (
            {
                "decisions": [
                    {
                        "recipient_id": "r1",
                        "campaign_id": "c",
                        "experiment_id": "subject",
                        "variants": ["v0", "v9"],
                    }
                ]
            },
            422,
            "differ from the arms",
        ),
    ],
)
def test_a_batch_process_refuses_what_the_worker_refuses(
    clients: tuple[TestClient, TestClient], body: dict[str, Any], status: int, fragment: str
) -> None:
    worker, process = clients
    here = worker.post("/v1/decisions/batch", json=body)
    there = process.post("/v1/decisions/batch", json=body)
    assert (here.status_code, there.status_code) == (status, status)
    assert there.json() == here.json()
    assert fragment in there.text


def test_a_batch_process_that_cannot_open_its_stores_is_a_503(
    tmp_path: Path, planted: Pipelines
) -> None:
    with _client(tmp_path, planted, failing_engine) as client:
        key = client.app_state["resources"].keys.create("d", scopes=("decide",))
        client.headers["Authorization"] = f"Bearer {key.plaintext}"
        body = {"decisions": [{"recipient_id": "r1", "campaign_id": "c"}]}
        answer = client.post("/v1/decisions/batch", json=body)
        assert answer.status_code == 503
        assert "batch process ended before deciding" in answer.json()["detail"]
        # the slot is free again: the next batch is decided in the worker's place as well
        assert client.post("/v1/decisions/batch", json=body).status_code == 503


def test_small_batches_stay_in_the_worker(tmp_path: Path, planted: Pipelines) -> None:
    settings = _settings(tmp_path, 1)
    decisions = settings.decisions.model_copy(update={"batch_process_min_bytes": 10_000})
    app = create_app(
        settings.model_copy(update={"decisions": decisions}),
        features=InMemoryFeatureClient(FEATURES),
        models=model_set(settings, planted),
        batch_engine=failing_engine,  # would answer 503 if a process were used
    )
    with TestClient(app) as client:
        key = client.app_state["resources"].keys.create("d", scopes=("decide",))
        client.headers["Authorization"] = f"Bearer {key.plaintext}"
        small = {"decisions": [{"recipient_id": "r1", "campaign_id": "c", "now": NOW}]}
        assert client.post("/v1/decisions/batch", json=small).status_code == 200
        large = {"decisions": [small["decisions"][0]] * 200}
        assert client.post("/v1/decisions/batch", json=large).status_code == 503


def _processes(root: Path, planted: Pipelines, **kwargs: Any) -> BatchProcesses:
    settings = _settings(root, 1)
    keep_planted(settings, planted)
    with DecisionStore.opened(settings.decision_store_url) as store:
        store.create_schema()
    return BatchProcesses(settings, processes=1, factory=planted_engine, **kwargs)


def _body(n: int) -> bytes:
    asked = [AUDIENCE[i % len(AUDIENCE)] for i in range(n)]
    return json.dumps({"decisions": asked}).encode()


def _stored(processes: BatchProcesses) -> int:
    url = processes.settings.decision_store_url
    with DecisionStore.opened(url) as store, store.engine.connect() as conn:
        return len(conn.execute(select(decisions.c.decision_id)).all())


async def _all_lines(processes: BatchProcesses, body: bytes) -> int:
    return sum([chunk.count(b"\n") async for chunk in await processes.decide(body)])


def test_a_client_that_leaves_stops_its_batch_and_the_process_decides_the_next(
    tmp_path: Path, planted: Pipelines
) -> None:
    processes = _processes(tmp_path, planted)

    async def leave_after_the_first_chunk_then_come_back() -> tuple[int, int]:
        lines = await processes.decide(_body(40_000))
        [pid] = processes.running
        first = await anext(lines)
        assert first.count(b"\n") == 5_000  # one chunk
        await lines.aclose()  # what Starlette does when the client disconnects
        assert processes.running == {pid}
        # Stopped after the chunks under way: a chunk waits for its lines to be taken.
        assert 5_000 <= _stored(processes) <= 20_000
        return pid, await _all_lines(processes, _body(30))

    pid, lines = asyncio.run(leave_after_the_first_chunk_then_come_back())
    assert lines == 30
    assert processes.running == {pid}
    processes.close()
    assert processes.running == set()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_idle_batch_process_exits_and_a_new_one_takes_the_next_batch(
    tmp_path: Path, planted: Pipelines
) -> None:
    processes = _processes(tmp_path, planted, idle_seconds=1.0)
    assert asyncio.run(_all_lines(processes, _body(10))) == 10
    [first] = processes.running
    time.sleep(2.0)
    with pytest.raises(ProcessLookupError):  # exited on its own, and was reaped
        os.kill(first, 0)
    assert asyncio.run(_all_lines(processes, _body(10))) == 10
    [second] = processes.running
    assert second != first
    processes.close()
