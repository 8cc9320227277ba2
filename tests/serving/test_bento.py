"""``bentoml serve`` answers the decision API: a real server on loopback, a real decision."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.keys import KeyRing
from serving.store import DecisionStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).with_name("bentoml")
STARTUP_SECONDS = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(
    url: str, body: dict[str, Any] | None = None, key: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _status(url: str) -> int:
    """The status of a GET (BentoML answers its probes in plain text)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 20 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """``bentoml serve`` on a free loopback port over a fresh data dir.

    Yields (base URL, decide key, admin key).
    """
    tmp_path = tmp_path_factory.mktemp("bento")
    data = tmp_path / "data"
    data.mkdir()
    store = DecisionStore(f"sqlite:///{data / 'decisions.db'}")
    store.create_schema()
    ring = KeyRing(store.engine)
    key = ring.create("renderer", scopes=["decide"]).plaintext
    admin = ring.create("owner", scopes=["admin"]).plaintext
    store.close()
    port = _free_port()
    env = {
        **os.environ,
        "INBOXLAB_ENVIRONMENT": "test",
        "INBOXLAB_DATA_DIR": str(data),
        # An empty registry: decisions come back with model_unavailable reasons.
        "INBOXLAB_MLFLOW__TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "INBOXLAB_MLFLOW__ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
        "INBOXLAB_DECISIONS__MODEL_POLL_SECONDS": "0",
        "BENTOML_HOME": str(tmp_path / "bentoml"),
    }
    log = (tmp_path / "bentoml.log").open("wb")
    command = [str(BENTOML), "serve", "serving.bento.service:Inboxlab"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited: {(tmp_path / 'bentoml.log').read_text()}")
            try:
                if _status(f"{base}/readyz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve not ready in {STARTUP_SECONDS:.0f} s")
            time.sleep(0.5)
        yield base, key, admin
    finally:
        _stop(process)
        log.close()


@pytest.mark.skipif(shutil.which("bentoml", path=str(BENTOML.parent)) is None, reason="no bentoml")
def test_bentoml_serve_makes_a_stored_decision(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    assert _status(f"{base}/healthz") == 200
    body = {
        "recipient_id": "r0000002",
        "campaign_id": "welcome",
        "variants": ["a", "b", "c", "d"],
        "now": "2026-03-02T09:00:00Z",
    }
    status, decision = _request(f"{base}/v1/decisions", body, key)
    assert status == 200, decision
    assert decision["recipient_id"] == "r0000002"
    assert decision["action"] == "send"
    assert decision["variant_id"] == "a" and decision["variant_propensity"] == 1.0
    assert decision["send_at"] is not None and 0 < decision["send_time_propensity"] <= 1
    assert {"model_unavailable:send-time", "model_unavailable:engagement"} <= set(
        decision["reasons"]
    )
    assert len(decision["decision_id"]) == 32 and decision["model_versions"] == {}


def test_bentoml_serve_refuses_a_decision_without_a_key(server: tuple[str, str, str]) -> None:
    base, _, _ = server
    status, answer = _request(
        f"{base}/v1/decisions", {"recipient_id": "r0000002", "campaign_id": "welcome"}
    )
    assert status == 401 and "Authorization" in answer["detail"]


def test_bentoml_serve_renders_experiment_reports(server: tuple[str, str, str]) -> None:
    """The report renderer reaches the Bento through its entry point, as under inboxlab serve."""
    base, key, admin = server
    experiment = {
        "id": "bento-report",
        "type": "ab",
        "arms": [{"id": "a", "control": True}, {"id": "b"}],
        "primary_metric": "click",
    }
    status, created = _request(f"{base}/v1/experiments", experiment, admin)
    assert status == 201, created
    for i in range(40):
        body = {
            "recipient_id": f"rep{i:04d}",
            "campaign_id": "spring",
            "experiment_id": "bento-report",
            "now": "2026-03-02T09:00:00Z",
        }
        status, decision = _request(f"{base}/v1/decisions", body, key)
        assert status == 200, decision
    req = urllib.request.Request(
        f"{base}/v1/experiments/bento-report/report",
        headers={"Authorization": f"Bearer {admin}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        report = json.loads(resp.read())
    assert {a["arm"] for a in report["primary"]["arms"]} == {"a", "b"}
    assert sum(a["units"] for a in report["primary"]["arms"]) == 40
    html = urllib.request.Request(
        f"{base}/v1/experiments/bento-report/report",
        headers={"Authorization": f"Bearer {admin}"},
    )
    with urllib.request.urlopen(html, timeout=60) as resp:
        assert resp.status == 200 and "bento-report" in resp.read().decode()
