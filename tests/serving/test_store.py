from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from inboxlab.errors import ConflictError
from inboxlab.records import Action, DecisionRecord, EventKind, EventRecord
from inboxlab.settings import Settings
from serving.store import DecisionStore, RewardRule
from tests.serving.conftest import T0, decision


def event(
    kind: EventKind = EventKind.CLICK,
    *,
    decision_id: str | None = "d-1",
    recipient_id: str = "r-1",
    event_id: str | None = None,
    after: timedelta = timedelta(hours=1),
    machine: bool | None = None,
) -> EventRecord:
    return EventRecord(
        event_id=event_id,
        recipient_id=recipient_id,
        kind=kind,
        occurred_at=T0 + after,
        decision_id=decision_id,
        is_machine_open=machine,
    )


def totals(store: DecisionStore, experiment_id: str = "exp-1") -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for row in store.arm_statistics(experiment_id):
        s, n = out.get(row.variant_id, (0, 0))
        out[row.variant_id] = (s + row.successes, n + row.trials)
    return out


def test_decision_round_trips_with_its_features(store: DecisionStore) -> None:
    record = decision(segment="tier-1")
    store.record_decision(record, features={"opens_30d": 3, "tz": "Europe/Paris"})
    assert store.get_decision("d-1") == record
    assert store.decision_features("d-1") == {"opens_30d": 3, "tz": "Europe/Paris"}
    assert store.get_decision("missing") is None


def test_duplicate_decision_id_is_a_conflict(store: DecisionStore) -> None:
    store.record_decision(decision())
    with pytest.raises(ConflictError, match="d-1"):
        store.record_decision(decision())


def test_sent_bandit_decision_counts_one_trial(store: DecisionStore) -> None:
    store.record_decision(decision("d-1"))
    store.record_decision(decision("d-2", action=Action.SUPPRESS, variant_id=None))
    store.record_decision(decision("d-3", experiment_id=None, variant_id=None))
    assert totals(store) == {"a": (0, 1)}


def test_outcome_replayed_twice_counts_once(store: DecisionStore) -> None:
    store.record_decision(decision())
    first = store.record_outcomes([event()])
    again = store.record_outcomes([event(), event(after=timedelta(hours=2))])
    assert (first.stored, first.counted) == (1, 1)
    assert (again.stored, again.duplicates, again.counted) == (0, 2, 0)
    assert totals(store) == {"a": (1, 1)}


def test_event_id_replayed_counts_once(store: DecisionStore) -> None:
    summary = store.record_outcomes([event(EventKind.OPEN, decision_id=None, event_id="e-1")] * 3)
    assert (summary.stored, summary.duplicates) == (1, 2)


def test_machine_open_neither_counts_nor_blocks_the_human_open(store: DecisionStore) -> None:
    store.record_decision(decision())
    rule = {"exp-1": RewardRule(kind=EventKind.OPEN)}
    machine = store.record_outcomes([event(EventKind.OPEN, machine=True)], rules=rule)
    human = store.record_outcomes([event(EventKind.OPEN, machine=False)], rules=rule)
    assert (machine.stored, machine.counted) == (1, 0)
    assert (human.stored, human.counted) == (1, 1)


@pytest.mark.parametrize(
    ("outcome", "why"),
    [
        (event(after=timedelta(days=8)), "after the attribution window"),
        (event(after=timedelta(hours=-1)), "before the decision"),
        (event(recipient_id="r-2"), "from another recipient"),
        (event(EventKind.OPEN), "not the reward kind"),
        (event(decision_id="unknown"), "for an unknown decision"),
    ],
)
def test_outcome_not_credited(store: DecisionStore, outcome: EventRecord, why: str) -> None:
    store.record_decision(decision())
    summary = store.record_outcomes([outcome])
    assert (summary.stored, summary.counted) == (1, 0), why
    assert totals(store) == {"a": (0, 1)}


def _random_history(store: DecisionStore, rng: random.Random) -> RewardRule:
    rule = RewardRule(kind=EventKind.OPEN, attribution_window=timedelta(days=3))
    for i in range(60):
        store.record_decision(
            decision(
                f"d-{i}",
                recipient_id=f"r-{i % 7}",
                variant_id=rng.choice("abc"),
                decided_at=T0 + timedelta(hours=rng.randrange(0, 72)),
                segment=rng.choice([None, "tier-1"]),
                action=rng.choice([Action.SEND, Action.SEND, Action.HOLDOUT]),
            )
        )
    events = [
        event(
            rng.choice([EventKind.OPEN, EventKind.CLICK]),
            decision_id=f"d-{rng.randrange(60)}",
            recipient_id="r-0",
            after=timedelta(hours=rng.randrange(0, 150)),
            machine=rng.choice([None, True, False]),
        )
        for _ in range(120)
    ]
    # Only outcomes from the decision's own recipient count; make most of them match.
    events = [
        e.model_copy(update={"recipient_id": f"r-{int(e.decision_id[2:]) % 7}"})  # type: ignore[index]
        for e in events
    ]
    store.record_outcomes(events, rules={"exp-1": rule})
    return rule


def test_arm_statistics_match_a_recomputation_from_outcomes(store: DecisionStore) -> None:
    rule = _random_history(store, random.Random(3))
    assert store.arm_statistics("exp-1") == store.recompute_arm_statistics("exp-1", rule)
    assert sum(s.successes for s in store.arm_statistics("exp-1")) > 0


def test_erasure_removes_a_person_and_their_counts(store: DecisionStore) -> None:
    rule = _random_history(store, random.Random(5))
    before = sum(s.trials for s in store.arm_statistics("exp-1"))
    report = store.erase_recipient("r-0", actor="admin-key")
    assert report.decisions > 0 and report.outcomes > 0
    assert store.get_decision("d-0") is None
    assert sum(s.trials for s in store.arm_statistics("exp-1")) < before
    assert store.arm_statistics("exp-1") == store.recompute_arm_statistics("exp-1", rule)
    state = store.recipient_state("r-0", now=T0 + timedelta(days=1))
    assert state.send_times == () and state.engagement_times == ()
    (entry,) = store.audit_entries()
    assert (entry.actor, entry.action, entry.subject) == ("admin-key", "erase_recipient", "r-0")
    assert entry.details == {"decisions": report.decisions, "outcomes": report.outcomes}


def test_recipient_state_reflects_consent_and_recent_sends(store: DecisionStore) -> None:
    store.record_decision(decision("d-1"))
    store.record_decision(decision("d-2", decided_at=T0 - timedelta(days=40)))
    store.record_outcomes(
        [
            event(EventKind.OPEN, machine=True),
            event(EventKind.CLICK),
            event(EventKind.UNSUBSCRIBE, decision_id=None, event_id="u-1"),
            event(EventKind.SEND, decision_id=None, event_id="s-1", after=timedelta(hours=2)),
        ]
    )
    state = store.recipient_state("r-1", now=T0 + timedelta(hours=3))
    assert state.unsubscribed and not state.complained and not state.hard_bounced
    assert state.send_times == (T0, T0 + timedelta(hours=2))
    assert state.engagement_times == (T0 + timedelta(hours=1),)


def test_each_thread_reads_through_its_own_connection_and_sees_every_commit(
    store: DecisionStore,
) -> None:
    now = T0 + timedelta(hours=3)
    assert not store.recipient_state("r-1", now=now).unsubscribed  # opens this thread's
    store.record_outcomes([event(EventKind.UNSUBSCRIBE, decision_id=None, event_id="u-1")])
    assert store.recipient_state("r-1", now=now).unsubscribed  # committed through the pool
    seen: list[bool] = []
    other = threading.Thread(
        target=lambda: seen.append(store.recipient_state("r-1", now=now).unsubscribed)
    )
    other.start()
    other.join()
    assert seen == [True]
    if store.engine.dialect.name == "sqlite":
        assert len(store._connections._threads.by_thread()) == 2  # one per thread, kept open
    store.close()  # closes them; a later read opens a new one
    assert store.recipient_state("r-1", now=now).unsubscribed
    store.close()


def test_store_pings(store: DecisionStore) -> None:
    assert store.ping()


def test_unreachable_store_does_not_ping() -> None:
    assert not DecisionStore("postgresql+psycopg://nobody@127.0.0.1:1/none").ping()


def test_default_store_is_sqlite_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
    assert (tmp_path / "data" / "decisions.db").exists()


_KILLED_WRITER = """
import os, signal, sys
from datetime import datetime, UTC
from inboxlab.records import EventRecord
from serving.store import DecisionStore
store = DecisionStore(sys.argv[1])
store.create_schema()
event = EventRecord(event_id="e-1", recipient_id="r-1", kind="open",
                    occurred_at=datetime(2026, 3, 2, tzinfo=UTC))
store.record_outcomes([event])
print("acknowledged", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_acknowledged_outcome_survives_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL and "acknowledged" in done.stdout, done.stderr
    store = DecisionStore(url)
    summary = store.record_outcomes([event(EventKind.OPEN, decision_id=None, event_id="e-1")])
    store.close()
    assert summary.duplicates == 1


def test_a_bounce_followed_by_a_delivery_is_soft(store: DecisionStore) -> None:
    def bounce_then(*kinds: tuple[EventKind, int], recipient: str) -> bool:
        store.record_outcomes(
            [
                event(k, decision_id=None, recipient_id=recipient, event_id=f"{recipient}-{i}",
                      after=timedelta(hours=h))
                for i, (k, h) in enumerate(kinds)
            ]
        )  # fmt: skip
        return store.recipient_state(recipient, now=T0 + timedelta(days=1)).hard_bounced

    assert not bounce_then((EventKind.BOUNCE, 1), (EventKind.DELIVER, 3), recipient="soft")
    assert bounce_then((EventKind.DELIVER, 1), (EventKind.BOUNCE, 3), recipient="hard")
    assert bounce_then((EventKind.BOUNCE, 1), recipient="never")


def test_decisions_stored_in_bulk_count_like_one_by_one(store: DecisionStore) -> None:
    records = [
        (decision(f"b-{i}", recipient_id=f"r-{i}", variant_id="ab"[i % 2]), {"x": i})
        for i in range(10)
    ]
    assert store.record_decisions(records) == 10
    assert store.record_decisions([]) == 0
    assert totals(store) == {"a": (0, 5), "b": (0, 5)}
    assert store.arm_statistics("exp-1") == store.recompute_arm_statistics("exp-1", RewardRule())
    assert store.decision_features("b-3") == {"x": 3}
    with pytest.raises(ConflictError):
        store.record_decisions(records[:1])


def test_consent_only_states_equal_the_full_states_without_history(store: DecisionStore) -> None:
    # history=False (no frequency rule configured) must give the same consent flags as the
    # full read, recipient by recipient, and no send or engagement times.
    store.record_decision(decision("d-1"))
    store.record_outcomes(
        [
            event(EventKind.CLICK),
            event(EventKind.UNSUBSCRIBE, decision_id=None, event_id="u-1"),
            event(EventKind.COMPLAINT, decision_id=None, recipient_id="r-2", event_id="c-2"),
            event(EventKind.BOUNCE, decision_id=None, recipient_id="r-3", event_id="b-3"),
            event(EventKind.BOUNCE, decision_id=None, recipient_id="r-4", event_id="b-4"),
            event(EventKind.DELIVER, decision_id=None, recipient_id="r-4", event_id="v-4",
                  after=timedelta(hours=2)),
        ]
    )  # fmt: skip
    ids = ["r-1", "r-2", "r-3", "r-4", "r-never-seen"]
    now = T0 + timedelta(hours=3)
    full = store.recipient_states(ids, now=now)
    consent = store.recipient_states(ids, now=now, history=False)
    assert full["r-1"].send_times and full["r-1"].engagement_times  # the full read has history
    for rid in ids:
        flags = (full[rid].unsubscribed, full[rid].complained, full[rid].hard_bounced)
        got = consent[rid]
        assert (got.unsubscribed, got.complained, got.hard_bounced) == flags, rid
        assert got.send_times == () and got.engagement_times == (), rid
    assert [rid for rid in ids if consent[rid].hard_bounced] == ["r-3"]


def test_stored_features_read_back_as_written(store: DecisionStore) -> None:
    features: dict[str, Any] = {
        "open_rate_90d": 0.1 + 0.2,  # not exactly representable: must round-trip exactly
        "timezone": "America/São_Paulo",
        "sends_90d": 3,
        "is_unsubscribed": False,
        "missing": None,
    }
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's json type has no NaN
        features["days_since_open"] = float("nan")
    store.record_decisions([(decision("d-f"), features)])
    got = store.decision_features("d-f")
    assert got is not None and got.keys() == features.keys()
    if "days_since_open" in features:
        assert np.isnan(got.pop("days_since_open"))
    assert got == {k: v for k, v in features.items() if k != "days_since_open"}
    assert type(got["sends_90d"]) is int and type(got["is_unsubscribed"]) is bool


def test_layouts_are_offered_once_and_again_after_a_rollback_or_a_new_schema(
    store: DecisionStore,
) -> None:
    first, second = {"a": 1, "b": 2.5}, {"c": "x"}
    store.record_decisions([(decision("d-1"), first)])
    offered: list[tuple[str, ...]] = []
    known = store._new_layouts

    def spy(layouts: Any) -> Any:
        new = known(layouts)
        offered.append(tuple(x.layout_id for x in new))
        return new

    store._new_layouts = spy  # type: ignore[method-assign]
    store.record_decisions([(decision("d-2"), first)])
    assert offered == [()]  # stored with d-1: not offered again
    with pytest.raises(ConflictError):  # rolled back with its new layout
        store.record_decisions([(decision("d-3"), second), (decision("d-1"), second)])
    store.record_decisions([(decision("d-4"), second)])
    assert len(offered[-1]) == 1  # offered again, as the rollback undid it
    assert store.decision_features("d-4") == second
    store.drop_schema()
    store.create_schema()
    store.record_decisions([(decision("d-5"), first)])
    assert store.decision_features("d-5") == first  # the new schema got the layout


def test_numpy_scalars_in_features_are_stored_as_plain_values(store: DecisionStore) -> None:
    # Feature rows may carry NumPy scalars; both write paths store their Python values.
    features = {"sends_90d": np.int64(4), "rate": np.float32(0.25), "flag": np.bool_(True)}
    store.record_decision(decision("d-one"), features=features)
    store.record_decisions([(decision("d-many"), features)])
    for decision_id in ("d-one", "d-many"):
        got = store.decision_features(decision_id)
        assert got == {"sends_90d": 4, "rate": 0.25, "flag": True}
        assert got is not None and type(got["sends_90d"]) is int and type(got["flag"]) is bool
    with pytest.raises(Exception, match=r"object is not JSON serializable"):
        store.record_decisions([(decision("d-bad"), {"x": object()})])


def _json_spaced(row: Any) -> tuple[Any, ...]:
    # JSON text as json.dumps spaces it (the Core layer's; the fast paths write it compact).
    def norm(value: Any) -> Any:
        if isinstance(value, str) and value[:1] in ("[", "{"):
            return json.dumps(json.loads(value))
        return value

    return tuple(norm(v) for v in row)


def test_sqlite_fast_rows_store_what_the_core_layer_stores(tmp_path: Path) -> None:
    """The render path's SQLite writer builds its rows without SQLAlchemy: every stored
    value equals what a Core insert of the same decisions stores (times as the same text,
    JSON as the same values, compact)."""
    from datetime import datetime, timezone

    from serving.store.decisions import (
        _DECISION_COLUMNS,
        _SQLITE_ROW_ORDER,
        _decision_row,
        core_insert_decisions,
    )
    from serving.store.stats import counts_as_trial, stat_key

    assert _SQLITE_ROW_ORDER == _DECISION_COLUMNS
    east = timezone(timedelta(hours=5, minutes=30))
    records = [
        (decision("d-1", segment="engaged"), {"x": np.int64(3), "y": float("nan"), "z": "UTC"}),
        (
            DecisionRecord.model_validate(
                decision(
                    "d-2", decided_at=datetime(2026, 3, 29, 1, 30, 0, 7, tzinfo=east)
                ).model_dump()
                | {"send_at": datetime(2026, 3, 29, 9, tzinfo=east), "send_time_propensity": 1}
            ),
            None,
        ),
        (decision("d-3", action=Action.SUPPRESS, variant_id=None), {}),
        (decision("d-4", experiment_id=None, variant_id="x"), {"x": 1.5}),
    ]
    fast = DecisionStore(f"sqlite:///{tmp_path / 'fast.db'}")
    core = DecisionStore(f"sqlite:///{tmp_path / 'core.db'}")
    try:
        fast.create_schema()
        core.create_schema()
        assert fast.record_decisions(records) == 4
        made = [_decision_row(r, f) for r, f in records]
        rows = [row for row, _ in made]
        trials = Counter(stat_key(row) for row in rows if counts_as_trial(row))
        core_insert_decisions(core.engine, rows, trials, [layout for _, layout in made])
        for table, order in (
            ("decisions", "decision_id"),
            ("arm_stats", "experiment_id, variant_id, segment, day"),
            ("feature_layouts", "layout_id"),
        ):
            query = text(f"SELECT * FROM {table} ORDER BY {order}")
            with fast.engine.connect() as a, core.engine.connect() as b:
                got, want = a.execute(query).all(), b.execute(query).all()
            assert [_json_spaced(r) for r in got] == [_json_spaced(r) for r in want], table
            assert want, table
    finally:
        fast.close()
        core.close()
