from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from inboxlab.errors import ConflictError
from inboxlab.records import Action, DecisionRecord, EventKind, EventRecord
from serving.store import DecisionStore, bulk
from serving.store import engine as engine_module
from serving.store.bulk import DecisionColumns, insert_decisions
from serving.store.feature_codec import encode_features
from serving.store.stats import counts_as_trial, stat_key
from tests.serving.conftest import T0, decision

FEATURES = {"opens_7d": 3, "timezone": "Asia/Tokyo", "open_rate_30d": 0.123456789012345}


def columns_of(records: list[DecisionRecord], features: dict[str, Any]) -> DecisionColumns:
    """The bulk columns of ``records``, encoded with the standard library for contrast (the
    features as the batch path encodes them)."""
    text, layout = encode_features(features)
    return DecisionColumns(
        decision_id=[r.decision_id for r in records],
        recipient_id=[r.recipient_id for r in records],
        campaign_id=[r.campaign_id for r in records],
        experiment_id=[r.experiment_id for r in records],
        decided_at=[r.decided_at for r in records],
        action=[r.action.value for r in records],
        reasons=[json.dumps(list(r.reasons)) for r in records],
        variant_id=[r.variant_id for r in records],
        variant_propensity=[r.variant_propensity for r in records],
        send_at=[r.send_at for r in records],
        send_time_propensity=[r.send_time_propensity for r in records],
        scores=[json.dumps(r.scores) for r in records],
        model_versions=[json.dumps(r.model_versions) for r in records],
        features=[text for _ in records],
        segment=[r.segment for r in records],
        policy=[r.policy for r in records],
        layouts=(layout,) if layout is not None else (),
    )


def sample(prefix: str) -> list[DecisionRecord]:
    return [
        decision(f"{prefix}-1", segment="engaged").model_copy(
            update={"send_at": T0 + timedelta(hours=3), "send_time_propensity": 0.95}
        ),
        decision(f"{prefix}-2", recipient_id="r-2", action=Action.SUPPRESS, variant_id=None),
        decision(f"{prefix}-3", experiment_id=None, variant_id="x"),
    ]


def test_bulk_rows_read_back_as_record_decisions_writes_them(store: DecisionStore) -> None:
    core, bulk = sample("core"), sample("bulk")
    store.record_decisions([(r, FEATURES) for r in core])
    trials = Counter(
        stat_key({**r.model_dump(mode="json"), "decided_at": r.decided_at})
        for r in bulk
        if counts_as_trial(r.model_dump(mode="json"))
    )
    assert insert_decisions(store.engine, columns_of(bulk, FEATURES), trials) == 3
    for one, other in zip(core, bulk, strict=True):
        a, b = store.get_decision(one.decision_id), store.get_decision(other.decision_id)
        assert a is not None and b is not None
        assert b.model_dump(exclude={"decision_id"}) == a.model_dump(exclude={"decision_id"})
        assert store.decision_features(other.decision_id) == FEATURES
    # the bandit trial of each path was counted on the same arm, segment and day
    (stat,) = store.arm_statistics("exp-1")
    assert (stat.variant_id, stat.segment, stat.trials) == ("a", "engaged", 2)


def test_bulk_insert_of_a_stored_id_writes_nothing(store: DecisionStore) -> None:
    insert_decisions(store.engine, columns_of(sample("x")[:1], FEATURES), Counter())
    again = columns_of([*sample("y")[1:], *sample("x")[:1]], FEATURES)
    with pytest.raises(ConflictError):
        insert_decisions(store.engine, again, Counter())
    assert store.get_decision("y-2") is None


def test_consent_flags_equal_the_recipient_state_ones(store: DecisionStore) -> None:
    def event(rid: str, kind: EventKind, hours: int) -> EventRecord:
        return EventRecord(recipient_id=rid, kind=kind, occurred_at=T0 + timedelta(hours=hours))

    store.record_outcomes(
        [
            event("r-unsub", EventKind.UNSUBSCRIBE, 1),
            event("r-complaint", EventKind.COMPLAINT, 1),
            event("r-bounced", EventKind.DELIVER, 1),
            event("r-bounced", EventKind.BOUNCE, 2),
            event("r-recovered", EventKind.BOUNCE, 1),
            event("r-recovered", EventKind.DELIVER, 2),
            event("r-open", EventKind.OPEN, 1),
        ]
    )
    ids = ["r-unsub", "r-complaint", "r-bounced", "r-recovered", "r-open", "r-unknown"]
    full = store.recipient_states(ids, now=T0 + timedelta(days=1))
    flags = store.recipient_states(ids, now=T0 + timedelta(days=1), history=False)
    for rid in ids:
        a, b = full[rid], flags[rid]
        assert (b.unsubscribed, b.complained, b.hard_bounced) == (
            a.unsubscribed,
            a.complained,
            a.hard_bounced,
        ), rid
    assert flags["r-bounced"].hard_bounced and not flags["r-recovered"].hard_bounced


def test_a_chunk_waits_for_another_process_holding_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process's writer holds the lock past the busy timeout (shortened here): the
    # chunk is written again once the lock is free, not lost with its call's stream.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "decisions.db"
    store = DecisionStore(f"sqlite:///{path}")
    store.create_schema()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.4, other.execute, args=("COMMIT",))
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="serving.store.bulk"):
            assert insert_decisions(store.engine, columns_of(sample("w"), FEATURES), Counter()) == 3
    finally:
        timer.join()
        other.close()
    assert "locked by another writer" in caplog.text
    assert store.decision_features("w-1") == FEATURES
    # past the wait, the error is the caller's
    monkeypatch.setattr(bulk, "BULK_LOCK_WAIT_S", 0.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            insert_decisions(store.engine, columns_of(sample("z"), FEATURES), Counter())
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.get_decision("z-1") is None
    store.close()


def test_bulk_writers_of_other_processes_take_turns_on_a_lock_file(tmp_path: Path) -> None:
    # Another process's bulk writer holds its turn (an flock beside the database): this one
    # waits for the turn, not for SQLite's busy handler, and writes once it is free.
    path = tmp_path / "decisions.db"
    store = DecisionStore(f"sqlite:///{path}")
    store.create_schema()
    with (tmp_path / "decisions.db-bulk.lock").open("a+b") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        release = threading.Timer(0.3, fcntl.flock, args=(turn, fcntl.LOCK_UN))
        started = time.monotonic()
        release.start()
        assert insert_decisions(store.engine, columns_of(sample("t"), FEATURES), Counter()) == 3
        waited = time.monotonic() - started
        release.join()
    assert waited >= 0.25
    assert store.decision_features("t-1") == FEATURES
    store.close()
