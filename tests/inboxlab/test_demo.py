"""End to end: the demo pipeline from simulation to a served decision with real models."""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

from inboxlab.cli import app
from inboxlab.cli.demo import DEMO_EXPERIMENT
from inboxlab.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


def test_demo_builds_everything_and_the_api_decides_with_the_champions(
    settings: Settings,
) -> None:
    runner = CliRunner()
    args = ["demo", "--recipients", "6000", "--days", "56", "--seed", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "demo ready" in first.output
    key = (settings.data_dir / "dev-key").read_text().strip()
    assert key in first.output

    again = runner.invoke(app, args)  # every step is already done
    assert again.exit_code == 0, again.output
    assert "@champion is version 1" in again.output

    from inboxlab.cli.serve import build_app

    with TestClient(build_app()) as client:
        headers = {"Authorization": f"Bearer {key}"}
        decisions = [
            client.post(
                "/v1/decisions",
                json={
                    "recipient_id": f"r{i:07d}",
                    "campaign_id": "spring",
                    "experiment_id": DEMO_EXPERIMENT,
                },
                headers=headers,
            )
            for i in range(40)
        ]
        assert all(d.status_code == 200 for d in decisions)
        bodies = [d.json() for d in decisions]
        sent = [b for b in bodies if b["action"] == "send"]
        assert sent, bodies
        for b in sent:
            assert set(b["model_versions"]) == {
                "inboxlab-engagement",
                "inboxlab-send-time",
                "inboxlab-propensity",
            }
            assert 0 < b["scores"]["p_open"] < 1 and 0 < b["scores"]["p_click"] < 1
            assert b["variant_id"] in {"v0", "v1", "v2"}
            assert 0 < b["variant_propensity"] <= 1
            assert not any(r.startswith("model_unavailable") for r in b["reasons"])
        report = client.get(
            f"/v1/experiments/{DEMO_EXPERIMENT}/report",
            headers={**headers, "Accept": "application/json"},
        )
        assert report.status_code == 200
