from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from features.events import EVENT_SCHEMA, EventLog
from inboxlab.errors import InvalidInputError


def _events(n: int, start: dt.datetime, *, prefix: str = "e") -> pa.Table:
    rows = [
        {
            "event_id": f"{prefix}{i}",
            "recipient_id": f"r{i % 7}",
            "kind": "send",
            "occurred_at": start + dt.timedelta(hours=6 * i),
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


START = dt.datetime(2026, 3, 1, 1, tzinfo=dt.UTC)


def test_append_partitions_by_utc_day_and_reads_back(log: EventLog) -> None:
    result = log.append(_events(10, START))
    assert result.rows == 10
    assert log.partitions() == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert log.read().num_rows == 10
    assert log.read().schema.equals(EVENT_SCHEMA)


def test_log_is_readable_by_duckdb_and_pandas(log: EventLog) -> None:
    log.append(_events(8, START))
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{log.glob()}', hive_partitioning=true)")
    assert n.fetchall() == [(8,)]
    frame = pd.read_parquet(log.directory)
    assert len(frame) == 8
    assert set(frame["date"].astype(str)) == {"2026-03-01", "2026-03-02"}
    with log.connect() as con:
        assert con.execute("SELECT count(DISTINCT recipient_id) FROM events").fetchone() == (7,)


def test_empty_log_has_an_empty_events_view(log: EventLog) -> None:
    with log.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_append_refuses_a_table_with_another_schema(log: EventLog) -> None:
    with pytest.raises(InvalidInputError, match="schema"):
        log.append(pa.table({"recipient_id": ["r1"]}))


def test_failure_mid_write_leaves_the_log_untouched(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append(_events(4, START))
    before = sorted(log.files())
    real_replace = Path.replace
    calls = {"n": 0}

    def flaky_replace(src: Path, dst: Path) -> Path:
        calls["n"] += 1
        if calls["n"] == 2:  # the second partition of the append
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(Path, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        log.append(_events(12, START + dt.timedelta(days=5), prefix="new"))
    monkeypatch.undo()
    assert sorted(log.files()) == before
    assert log.read().num_rows == 4
    assert not list((log.directory / "_txn").iterdir())


def test_crash_after_partial_rename_is_rolled_back_by_the_next_writer(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append(_events(4, START))
    real_replace = Path.replace
    calls = {"n": 0}

    class Killed(BaseException):
        """Stands for the process dying: nothing after it runs."""

    def dying_replace(src: Path, dst: Path) -> Path:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        return real_replace(src, dst)

    # Simulate a hard crash: no rollback may run, so disable the in-process one too.
    monkeypatch.setattr(Path, "replace", dying_replace)
    monkeypatch.setattr(EventLog, "_rollback", lambda self, journal: None)
    with pytest.raises(Killed):
        log.append(_events(12, START + dt.timedelta(days=5), prefix="new"))
    monkeypatch.undo()
    assert log.read().num_rows > 4  # the half-applied append is visible ...
    assert EventLog(log.directory).recover() == 1  # ... until recovery rolls it back
    assert log.read().num_rows == 4
    log.append(_events(2, START, prefix="later"))
    assert log.read().num_rows == 6


def test_existing_event_ids_finds_only_those_in_the_log(log: EventLog) -> None:
    log.append(_events(5, START))
    found = log.existing_event_ids(pa.array(["e1", "e4", "zzz"]))
    assert sorted(found.to_pylist()) == ["e1", "e4"]
