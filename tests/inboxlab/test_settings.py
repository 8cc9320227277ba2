from __future__ import annotations

from pathlib import Path

import pytest

from inboxlab.errors import ConfigurationError
from inboxlab.settings import Settings, get_settings


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("INBOXLAB_DATA_DIR", "INBOXLAB_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.data_dir == Path("data")
    assert s.mlflow.tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert s.stores.online == "sqlite"
    assert s.decision_store_url == "sqlite:///data/decisions.db"
    assert s.events_dir == Path("data/events")


def test_environment_variables_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXLAB_DATA_DIR", "/srv/inboxlab")
    monkeypatch.setenv("INBOXLAB_STORES__ONLINE", "redis")
    monkeypatch.setenv("INBOXLAB_STORES__DECISION_STORE_URL", "postgresql+psycopg://db/x")
    s = Settings()
    assert s.events_dir == Path("/srv/inboxlab/events")
    assert s.stores.online == "redis"
    assert s.decision_store_url == "postgresql+psycopg://db/x"


def test_placeholder_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXLAB_ENVIRONMENT", "production")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        get_settings()
    get_settings.cache_clear()
    monkeypatch.setenv("INBOXLAB_API__SECRET_KEY", "a-real-secret")
    assert get_settings().environment == "production"
    get_settings.cache_clear()


def test_invalid_online_store_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXLAB_STORES__ONLINE", "memcached")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="online"):
        get_settings()
    get_settings.cache_clear()
