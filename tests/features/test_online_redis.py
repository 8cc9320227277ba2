"""Redis fast path: exactly what Feast's get_online_features returns from the same Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import features.online
from features.engineering.tables import DEFAULTS, VARIANT_DEFAULTS
from features.online import FeastFeatureClient, FeatureClient, SqliteFeatureClient, entity_key
from features.online_redis import RedisFeatureClient, feature_field
from features.store import online_client
from inboxlab.errors import StoreError
from inboxlab.settings import Settings, StoreSettings
from inboxlab.sqlite_deadline import statement_deadline
from tests.conftest import need, redis_paused
from tests.features.conftest import FEAST_WARNINGS, Row

pytestmark = FEAST_WARNINGS

World = tuple[Settings, list[Row]]
IDS = [f"r{i:03d}" for i in range(40)] + ["unknown-1", "r005", "unknown-2"]
VARIANTS = ["v0", "v1", "v2", "v-unknown"]


def test_field_names_match_feast() -> None:
    from feast.infra.online_stores.helpers import _mmh3

    for view, name in (
        ("recipient_engagement", "opens_7d"),
        ("recipient_send_time", "timezone"),
        ("recipient_variant", "variant_click_rate_90d"),
        ("vïew", "ünicode"),
    ):
        assert feature_field(view, name) == _mmh3(f"{view}:{name}")


def test_unreachable_redis_is_a_store_error(settings: Settings) -> None:
    unused = Settings(
        data_dir=settings.data_dir,
        stores=StoreSettings(online="redis", redis_url="redis://127.0.0.1:9/0"),
    )
    client = RedisFeatureClient(unused)
    with pytest.raises(StoreError, match="Redis online store"):
        client.get_many(["r001", "r002"])
    with pytest.raises(StoreError, match="Redis online store"):
        client.variant_features("r001", ["v0"])


def test_factory_follows_the_online_store_setting(built_world: World) -> None:
    settings, _ = built_world
    sqlite = online_client(settings)
    assert isinstance(sqlite, SqliteFeatureClient)
    redis = online_client(
        Settings(data_dir=settings.data_dir, stores=StoreSettings(online="redis")),
        ["opens_7d"],
    )
    assert isinstance(redis, RedisFeatureClient)
    assert isinstance(redis, FeatureClient)
    assert redis.features == ("opens_7d",)


@pytest.mark.redis
def test_redis_fast_path_returns_exactly_what_feast_returns(
    redis_world: tuple[Settings, str],
) -> None:
    settings, project = redis_world
    feast_client = FeastFeatureClient.from_settings(settings, project=project)
    fast = RedisFeatureClient(settings, project=project)
    expected = feast_client.get_many(IDS)
    got = fast.get_many(IDS)
    assert got == expected
    assert got["unknown-1"] == {name: DEFAULTS[name] for name in fast.features}
    assert sum(int(row["sends_90d"]) > 0 for row in got.values()) > 20  # real rows, not defaults
    assert {type(v) for v in got["r001"].values()} <= {int, float, str}
    assert fast.get("r003") == feast_client.get("r003")
    assert fast.get_many([]) == {}
    requests = {rid: VARIANTS for rid in IDS}
    expected_variants = feast_client.variant_features_many(requests)
    assert fast.variant_features_many(requests) == expected_variants
    assert fast.variant_features("r004", ["v2", "v0"]) == feast_client.variant_features(
        "r004", ["v2", "v0"]
    )
    assert fast.variant_features("r001", []) == {}
    seen = [row for rows in expected_variants.values() for row in rows.values()]
    assert sum(int(row["variant_sends_90d"]) > 0 for row in seen) > 40
    assert fast.variant_features_many({"never-seen": ["v0"]}) == {
        "never-seen": {"v0": VARIANT_DEFAULTS}
    }
    subset = RedisFeatureClient(settings, ["timezone", "opens_30d"], project=project)
    sub_feast = FeastFeatureClient.from_settings(
        settings, ["timezone", "opens_30d"], project=project
    )
    assert subset.get_many(IDS) == sub_feast.get_many(IDS)


@pytest.mark.redis
@pytest.mark.parametrize(
    ("parser", "protocol"),
    [("_HiredisParser", 2), ("_HiredisParser", 3), ("_RESP2Parser", 2), ("_RESP3Parser", 3)],
)
def test_every_reply_parser_reads_what_feast_returns(
    redis_world: tuple[Settings, str], parser: str, protocol: int
) -> None:
    """hiredis (the C parser redis-py picks when installed) and the pure-Python ones agree."""
    import redis as redis_lib
    from redis import connection
    from redis.utils import HIREDIS_AVAILABLE

    if parser == "_HiredisParser":
        need("redis", HIREDIS_AVAILABLE, "hiredis is not installed")
    settings, project = redis_world
    parser_class = getattr(connection, parser)
    conn = redis_lib.Redis.from_url(
        settings.stores.redis_url, parser_class=parser_class, protocol=protocol
    )
    pooled = conn.connection_pool.get_connection()
    assert type(pooled._parser) is parser_class  # the parser asked for is the one in use
    conn.connection_pool.release(pooled)
    feast_client = FeastFeatureClient.from_settings(settings, project=project)
    fast = RedisFeatureClient(settings, project=project, redis=conn)
    try:
        assert fast.get_many(IDS) == feast_client.get_many(IDS)  # pipelined
        assert fast.get("r007") == feast_client.get("r007")  # one HMGET
        requests = {rid: VARIANTS for rid in IDS[:10]}
        assert fast.variant_features_many(requests) == feast_client.variant_features_many(requests)
    finally:
        fast.close()


@pytest.mark.redis
def test_expired_keys_and_absent_values_read_as_feast_reads_them(
    redis_world: tuple[Settings, str],
) -> None:
    import redis as redis_lib

    settings, project = redis_world
    conn = redis_lib.Redis.from_url(settings.stores.redis_url)
    suffix = project.encode()
    expiring = entity_key("r010") + suffix
    partial = entity_key("r011") + suffix
    assert conn.exists(expiring) and conn.exists(partial)
    saved = conn.dump(expiring)
    kept = conn.hgetall(partial)
    assert isinstance(saved, bytes)
    try:
        conn.pexpire(expiring, 1)  # as a key_ttl_seconds expiry would
        conn.hdel(
            partial,
            feature_field("recipient_engagement", "opens_7d"),
            feature_field("recipient_send_time", "timezone"),
        )
        time.sleep(0.01)
        ids = ["r010", "r011", "r012"]
        expected = FeastFeatureClient.from_settings(settings, project=project).get_many(ids)
        got = RedisFeatureClient(settings, project=project).get_many(ids)
        assert got == expected
        assert got["r010"] == {name: DEFAULTS[name] for name in got["r010"]}
        assert got["r011"]["opens_7d"] == 0
        assert got["r011"]["timezone"] == "UTC"
    finally:
        conn.restore(expiring, 0, saved, replace=True)
        conn.hset(partial, mapping=dict(kept.items()))
        conn.close()


@pytest.mark.redis
def test_cached_rows_are_served_until_max_staleness(redis_world: tuple[Settings, str]) -> None:
    import redis as redis_lib
    from feast.protos.feast.types.Value_pb2 import Value

    settings, project = redis_world
    conn = redis_lib.Redis.from_url(settings.stores.redis_url)
    key = entity_key("r020") + project.encode()
    field = feature_field("recipient_engagement", "opens_7d")
    before = conn.hget(key, field)
    client = RedisFeatureClient(settings, project=project, max_staleness=timedelta(seconds=0.3))
    first = int(client.get("r020")["opens_7d"])
    try:
        conn.hset(key, field, Value(int64_val=first + 1000).SerializeToString())
        assert client.get("r020")["opens_7d"] == first  # within max_staleness: cached
        time.sleep(0.35)
        assert client.get("r020")["opens_7d"] == first + 1000
    finally:
        conn.hset(key, field, before)
        conn.close()


def test_cache_is_bounded_in_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeRedis:
        calls = 0

        def hmget(self, key: bytes, fields: list[bytes]) -> list[bytes | None]:
            FakeRedis.calls += 1
            return [None] * len(fields)

        def pipeline(self, transaction: bool) -> FakePipe:
            return FakePipe(self)

        def close(self) -> None:
            pass

    class FakePipe:
        def __init__(self, redis: FakeRedis) -> None:
            self._redis = redis
            self._queued: list[tuple[bytes, list[bytes]]] = []

        def hmget(self, key: bytes, fields: list[bytes]) -> None:
            self._queued.append((key, fields))

        def execute(self) -> list[list[bytes | None]]:
            return [self._redis.hmget(k, f) for k, f in self._queued]

    client = RedisFeatureClient(
        Settings(), ["opens_7d"], max_entries=2, redis=FakeRedis(), max_staleness=timedelta(hours=1)
    )
    assert client.get_many(["a", "b", "c"]) == {r: {"opens_7d": 0} for r in "abc"}
    assert FakeRedis.calls == 3
    client.get_many(["b", "c"])  # the two newest are kept
    assert FakeRedis.calls == 3
    client.get("a")  # the oldest was dropped
    assert FakeRedis.calls == 4


@pytest.mark.redis
@pytest.mark.parametrize("packed_min_keys", [1, 10**9])
def test_packed_and_pipelined_reads_return_exactly_what_feast_returns(
    redis_world: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch, packed_min_keys: int
) -> None:
    settings, project = redis_world
    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", packed_min_keys)
    names = ["timezone", "open_hour_07", "opens_7d", "engagement_score"]
    for asked in (None, names):
        fast = RedisFeatureClient(settings, asked, project=project, max_entries=1)
        feast_client = FeastFeatureClient.from_settings(settings, asked, project=project)
        got = fast.get_many(IDS)
        assert got == feast_client.get_many(IDS)
        assert all(list(row) == list(fast.features) for row in got.values())
    requests = {rid: VARIANTS for rid in IDS}
    fast = RedisFeatureClient(settings, project=project)
    expected = FeastFeatureClient.from_settings(settings, project=project)
    assert fast.variant_features_many(requests) == expected.variant_features_many(requests)
    # The script ran only when reads of many are packed.
    assert (fast._script is not None) == (packed_min_keys == 1)


@pytest.mark.redis
def test_values_the_bulk_decoder_leaves_aside_are_read_through_protobuf(
    redis_world: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis as redis_lib
    from feast.protos.feast.types.Value_pb2 import Value

    settings, project = redis_world
    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", 1)
    conn = redis_lib.Redis.from_url(settings.stores.redis_url)
    key = entity_key("r012") + project.encode()
    opens = feature_field("recipient_engagement", "opens_7d")
    zone = feature_field("recipient_send_time", "timezone")
    kept = conn.hgetall(key)
    try:
        # One field twice: protobuf keeps the last, 5; an empty value reads as null.
        conn.hset(key, opens, Value(int64_val=5).SerializeToString() * 2)
        conn.hset(key, zone, b"")
        got = RedisFeatureClient(settings, project=project).get_many(IDS)
        assert got == FeastFeatureClient.from_settings(settings, project=project).get_many(IDS)
        assert (got["r012"]["opens_7d"], got["r012"]["timezone"]) == (5, "UTC")
    finally:
        conn.hset(key, mapping=dict(kept.items()))
        conn.close()


@pytest.mark.redis
def test_reads_under_a_deadline_return_what_unbounded_reads_return(
    redis_world: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, project = redis_world
    unbounded = RedisFeatureClient(settings, project=project)
    bounded = RedisFeatureClient(settings, project=project)
    requests = {rid: VARIANTS for rid in IDS[:10]}
    # Many keys: unbounded reads take the script; under a deadline, the bounded pipeline.
    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", 8)
    with statement_deadline(time.monotonic() + 60):
        got = bounded.get_many(IDS), bounded.variant_features_many(requests), bounded.get("r001")
    assert got == (
        unbounded.get_many(IDS),
        unbounded.variant_features_many(requests),
        unbounded.get("r001"),
    )
    assert bounded._script is None  # never the script under a deadline
    unbounded.close()
    bounded.close()


@pytest.mark.redis
def test_a_redis_that_stops_answering_is_left_at_the_deadline(
    redis_world: tuple[Settings, str],
) -> None:
    settings, project = redis_world
    client = RedisFeatureClient(settings, project=project, max_staleness=timedelta(0))
    assert client.get("r001")["timezone"]  # a pooled connection, open and answered
    waited = []
    with redis_paused(settings.stores.redis_url, 3.0):
        # The first read waits on its pooled connection, which is then closed; the second
        # opens a new one (the connect answers, redis-py's handshake does not).
        for rid in ("r002", "r003"):
            started = time.monotonic()
            with pytest.raises(StoreError, match="Timeout"), statement_deadline(started + 0.2):
                client.get_many([rid])
            waited.append(time.monotonic() - started)
    assert all(0.2 <= w < 1.0 for w in waited), waited  # at the deadline, not Redis's answer
    # No connection was left mid-reply in the pool: the next read is whole, and its
    # connection keeps the client's own timeouts.
    assert client.get_many(["r002", "r003"]).keys() == {"r002", "r003"}
    pool = client._redis.connection_pool
    conn = pool.get_connection()
    assert (conn.socket_timeout, conn.socket_connect_timeout) == (5, 5)  # redis-py's defaults
    pool.release(conn)
    client.close()


@pytest.mark.redis
def test_a_connection_opened_within_a_deadline_keeps_the_clients_timeouts(
    redis_world: tuple[Settings, str],
) -> None:
    settings, project = redis_world
    client = RedisFeatureClient(settings, project=project, max_staleness=timedelta(0))
    with statement_deadline(time.monotonic() + 0.5):
        assert client.get("r001")["timezone"]  # the pool's first connection, opened here
    with redis_paused(settings.stores.redis_url, 1.0):
        started = time.monotonic()
        # No deadline: the read waits for Redis (redis-py's 5 s), not the 0.5 s above.
        assert client.get_many(["r002"]).keys() == {"r002"}
        assert time.monotonic() - started > 0.5
    client.close()
