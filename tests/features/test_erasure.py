"""Erasure: nothing of the person is left on the feature side, everyone else is untouched."""

from __future__ import annotations

import sqlite3

import duckdb
import pytest
from typer.testing import CliRunner

from features.engineering.build import build_features
from features.engineering.tables import table_glob
from features.erasure import erase_recipient
from features.events import EventLog
from features.events.importer import import_tables
from features.events.recipients import write_recipients
from features.online import entity_key, variant_entity_key
from features.prepared import LAYOUT_TABLE, PREPARED_TABLE
from features.simulator import SimulationConfig, simulate
from features.store import materialize, online_db_path
from inboxlab.cli import app
from inboxlab.settings import Settings, get_settings


def _world(settings: Settings) -> None:
    sim = simulate(SimulationConfig(recipients=150, days=15, seed=5))
    import_tables([("sim", sim.events)], EventLog(settings.events_dir))
    write_recipients(settings.recipients_path, sim.truth.recipient_directory())
    build_features(settings)
    materialize(settings)


def _count(settings: Settings, glob: str, rid: str) -> int:
    query = f"SELECT count(*) FROM read_parquet('{glob}') WHERE recipient_id = '{rid}'"
    return int(duckdb.sql(query).fetchall()[0][0])


def test_forget_removes_the_person_everywhere_and_only_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOXLAB_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    _world(settings)
    log = EventLog(settings.events_dir)
    target, other = "r0000003", "r0000004"
    other_events = _count(settings, log.glob(), other)
    assert _count(settings, log.glob(), target) > 0
    result = CliRunner().invoke(app, ["forget", target, "--yes"])
    assert result.exit_code == 0, result.output
    assert _count(settings, log.glob(), target) == 0
    assert _count(settings, log.glob(), other) == other_events
    for table in ("engagement", "send_time", "recipient_variant"):
        glob = table_glob(settings.data_dir, table)
        assert _count(settings, glob, target) == 0
        assert _count(settings, glob, other) > 0
    assert _count(settings, str(settings.recipients_path), target) == 0
    with sqlite3.connect(online_db_path(settings)) as conn:
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert PREPARED_TABLE in tables  # the prepared rows of single reads are erased too
        others_prepared = f"SELECT count(*) FROM {PREPARED_TABLE} WHERE entity_key = ?"
        assert conn.execute(others_prepared, (entity_key(other),)).fetchone() == (2,)
        for name in set(tables) - {LAYOUT_TABLE}:
            rows = conn.execute(
                f'SELECT count(*) FROM "{name}" WHERE entity_key = ?', (entity_key(target),)
            ).fetchone()
            assert rows == (0,)
        variant_rows = 'SELECT count(*) FROM "inboxlab_recipient_variant" WHERE entity_key = ?'
        for vid in ("v0", "v1", "v2"):
            assert conn.execute(variant_rows, (variant_entity_key(target, vid),)).fetchone() == (0,)
        others = [variant_entity_key(other, vid) for vid in ("v0", "v1", "v2")]
        assert sum(conn.execute(variant_rows, (key,)).fetchone()[0] for key in others) > 0
    assert "audit record" in result.output
    again = erase_recipient(settings, target)  # idempotent
    assert (again.events, again.feature_rows, again.online_rows) == (0, 0, 0)
    get_settings.cache_clear()


@pytest.mark.redis
def test_erasure_removes_the_persons_keys_from_the_redis_online_store(
    redis_world: tuple[Settings, str],
) -> None:
    import redis as redis_lib

    settings, project = redis_world
    suffix = project.encode()
    conn = redis_lib.Redis.from_url(settings.stores.redis_url)
    target, other = "r005", "r006"

    def variant_keys(rid: str) -> list[bytes]:
        keys = [variant_entity_key(rid, vid) + suffix for vid in ("v0", "v1", "v2")]
        return [key for key in keys if conn.exists(key)]

    # a key of a project whose name merely ends with this one's must survive
    decoy = variant_entity_key(target, "v0") + b"x" + suffix
    conn.hset(decoy, b"f", b"1")
    try:
        assert conn.exists(entity_key(target) + suffix)
        mine, theirs = variant_keys(target), variant_keys(other)
        assert mine and theirs
        result = erase_recipient(settings, target, project=project)
        assert result.online_rows == 1 + len(mine)
        assert not conn.exists(entity_key(target) + suffix)
        assert variant_keys(target) == []
        assert conn.exists(entity_key(other) + suffix)
        assert variant_keys(other) == theirs
        assert conn.exists(decoy)
        assert erase_recipient(settings, target, project=project).online_rows == 0
    finally:
        conn.delete(decoy)
        conn.close()
