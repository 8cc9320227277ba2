"""An app with its lifespan running, for test modules that share one across their tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from features.online import InMemoryFeatureClient
from inboxlab.cli.serve import render_report
from inboxlab.settings import Settings, get_settings
from serving.app import create_app
from tests.serving.models import planted_models

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

__all__ = ["served_app"]


@contextmanager
def served_app(root: Path, experiment: dict[str, Any], **client: Any) -> Iterator[TestClient]:
    """The API over a data dir in ``root``, planted champions, one recipient's features and
    ``experiment`` created; the client sends a key with every scope. ``client``: more
    arguments of the ``TestClient``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("INBOXLAB_DATA_DIR", str(root / "data"))
        env.setenv("INBOXLAB_ENVIRONMENT", "test")
        env.setenv("INBOXLAB_MLFLOW__TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        env.setenv("INBOXLAB_MLFLOW__ARTIFACT_LOCATION", str(root / "artifacts"))
        get_settings.cache_clear()
        app = create_app(
            get_settings(),
            features=InMemoryFeatureClient({"r1": {"timezone": "Europe/Berlin"}}),
            models=planted_models(Settings()),
            report_renderer=render_report,
            rng=np.random.default_rng(0),
        )
        try:
            with TestClient(app, **client) as c:
                ring = c.app_state["resources"].keys
                key = ring.create("all", scopes=("decide", "outcomes", "admin")).plaintext
                c.headers["Authorization"] = f"Bearer {key}"
                assert c.post("/v1/experiments", json=experiment).status_code == 201
                yield c
        finally:
            get_settings.cache_clear()
