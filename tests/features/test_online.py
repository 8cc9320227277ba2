"""Online clients: the fast path returns exactly what Feast returns; unknowns get defaults."""

from __future__ import annotations

import math
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

import features.online
import features.prepared
from features.engineering.tables import (
    DEFAULTS,
    ENGAGEMENT_FEATURES,
    SEND_TIME_FEATURES,
    VARIANT_DEFAULTS,
)
from features.online import (
    VARIANT_VIEW,
    DecodedValues,
    FeastFeatureClient,
    FeatureClient,
    InMemoryFeatureClient,
    SqliteFeatureClient,
    add_cover_indexes,
    cover_index,
    entity_key,
    variant_entity_key,
    with_defaults,
)
from features.packed_values import decode_packed
from features.store import feature_store, online_db_path
from inboxlab.errors import InvalidInputError, StoreError
from inboxlab.settings import Settings
from tests.features.conftest import FEAST_WARNINGS, Row, engagement_frame

pytestmark = FEAST_WARNINGS

World = tuple[Settings, list[Row]]
IDS = [f"r{i:03d}" for i in range(40)] + ["unknown-1", "r005", "unknown-2"]
VARIANTS = ["v0", "v1", "v2", "v-unknown"]


def test_fast_path_returns_exactly_what_feast_returns(built_world: World) -> None:
    settings, _ = built_world
    feast_client = FeastFeatureClient.from_settings(settings)
    fast = SqliteFeatureClient(settings)
    expected = feast_client.get_many(IDS)
    got = fast.get_many(IDS)
    assert got == expected
    assert {type(v) for v in got["r001"].values()} <= {int, float, str}
    assert fast.get("r003") == feast_client.get("r003")
    assert isinstance(fast, FeatureClient)
    assert isinstance(feast_client, FeatureClient)
    requests = {rid: VARIANTS for rid in IDS}
    expected_variants = feast_client.variant_features_many(requests)
    assert fast.variant_features_many(requests) == expected_variants
    assert fast.variant_features("r004", ["v2", "v0"]) == feast_client.variant_features(
        "r004", ["v2", "v0"]
    )
    seen = [row for rows in expected_variants.values() for row in rows.values()]
    assert sum(int(row["variant_sends_90d"]) > 0 for row in seen) > 40  # real rows, not defaults
    assert sum(int(row["variant_clicks_90d"]) > 0 for row in seen) > 0
    assert {type(v) for v in seen[0].values()} <= {int, float}


def test_unknown_pair_gets_the_variant_defaults(built_world: World) -> None:
    settings, _ = built_world
    for client in (
        SqliteFeatureClient(settings),
        FeastFeatureClient.from_settings(settings),
        InMemoryFeatureClient({}),
    ):
        rows = client.variant_features_many({"never-seen": ["v0"], "r001": ["no-such-variant"]})
        assert rows == {
            "never-seen": {"v0": VARIANT_DEFAULTS},
            "r001": {"no-such-variant": VARIANT_DEFAULTS},
        }
        assert client.variant_features("r001", []) == {}


def test_variant_entity_key_matches_feast_serialization() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    for rid, vid in (("r001", "v1"), ("", ""), ("ünï-çødé", "variänt"), ("x" * 300, "y" * 70)):
        # Feast sorts the keys itself: the order they are given in must not matter.
        key = EntityKey(
            join_keys=["variant_id", "recipient_id"],
            entity_values=[Value(string_val=vid), Value(string_val=rid)],
        )
        assert variant_entity_key(rid, vid) == serialize_entity_key(key, 3)


def test_in_memory_fake_serves_variant_rows() -> None:
    client = InMemoryFeatureClient({}, variants={("a", "v1"): {"variant_clicks_90d": 2}})
    rows = client.variant_features("a", ["v1", "v2"])
    assert rows["v1"] == {**VARIANT_DEFAULTS, "variant_clicks_90d": 2}
    assert rows["v2"] == VARIANT_DEFAULTS


def test_raw_feast_values_match_before_defaults(built_world: World) -> None:
    settings, _ = built_world
    store = feature_store(settings)
    refs = [f"recipient_engagement:{f}" for f in ENGAGEMENT_FEATURES]
    raw = store.get_online_features(features=refs, entity_rows=[{"recipient_id": "r007"}]).to_dict()
    fast = SqliteFeatureClient(settings, ENGAGEMENT_FEATURES).get("r007")
    assert fast == {f: raw[f][0] for f in ENGAGEMENT_FEATURES}


def test_unknown_recipient_gets_documented_defaults(built_world: World) -> None:
    settings, _ = built_world
    for client in (
        SqliteFeatureClient(settings),
        FeastFeatureClient.from_settings(settings),
        InMemoryFeatureClient({}),
    ):
        row = client.get("never-seen")
        assert row == DEFAULTS
        assert row["days_since_last_open"] == 999
        assert row["timezone"] == "UTC"


def test_entity_key_matches_feast_serialization(built_world: World) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    settings, _ = built_world
    client = SqliteFeatureClient(settings)
    for rid in ("r001", "", "ünï-çødé", "x" * 300):
        key = EntityKey(join_keys=["recipient_id"], entity_values=[Value(string_val=rid)])
        assert client._key(rid) == serialize_entity_key(key, 3)


def test_cache_is_dropped_after_the_store_changes(built_world: World) -> None:
    settings, _ = built_world
    client = SqliteFeatureClient(settings, ["opens_7d"], max_staleness=timedelta(0))
    before = client.get("r002")["opens_7d"]
    with sqlite3.connect(online_db_path(settings)) as conn:  # another writer touches the file
        conn.execute("CREATE TABLE IF NOT EXISTS touch (x)")
        conn.execute("DROP TABLE touch")
    client._cache.add({"r002": {"opens_7d": -1}})
    time.sleep(0.01)
    assert client.get("r002")["opens_7d"] == before


def test_each_thread_reads_rows_on_a_connection_of_its_own(built_world: World) -> None:
    # A statement deadline may watch a connection only while one thread uses it.
    settings, _ = built_world
    client = SqliteFeatureClient(settings)
    seen: dict[str, int] = {}
    statements: list[str] = []
    client._conn.set_trace_callback(statements.append)

    def read(rid: str) -> None:
        assert client.get(rid) == client._load([rid])[rid]
        assert (
            client.variant_features(rid, ["v0"])["v0"]
            == client._load_variants([(rid, "v0")])[rid, "v0"]
        )
        seen[rid] = id(client._reader())

    read("r001")
    other = threading.Thread(target=read, args=("r002",))
    other.start()
    other.join()
    assert seen["r001"] != seen["r002"]
    assert len(client._readers.by_thread()) == 2
    assert not [s for s in statements if "_inboxlab_prepared " in s or "entity_key" in s]
    # A thread that has ended leaves no connection open behind it.
    ended = client._readers.by_thread()[other]
    later = threading.Thread(target=read, args=("r004",))
    later.start()
    later.join()
    assert set(client._readers.by_thread()) == {threading.current_thread(), later}
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        ended.execute("SELECT 1")
    client.close()
    with pytest.raises(StoreError, match="closed"):
        client.get("r003")


def test_in_memory_fake_fills_missing_values() -> None:
    client = InMemoryFeatureClient({"a": {"opens_7d": 4}}, features=["opens_7d", "timezone"])
    assert client.get_many(["a", "b"]) == {
        "a": {"opens_7d": 4, "timezone": "UTC"},
        "b": {"opens_7d": 0, "timezone": "UTC"},
    }


def test_unknown_feature_names_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no_such_feature"):
        InMemoryFeatureClient({}, features=["opens_7d", "no_such_feature"])


def test_missing_online_store_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(StoreError, match="features materialize"):
        SqliteFeatureClient(settings)


def test_with_defaults_replaces_nulls() -> None:
    assert with_defaults({"sends_7d": None}, ["sends_7d"]) == {"sends_7d": 0}


def test_tiny_cache_still_returns_every_row(built_world: World) -> None:
    settings, _ = built_world
    reference = SqliteFeatureClient(settings).get_many(IDS)
    tiny = SqliteFeatureClient(settings, max_entries=1)
    tiny.get("r001")
    assert tiny.get_many(IDS) == reference
    assert tiny.get_many(IDS[::-1]) == reference


@pytest.fixture
def world_copy(built_world: World, tmp_path: Path) -> Settings:
    """A copy of the shared world (events, features, registry and online store) to alter."""
    settings, _ = built_world
    shutil.copytree(settings.data_dir, tmp_path / "data")
    return Settings(data_dir=tmp_path / "data")


class _CountingValue:
    """Stands for Feast's ``Value`` class, recording the blobs it parses."""

    def __init__(self) -> None:
        self.parsed: list[bytes] = []

    def FromString(self, blob: bytes) -> object:
        from feast.protos.feast.types.Value_pb2 import Value

        self.parsed.append(blob)
        return Value.FromString(blob)


def test_decoded_values_parse_each_blob_once_and_stay_bounded() -> None:
    from feast.protos.feast.types.Value_pb2 import Null, Value

    value_type = _CountingValue()
    values = DecodedValues(value_type, limit=3)
    three, zone = (
        Value(int64_val=3).SerializeToString(),
        Value(string_val="UTC").SerializeToString(),
    )
    null = Value(null_val=Null.NULL).SerializeToString()
    assert [values[three], values[zone], values[three], values[null], values[b""]] == [
        3,
        "UTC",
        3,
        None,
        None,
    ]
    assert value_type.parsed == [three, zone, null, b""]  # ``three`` parsed once
    assert len(values) == 1  # full at the fourth distinct blob: started afresh
    for i in range(100):
        assert values[Value(double_val=i / 8).SerializeToString()] == i / 8
        assert len(values) <= 3


def test_requested_features_come_in_the_requested_order(built_world: World) -> None:
    settings, _ = built_world
    names = [SEND_TIME_FEATURES[5], ENGAGEMENT_FEATURES[3], "timezone", ENGAGEMENT_FEATURES[0]]
    fast = SqliteFeatureClient(settings, names).get_many(IDS)
    assert fast == FeastFeatureClient.from_settings(settings, names).get_many(IDS)
    assert all(list(row) == names for row in fast.values())
    everything = SqliteFeatureClient(settings).get("r002")
    assert list(everything) == [*ENGAGEMENT_FEATURES, *SEND_TIME_FEATURES]


def test_many_keys_are_read_in_chunks(built_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = built_world
    reference = SqliteFeatureClient(settings)
    expected = reference.get_many(IDS)
    expected_variants = reference.variant_features_many({rid: VARIANTS for rid in IDS})
    monkeypatch.setattr(features.online, "KEYS_PER_STATEMENT", 8)  # the last chunk is a partial one
    chunked = SqliteFeatureClient(settings)
    second: list[str] = []
    chunked._second_connection()[1].set_trace_callback(second.append)
    assert chunked.get_many(IDS) == expected
    assert chunked.variant_features_many({rid: VARIANTS for rid in IDS}) == expected_variants
    # A read of several chunks ran half of its statements on the second connection; reads of
    # fewer keys than a chunk never open it.
    assert sum(sql.startswith("SELECT (SELECT") for sql in second) >= 2
    assert reference._second is None
    chunked.close()
    assert chunked._second is None
    with pytest.raises(StoreError, match="closed"):
        chunked.get_many([f"other-{i}" for i in range(40)])


def test_an_index_dropped_after_it_was_chosen_is_read_around(world_copy: Settings) -> None:
    client = SqliteFeatureClient(world_copy, max_entries=1)
    expected = client.get_many(IDS)
    path = online_db_path(world_copy)
    with sqlite3.connect(path) as conn:  # as if Feast re-created the tables meanwhile
        for table in ONLINE_TABLES:
            conn.execute(f'DROP INDEX "{cover_index(table)}"')
    assert client.get_many(IDS) == expected  # read row by row, not failed
    assert client.get_many(IDS) == expected  # and the choice made again: the primary key
    assert set(client._packed_via.values()) <= {
        f"sqlite_autoindex_{table}_1" for table in ONLINE_TABLES
    }


def test_null_and_missing_values_get_their_defaults_as_in_feast(world_copy: Settings) -> None:
    # Feast writes a null as a Value with nothing set: an empty blob.
    with sqlite3.connect(online_db_path(world_copy)) as conn:
        changed = [
            conn.execute(
                "UPDATE inboxlab_recipient_engagement SET value = x'' "
                "WHERE entity_key = ? AND feature_name IN ('opens_7d', 'days_since_last_open')",
                (entity_key("r001"),),
            ).rowcount,
            conn.execute(
                "UPDATE inboxlab_recipient_send_time SET value = x'' "
                "WHERE entity_key = ? AND feature_name = 'timezone'",
                (entity_key("r001"),),
            ).rowcount,
            conn.execute(
                "DELETE FROM inboxlab_recipient_send_time "
                "WHERE entity_key = ? AND feature_name LIKE 'open_hour_%'",
                (entity_key("r002"),),
            ).rowcount,
            conn.execute(
                "DELETE FROM inboxlab_recipient_variant "
                "WHERE entity_key = ? AND feature_name = 'variant_sends_90d'",
                (variant_entity_key("r003", "v0"),),
            ).rowcount,
        ]
    assert changed == [2, 1, 24, 1]
    fast = SqliteFeatureClient(world_copy)
    feast_client = FeastFeatureClient.from_settings(world_copy)
    assert fast.get_many(IDS) == feast_client.get_many(IDS)
    row, other = fast.get("r001"), fast.get("r002")
    assert (row["opens_7d"], row["days_since_last_open"], row["timezone"]) == (0, 999, "UTC")
    assert other["open_hour_05"] == DEFAULTS["open_hour_05"]
    requests = {"r003": VARIANTS, "r004": VARIANTS}
    variants = fast.variant_features_many(requests)
    assert variants == feast_client.variant_features_many(requests)
    assert variants["r003"]["v0"]["variant_sends_90d"] == 0


def test_a_variant_table_created_later_is_read_once_the_store_changes(
    world_copy: Settings,
) -> None:
    expected = SqliteFeatureClient(world_copy).variant_features_many({"r001": VARIANTS})
    assert expected != {"r001": dict.fromkeys(VARIANTS, VARIANT_DEFAULTS)}
    path = online_db_path(world_copy)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE inboxlab_recipient_variant RENAME TO hidden")
    client = SqliteFeatureClient(world_copy, max_staleness=timedelta(0))
    assert client.variant_features_many({"r001": VARIANTS}) == {
        "r001": dict.fromkeys(VARIANTS, VARIANT_DEFAULTS)
    }
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE hidden RENAME TO inboxlab_recipient_variant")
    time.sleep(0.01)
    assert client.variant_features_many({"r001": VARIANTS}) == expected


@pytest.mark.usefixtures("without_prepared")
@pytest.mark.parametrize("packed_min_keys", [1, 10**9])
def test_packed_and_row_by_row_reads_return_exactly_what_feast_returns(
    built_world: World, monkeypatch: pytest.MonkeyPatch, packed_min_keys: int
) -> None:
    settings, _ = built_world
    packed_calls: list[int] = []

    def counted(packed: Sequence[bytes], defaults: Sequence[object]) -> object:
        packed_calls.append(len(packed))
        return decode_packed(packed, defaults)

    monkeypatch.setattr(features.online, "decode_packed", counted)
    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", packed_min_keys)
    names = ["timezone", SEND_TIME_FEATURES[7], ENGAGEMENT_FEATURES[0], "engagement_score"]
    for features_asked in (None, names):
        fast = SqliteFeatureClient(settings, features_asked, max_entries=1)
        feast_client = FeastFeatureClient.from_settings(settings, features_asked)
        got = fast.get_many(IDS)
        assert got == feast_client.get_many(IDS)
        assert all(list(row) == list(fast.features) for row in got.values())
        assert fast.get("r003") == feast_client.get("r003")
    requests = {rid: VARIANTS for rid in IDS}
    variants = SqliteFeatureClient(settings, max_entries=1).variant_features_many(requests)
    assert variants == FeastFeatureClient.from_settings(settings).variant_features_many(requests)
    # One packed read per view of a read of many; none when every read is row by row.
    assert bool(packed_calls) == (packed_min_keys == 1)


@pytest.mark.usefixtures("without_prepared")
def test_values_the_bulk_decoder_leaves_aside_are_read_through_protobuf(
    world_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", 1)
    twice = Value(int64_val=5).SerializeToString() * 2  # protobuf keeps the last: 5
    nan = Value(double_val=float("nan")).SerializeToString()
    with sqlite3.connect(online_db_path(world_copy)) as conn:
        for rid, name, blob in (("r001", "opens_7d", twice), ("r002", "engagement_score", nan)):
            conn.execute(
                "UPDATE inboxlab_recipient_engagement SET value = ? "
                "WHERE entity_key = ? AND feature_name = ?",
                (blob, entity_key(rid), name),
            )
    fast = SqliteFeatureClient(world_copy).get_many(IDS)
    expected = FeastFeatureClient.from_settings(world_copy).get_many(IDS)
    nan_row, nan_expected = fast.pop("r002"), expected.pop("r002")
    assert fast == expected
    assert fast["r001"]["opens_7d"] == 5
    # NaN equals nothing, itself included: compared apart.
    assert math.isnan(float(nan_row.pop("engagement_score")))
    assert math.isnan(float(nan_expected.pop("engagement_score")))
    assert nan_row == nan_expected


ONLINE_TABLES = [
    f"inboxlab_{view}" for view in ("recipient_engagement", "recipient_send_time", VARIANT_VIEW)
]


@pytest.fixture
def without_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads as from a store without prepared rows (:mod:`features.prepared`), which reads
    take first: Feast's rows, packed or row by row."""
    monkeypatch.setattr(features.prepared.PreparedReader, "read", lambda self, keys, conn=None: {})


def _packed_walks(client: SqliteFeatureClient, read: Callable[[], object]) -> dict[str, str]:
    """Per table, how SQLite walks it in the packed statements ``read`` runs on ``client``:
    the steps of their query plans that name the table.

    Each statement is traced as run (parameters bound) and explained on another connection.
    """
    statements: list[str] = []
    # Rows are read on this thread's connection; reads of several chunks run half of them
    # on the client's second connection.
    connections = (client._reader(), client._second_connection()[1])
    for conn in connections:
        conn.set_trace_callback(statements.append)
    try:
        read()
    finally:
        for conn in connections:
            conn.set_trace_callback(None)
    path = client._conn.execute("PRAGMA database_list").fetchone()[2]
    walks: dict[str, str] = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for sql in statements:
            if sql.startswith("SELECT (SELECT"):
                plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
                assert not any("TEMP B-TREE" in step for step in plan), plan
                table = sql.split('FROM "', 1)[1].split('"', 1)[0]
                walk = " | ".join(step for step in plan if f" {table} " in step)
                assert walks.setdefault(table, walk) == walk  # the same for every statement
    return walks


def _cover_walk(table: str) -> str:
    return f"SEARCH {table} USING COVERING INDEX {cover_index(table)} (entity_key=?)"


@pytest.mark.usefixtures("without_prepared")
def test_materialize_adds_the_covering_indexes_that_packed_reads_walk(
    built_world: World,
) -> None:
    settings, _ = built_world
    path = online_db_path(settings)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for table in ONLINE_TABLES:
            info = conn.execute(f'PRAGMA index_info("{cover_index(table)}")').fetchall()
            assert [column for *_, column in info] == ["entity_key", "feature_name", "value"]
    assert add_cover_indexes(path, ONLINE_TABLES) == []  # already there: nothing to add
    client = SqliteFeatureClient(settings, max_entries=1)
    requests = {rid: VARIANTS for rid in IDS}

    def read() -> object:
        return client.get_many(IDS), client.variant_features_many(requests)

    walks = _packed_walks(client, read)
    assert walks == {table: _cover_walk(table) for table in ONLINE_TABLES}
    # Feast's own read (its statement in feast.infra.online_stores.sqlite) keeps its index.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for table in ONLINE_TABLES:
            feast_read = (
                f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" '
                "WHERE entity_key IN (?, ?) ORDER BY entity_key"
            )
            plan = conn.execute(f"EXPLAIN QUERY PLAN {feast_read}", (b"a", b"b")).fetchall()
            assert [step for *_, step in plan] == [
                f"SEARCH {table} USING INDEX {table}_ek (entity_key=?)"
            ]


@pytest.mark.usefixtures("without_prepared")
def test_reads_with_and_without_the_covering_index_equal_feast(world_copy: Settings) -> None:
    path = online_db_path(world_copy)
    feast_client = FeastFeatureClient.from_settings(world_copy)
    requests = {rid: VARIANTS for rid in IDS}
    expected = feast_client.get_many(IDS), feast_client.variant_features_many(requests)

    def walks(client: SqliteFeatureClient) -> dict[str, str]:
        def read() -> None:
            # Many keys (packed), and one key of each kind (row by row).
            assert (client.get_many(IDS), client.variant_features_many(requests)) == expected
            assert client.get("r003") == feast_client.get("r003")
            assert client.variant_features("r004", VARIANTS) == expected[1]["r004"]

        return _packed_walks(client, read)

    client = SqliteFeatureClient(world_copy, max_entries=1, max_staleness=timedelta(0))
    assert walks(client) == {table: _cover_walk(table) for table in ONLINE_TABLES}
    # A store Feast materialized without them: the same client reads it once it has changed,
    # and a new one from the start, through the primary-key index and the table.
    with sqlite3.connect(path) as conn:
        for table in ONLINE_TABLES:
            conn.execute(f'DROP INDEX "{cover_index(table)}"')
    primary = {
        table: f"SEARCH {table} USING INDEX sqlite_autoindex_{table}_1 (entity_key=?)"
        for table in ONLINE_TABLES
    }
    assert walks(client) == primary
    assert walks(SqliteFeatureClient(world_copy, max_entries=1)) == primary
    # Added again (as the next materialization does), the same client walks them again.
    assert add_cover_indexes(path, reversed(ONLINE_TABLES)) == ONLINE_TABLES[::-1]
    assert walks(client) == {table: _cover_walk(table) for table in ONLINE_TABLES}


@pytest.mark.usefixtures("without_prepared")
def test_feast_writes_after_the_covering_index_keep_it_current(world_copy: Settings) -> None:
    client = SqliteFeatureClient(world_copy, ENGAGEMENT_FEATURES, max_entries=1)
    feast_client = FeastFeatureClient.from_settings(world_copy, ENGAGEMENT_FEATURES)
    before = feast_client.get_many(IDS)
    ids = ["r001", "r002", "r039", "newcomer"]  # three stored recipients and a new one
    frame = engagement_frame(ids)
    # Feast's own upsert (the path of every later materialization) with the index in place.
    feature_store(world_copy).write_to_online_store("recipient_engagement", frame)
    after = feast_client.get_many([*IDS, "newcomer"])
    assert all(after[rid] != before.get(rid) for rid in ids)
    assert after["r039"]["sends_7d"] == 102
    table = "inboxlab_recipient_engagement"
    walks = _packed_walks(client, lambda: client.get_many([*IDS, "newcomer"]))
    assert walks == {table: _cover_walk(table)}
    assert client.get_many([*IDS, "newcomer"]) == after
