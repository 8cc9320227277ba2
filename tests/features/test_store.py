"""The Feast store from Settings: apply, incremental materialization, Redis."""

from __future__ import annotations

import logging

import pytest

from features.engineering.build import build_features
from features.engineering.tables import VARIANT_FEATURES, VARIANT_TTL
from features.online import FeastFeatureClient
from features.store import materialize, repo_config, repo_objects
from inboxlab.errors import NotFoundError
from inboxlab.settings import Settings, StoreSettings
from tests.features.conftest import FEAST_WARNINGS, Row, random_log, write_events
from training.context import PROFILE_COLUMNS

pytestmark = FEAST_WARNINGS

World = tuple[Settings, list[Row]]


def test_config_follows_settings(settings: Settings) -> None:
    config = repo_config(settings)
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == str((settings.data_dir / "feast" / "online.db").resolve())
    redis = Settings(
        data_dir=settings.data_dir,
        stores=StoreSettings(online="redis", redis_url="redis://h:7000/2"),
    )
    assert repo_config(redis).online_store.connection_string == "h:7000,db=2"


def test_repo_declares_versioned_services_with_descriptions(settings: Settings) -> None:
    objects = repo_objects(settings)
    names = {o.name for o in objects}
    assert {"engagement_v1", "engagement_v2", "send_time_v1", "propensity_v1"} <= names
    assert {"request_time", "variant", "recipient_variant"} <= names
    assert all(o.description for o in objects)
    views = {o.name: o for o in objects if getattr(o, "ttl", None) is not None}
    assert views.pop("recipient_variant").ttl == VARIANT_TTL
    assert views and all(v.ttl.days == 2 for v in views.values())


def test_engagement_v2_adds_profiles_and_variant_history(settings: Settings) -> None:
    services = {o.name: o for o in repo_objects(settings) if hasattr(o, "feature_view_projections")}
    v1 = {
        p.name: {f.name for f in p.features}
        for p in services["engagement_v1"].feature_view_projections
    }
    v2 = {
        p.name: {f.name for f in p.features}
        for p in services["engagement_v2"].feature_view_projections
    }
    assert v2["recipient_engagement"] == v1["recipient_engagement"]
    assert v2["recipient_variant"] == set(VARIANT_FEATURES)
    assert v2["recipient_send_time"] == set(PROFILE_COLUMNS)
    assert "request_time" in v2


def test_materialize_is_incremental(built_world: World) -> None:
    settings, _ = built_world
    again = materialize(settings)
    assert again.start is None  # nothing newer than what the fixture loaded


def test_materialize_before_build_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="features build"):
        materialize(settings)


@pytest.mark.redis
def test_redis_online_store_serves_the_same_features(
    built_world: World, redis_world: tuple[Settings, str]
) -> None:
    settings, _ = built_world
    redis, project = redis_world
    ids = ["r001", "r002", "nobody"]
    via_redis = FeastFeatureClient.from_settings(redis, project=project).get_many(ids)
    via_sqlite = FeastFeatureClient.from_settings(settings).get_many(ids)
    assert via_redis == via_sqlite
    pairs = {"r001": ["v0", "v1", "v2"], "nobody": ["v0"]}
    redis_client = FeastFeatureClient.from_settings(redis, project=project)
    sqlite_client = FeastFeatureClient.from_settings(settings)
    assert redis_client.variant_features_many(pairs) == sqlite_client.variant_features_many(pairs)


def test_small_world_builds_and_materializes_from_scratch(settings: Settings) -> None:
    write_events(settings, random_log(5, 3, seed=9))
    build_features(settings)
    result = materialize(settings)
    assert result.start is not None
    assert FeastFeatureClient.from_settings(settings).get("r001")["tenure_days"] >= 1


def test_materialize_keeps_feasts_prints_off_standard_output(
    settings: Settings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    write_events(settings, random_log(5, 3, seed=9))
    build_features(settings)
    with caplog.at_level(logging.DEBUG, logger="features.store"):
        materialize(settings)
    assert capsys.readouterr().out == ""
    assert "Materializing" in caplog.text  # kept, at DEBUG
