"""Shared fixtures: isolated settings and the real services that scale-out tests use.

Tests that need Redis, PostgreSQL, pyspark/Java, Dask or Chromium call :func:`need`. On a
laptop without the service they skip; where ``INBOXLAB_TEST_REQUIRE`` names the service (CI
does), a missing service fails the test instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Before anything imports feast: importing feast sets PROMETHEUS_MULTIPROC_DIR, and a
# prometheus_client first imported after that keeps every metric value in per-process mmap
# files keyed by metric name, so the per-app registries of the many apps a test session
# builds would share their counts. The server imports prometheus_client first too.
import prometheus_client  # noqa: F401
import pytest

from inboxlab.settings import Settings, get_settings

REDIS_URL = os.environ.get("INBOXLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "INBOXLAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The decision budget of every test's settings: long enough for any machine's slowest read.
TEST_BUDGET_MS = 10_000.0


def _required() -> set[str]:
    return {s.strip() for s in os.environ.get("INBOXLAB_TEST_REQUIRE", "").split(",") if s}


def need(service: str, available: bool, why: str) -> None:
    """Skip (or fail, when CI requires ``service``) unless ``available``."""
    if available:
        return
    if service in _required():
        pytest.fail(f"{service} is required here (INBOXLAB_TEST_REQUIRE) but {why}")
    pytest.skip(f"{service} unavailable: {why}")


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a new interpreter, which has imported nothing yet; fails
    the test when it exits non-zero. Its output is in ``stdout`` and ``stderr``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    need("redis", port_open("127.0.0.1", 6379), "nothing answers at 127.0.0.1:6379")
    return REDIS_URL


@contextmanager
def redis_paused(url: str, seconds: float) -> Iterator[None]:
    """The Redis at ``url`` takes no command from anyone for ``seconds`` (``CLIENT PAUSE
    ALL``, which ``CLIENT UNPAUSE`` cannot shorten: it waits too); on leaving, wait until it
    answers again."""
    import redis

    admin = redis.Redis.from_url(url)
    admin.client_pause(int(seconds * 1000), all=True)
    ends = time.monotonic() + seconds
    try:
        yield
    finally:
        time.sleep(max(ends - time.monotonic(), 0.0))
        admin.ping()
        admin.close()


@pytest.fixture
def postgres_url() -> str:
    need("postgres", port_open("127.0.0.1", 5432), "nothing answers at 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
def spark_available() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need("spark", False, "pyspark is not installed")
    need("spark", shutil.which("java") is not None, "java is not on PATH")


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    need("browser", path is not None, "chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose data directory and MLflow store live in ``tmp_path``."""
    monkeypatch.setenv("INBOXLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOXLAB_ENVIRONMENT", "test")
    # Decisions take the bounded path, as by default, but a busy machine never trips it:
    # whether a read is over budget is the subject of tests/serving/test_budget.py alone.
    monkeypatch.setenv("INBOXLAB_DECISIONS__BUDGET_MS", str(TEST_BUDGET_MS))
    monkeypatch.setenv("INBOXLAB_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("INBOXLAB_MLFLOW__ARTIFACT_LOCATION", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
