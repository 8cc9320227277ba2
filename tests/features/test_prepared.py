"""Prepared rows: single reads from one blob per view, equal to Feast's, never stale."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

import features.online
import features.prepared
from features.engineering.tables import ENGAGEMENT_FEATURES, SEND_TIME_FEATURES
from features.online import (
    FeastFeatureClient,
    SqliteFeatureClient,
    entity_key,
    feature_tables,
)
from features.prepared import (
    LAYOUT_TABLE,
    PREPARED_TABLE,
    PreparedLayout,
    prepare,
    trigger_names,
)
from features.store import feature_store, online_db_path
from inboxlab.settings import Settings
from tests.features.conftest import FEAST_WARNINGS, Row, engagement_frame

pytestmark = FEAST_WARNINGS

World = tuple[Settings, list[Row]]
STORED = [f"r{i:03d}" for i in range(40)]
ENGAGEMENT = "inboxlab_recipient_engagement"
SEND_TIME = "inboxlab_recipient_send_time"


@pytest.fixture
def world(built_world: World, tmp_path: Path) -> Settings:
    """A copy of the shared materialized world, to alter."""
    settings, _ = built_world
    shutil.copytree(settings.data_dir, tmp_path / "data")
    return Settings(data_dir=tmp_path / "data")


def _prepared_keys(settings: Settings, table: str) -> set[bytes]:
    with sqlite3.connect(online_db_path(settings)) as conn:
        query = f"SELECT entity_key FROM {PREPARED_TABLE} WHERE tbl = ?"
        return {key for (key,) in conn.execute(query, (table,))}


def _single_reads(client: SqliteFeatureClient, ids: list[str]) -> dict[str, object]:
    return {rid: client._load([rid])[rid] for rid in ids}


def _no_row_reads(client: SqliteFeatureClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(tables: object, keys: list[bytes]) -> dict[bytes, list[object]]:
        if keys:
            raise AssertionError(f"read row by row: {keys}")
        return {}

    monkeypatch.setattr(client, "_rows", refuse)


def test_materialize_prepares_every_stored_recipient(built_world: World) -> None:
    settings, _ = built_world
    expected = {entity_key(rid) for rid in STORED}
    assert _prepared_keys(settings, ENGAGEMENT) == expected
    assert _prepared_keys(settings, SEND_TIME) == expected
    with sqlite3.connect(online_db_path(settings)) as conn:
        triggers = {
            n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
        layouts = dict(conn.execute(f"SELECT tbl, codes FROM {LAYOUT_TABLE}"))
    assert {*trigger_names(ENGAGEMENT), *trigger_names(SEND_TIME)} <= triggers
    assert layouts[SEND_TIME].endswith("s")  # the time zone, after the numbers


def test_single_reads_come_from_prepared_rows_and_equal_feast(
    built_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = built_world
    client = SqliteFeatureClient(settings, max_entries=1)
    _no_row_reads(client, monkeypatch)  # a stored recipient never needs Feast's rows
    got = _single_reads(client, STORED)
    expected = FeastFeatureClient.from_settings(settings).get_many(STORED)
    assert got == expected
    for rid in STORED:
        assert [type(v) for v in got[rid].values()] == [  # type: ignore[attr-defined]
            type(expected[rid][name])
            for name in got[rid]  # type: ignore[attr-defined]
        ]
    # A few at once, in a requested order, and a subset of the features.
    assert client._load(STORED[:5]) == {rid: expected[rid] for rid in STORED[:5]}
    subset = ["timezone", "opens_7d", "open_hour_05", "engagement_score"]
    partial = SqliteFeatureClient(settings, subset)
    assert partial._prepared.usable
    assert list(partial._load(["r007"])["r007"]) == subset
    assert partial._load(["r007"])["r007"] == {n: expected["r007"][n] for n in subset}


def test_reads_of_many_come_from_prepared_rows_and_the_rest_from_feasts_rows(
    world: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features.online, "PACKED_MIN_KEYS", 2)
    client = SqliteFeatureClient(world, max_entries=1)
    expected = FeastFeatureClient.from_settings(world).get_many([*STORED, "nobody"])
    _no_row_reads(client, monkeypatch)
    monkeypatch.setattr(features.prepared, "KEYS_PER_STATEMENT", 7)  # 40 recipients: six statements
    assert client._load(STORED) == {rid: expected[rid] for rid in STORED}
    # Recipients without prepared rows: packed when many, row by row when one.
    with sqlite3.connect(online_db_path(world)) as conn:
        conn.execute(
            f"DELETE FROM {PREPARED_TABLE} WHERE entity_key IN (?, ?)",
            (entity_key("r003"), entity_key("r017")),
        )
    packed: list[list[bytes]] = []
    read_packed = client._read_packed

    def counted(keys: list[bytes], layout: object) -> object:
        packed.append(list(keys))
        return read_packed(keys, layout)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "_read_packed", counted)
    ids = [*STORED, "nobody"]
    assert client._load(ids) == expected
    assert packed == [[entity_key(r) for r in ("r003", "r017", "nobody")]]


def test_unknown_recipients_fall_back_to_the_defaults(built_world: World) -> None:
    settings, _ = built_world
    client = SqliteFeatureClient(settings)
    ids = ["nobody", "r003", "someone-else"]
    assert client._load(ids) == FeastFeatureClient.from_settings(settings).get_many(ids)


def test_a_feast_write_drops_the_prepared_rows_it_changes(world: Settings) -> None:
    ids = ["r001", "r039", "newcomer"]
    frame = engagement_frame(ids)
    feature_store(world).write_to_online_store("recipient_engagement", frame)  # Feast's own
    left = _prepared_keys(world, ENGAGEMENT)
    assert entity_key("r001") not in left and entity_key("r039") not in left
    assert entity_key("r002") in left and entity_key("r001") in _prepared_keys(world, SEND_TIME)
    expected = FeastFeatureClient.from_settings(world).get_many([*STORED, "newcomer"])
    assert expected["r039"]["sends_7d"] == 101
    assert _single_reads(SqliteFeatureClient(world), [*STORED, "newcomer"]) == expected
    # The next preparation makes them again, from the new values.
    assert prepare(online_db_path(world), feature_tables()) == {ENGAGEMENT: 3, SEND_TIME: 0}
    client = SqliteFeatureClient(world)
    assert _single_reads(client, [*STORED, "newcomer"]) == expected
    assert client._prepared.read([entity_key("r039")])[entity_key("r039")]["sends_7d"] == 101


def test_direct_updates_and_deletes_drop_prepared_rows(world: Settings) -> None:
    client = SqliteFeatureClient(world, max_staleness=timedelta(0))
    with sqlite3.connect(online_db_path(world)) as conn:
        conn.execute(
            f"UPDATE {ENGAGEMENT} SET value = x'' WHERE entity_key = ? AND feature_name = ?",
            (entity_key("r004"), "opens_7d"),
        )
        conn.execute(f"DELETE FROM {SEND_TIME} WHERE entity_key = ?", (entity_key("r005"),))
    assert entity_key("r004") not in _prepared_keys(world, ENGAGEMENT)
    assert entity_key("r005") not in _prepared_keys(world, SEND_TIME)
    expected = FeastFeatureClient.from_settings(world).get_many(STORED)
    assert expected["r005"]["timezone"] == "UTC"  # the default now
    assert _single_reads(client, STORED) == expected


def test_a_value_of_another_type_is_read_row_by_row(world: Settings) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    with sqlite3.connect(online_db_path(world)) as conn:
        conn.execute(
            f"UPDATE {ENGAGEMENT} SET value = ? WHERE entity_key = ? AND feature_name = ?",
            (Value(bool_val=True).SerializeToString(), entity_key("r006"), "opens_7d"),
        )
    prepare(online_db_path(world), feature_tables())
    assert entity_key("r006") not in _prepared_keys(world, ENGAGEMENT)
    got = _single_reads(SqliteFeatureClient(world), ["r006"])
    assert got == FeastFeatureClient.from_settings(world).get_many(["r006"])
    assert got["r006"]["opens_7d"] is True  # type: ignore[index]


def test_a_table_that_lost_its_triggers_is_not_read_prepared(world: Settings) -> None:
    path = online_db_path(world)
    with sqlite3.connect(path) as conn:  # as when Feast drops and re-creates a table
        for name in trigger_names(SEND_TIME):
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute(
            f"UPDATE {SEND_TIME} SET value = ? WHERE entity_key = ? AND feature_name = 'timezone'",
            (_string_value("Asia/Tokyo"), entity_key("r008")),
        )
    client = SqliteFeatureClient(world)
    assert not client._prepared.usable
    expected = FeastFeatureClient.from_settings(world).get_many(STORED)
    assert expected["r008"]["timezone"] == "Asia/Tokyo"
    assert _single_reads(client, STORED) == expected
    # Preparing again drops the table's old rows, guards it and prepares every recipient.
    assert prepare(path, feature_tables()) == {ENGAGEMENT: 0, SEND_TIME: 40}
    client = SqliteFeatureClient(world)
    assert client._prepared.usable
    assert _single_reads(client, STORED) == expected


def test_an_open_client_sees_a_preparation_once_the_store_changes(world: Settings) -> None:
    path = online_db_path(world)
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TABLE {LAYOUT_TABLE}")
    client = SqliteFeatureClient(world, max_staleness=timedelta(0))
    assert not client._prepared.usable
    prepare(path, feature_tables())
    client.get("r001")  # revalidates: the store changed
    assert client._prepared.usable


def _string_value(text: str) -> bytes:
    from feast.protos.feast.types.Value_pb2 import Value

    return bytes(Value(string_val=text).SerializeToString())


@pytest.mark.parametrize(
    "values",
    [
        [0.1, -0.0, float("inf"), 2**62, -(2**63), "Europe/Paris"],
        [1e-300, 3.5, 7.0, 0, 0, "América/São_Paulo"],
    ],
)
def test_layout_round_trips_exactly(values: list[object]) -> None:
    names = ["open_rate_30d", "engagement_score", "revenue_7d", "opens_7d", "sends_7d", "timezone"]
    layout = PreparedLayout.of("t", names)
    by_name = dict(zip(names, values, strict=True))
    ordered = [by_name[n] for n in layout.names]
    back = layout.unpack(layout.pack(ordered))  # type: ignore[arg-type]
    assert back == tuple(ordered)
    assert [type(v) for v in back] == [type(v) for v in ordered]
    assert str(back[layout.names.index("engagement_score")]) == str(by_name["engagement_score"])


def test_only_the_layouts_features_are_prepared() -> None:
    layout = PreparedLayout.of(ENGAGEMENT, ENGAGEMENT_FEATURES)
    assert set(layout.names) == set(ENGAGEMENT_FEATURES)
    assert "s" not in layout.codes
    assert PreparedLayout.of(SEND_TIME, SEND_TIME_FEATURES).codes.count("s") == 1


def test_rows_are_prepared_in_batches_and_without_the_covering_index(
    world: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.prepared

    path = online_db_path(world)
    with sqlite3.connect(path) as conn:
        conn.execute(f"DELETE FROM {PREPARED_TABLE}")
        conn.execute(f'DROP INDEX "{ENGAGEMENT}_cover"')  # walks Feast's primary-key index
    monkeypatch.setattr(features.prepared, "_BATCH", 7)  # 40 recipients: six batches
    assert prepare(path, feature_tables()) == {ENGAGEMENT: 40, SEND_TIME: 40}
    assert prepare(path, feature_tables()) == {ENGAGEMENT: 0, SEND_TIME: 0}
    client = SqliteFeatureClient(world)
    assert client._prepared.read([entity_key(rid) for rid in STORED]).keys() == {
        entity_key(rid) for rid in STORED
    }
    expected = FeastFeatureClient.from_settings(world).get_many(STORED)
    assert _single_reads(client, STORED) == expected


def test_a_bulk_write_lifts_the_triggers_in_its_own_transaction_only(world: Settings) -> None:
    from features.prepared import writing_in_bulk

    path = online_db_path(world)

    def state() -> tuple[set[str], set[bytes]]:
        with sqlite3.connect(path) as conn:
            names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
        return names & set(trigger_names(ENGAGEMENT)), _prepared_keys(world, ENGAGEMENT)

    triggers, keys = state()
    assert triggers == set(trigger_names(ENGAGEMENT)) and len(keys) == 40
    conn = sqlite3.connect(path)  # Python's default: DML opens transactions, DDL would not
    with pytest.raises(RuntimeError), conn, writing_in_bulk(conn, ENGAGEMENT) as forget:
        forget([entity_key("r001")])
        raise RuntimeError("the write is refused halfway")
    assert state() == (triggers, keys)  # all undone, the triggers included
    with conn, writing_in_bulk(conn, ENGAGEMENT) as forget:
        forget([entity_key("r001"), entity_key("r002")])
        conn.execute(  # no trigger fires inside: r003 keeps its (now stale) prepared row...
            f"UPDATE {ENGAGEMENT} SET value = value WHERE entity_key = ?", (entity_key("r003"),)
        )
    conn.close()
    assert state() == (triggers, keys - {entity_key("r001"), entity_key("r002")})
    with sqlite3.connect(path) as other:  # ...so the writer forgets what it writes; after it,
        other.execute(  # the triggers are back
            f"UPDATE {ENGAGEMENT} SET value = value WHERE entity_key = ?", (entity_key("r004"),)
        )
    assert entity_key("r004") not in _prepared_keys(world, ENGAGEMENT)
