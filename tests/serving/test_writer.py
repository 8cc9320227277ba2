from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from inboxlab.records import Action
from serving.store import DecisionStore
from serving.store.writer import DecisionWriter
from tests.serving.conftest import T0, decision


class GatedStore:
    """A real store whose writes wait for a gate, to look at the queue mid-flight."""

    def __init__(self, store: DecisionStore) -> None:
        self.store = store
        self.gate = threading.Event()
        self.batches: list[int] = []

    def record_decisions(self, items: Any) -> int:
        self.gate.wait(10)
        items = list(items)
        self.batches.append(len(items))
        return self.store.record_decisions(items)


def test_submitted_decisions_are_committed_and_counted(store: DecisionStore) -> None:
    writer = DecisionWriter(store)
    writer.submit([(decision(f"d-{i}", recipient_id=f"r-{i % 3}"), {"x": i}) for i in range(50)])
    writer.flush(timeout=10)
    assert writer.queued == 0
    assert store.get_decision("d-49") is not None
    assert store.decision_features("d-7") == {"x": 7}
    (stat,) = store.arm_statistics("exp-1")
    assert stat.trials == 50
    writer.close()


def test_queued_sends_count_for_eligibility_until_committed(store: DecisionStore) -> None:
    gated = GatedStore(store)
    writer = DecisionWriter(gated)  # type: ignore[arg-type]
    writer.submit([(decision("d-1", decided_at=T0), None)])
    writer.submit([(decision("d-2", action=Action.SUPPRESS, decided_at=T0), None)])
    pending = writer.pending_sends(["r-1", "r-2"])
    assert pending == {"r-1": {"d-1": T0}}  # suppressions are not sends
    now = T0 + timedelta(hours=1)
    assert store.recipient_state("r-1", now=now).send_times == ()
    state = store.recipient_states(["r-1"], now=now, pending=pending)["r-1"]
    assert state.send_times == (T0,)
    gated.gate.set()
    writer.flush(timeout=10)
    assert writer.pending_sends(["r-1"]) == {}
    # committed meanwhile and still pending in the caller's snapshot: counted once
    state = store.recipient_states(["r-1"], now=now, pending=pending)["r-1"]
    assert state.send_times == (T0,)
    writer.close()


def test_batches_group_what_queued_during_a_commit(store: DecisionStore) -> None:
    gated = GatedStore(store)
    writer = DecisionWriter(gated, max_batch=100)  # type: ignore[arg-type]
    for i in range(30):
        writer.submit([(decision(f"d-{i}"), None)])
    gated.gate.set()
    writer.flush(timeout=10)
    assert sum(gated.batches) == 30
    assert len(gated.batches) <= 2  # the first alone at most, then the rest together
    writer.close()


def test_decisions_arriving_within_the_linger_share_one_commit(store: DecisionStore) -> None:
    gated = GatedStore(store)
    gated.gate.set()
    writer = DecisionWriter(gated, linger=0.5)  # type: ignore[arg-type]
    for i in range(5):  # well within half a second of the first
        writer.submit([(decision(f"d-{i}"), None)])
    writer.flush(timeout=10)
    assert gated.batches == [5]
    eager = GatedStore(store)
    eager.gate.set()
    at_once = DecisionWriter(eager, linger=0)  # type: ignore[arg-type]
    at_once.submit([(decision("d-5"), None)])
    at_once.flush(timeout=10)
    assert eager.batches == [1]
    writer.close()
    at_once.close()


def test_a_full_batch_is_written_without_lingering(store: DecisionStore) -> None:
    gated = GatedStore(store)
    gated.gate.set()
    writer = DecisionWriter(gated, max_batch=3, linger=60)  # type: ignore[arg-type]
    writer.submit([(decision(f"d-{i}"), None) for i in range(3)])
    writer.flush(timeout=10)  # a minute's linger would time this out
    assert gated.batches == [3]
    writer.close()


def test_a_bad_row_does_not_take_its_batch_with_it(
    store: DecisionStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.record_decision(decision("dup"))
    gated = GatedStore(store)
    writer = DecisionWriter(gated)  # type: ignore[arg-type]
    writer.submit([(decision("ok-1"), None), (decision("dup"), None), (decision("ok-2"), None)])
    gated.gate.set()
    writer.flush(timeout=10)
    assert store.get_decision("ok-1") is not None
    assert store.get_decision("ok-2") is not None
    assert "decision dup not stored" in caplog.text
    writer.close()


def test_close_commits_everything_queued(store: DecisionStore) -> None:
    gated = GatedStore(store)
    writer = DecisionWriter(gated)  # type: ignore[arg-type]
    writer.submit([(decision(f"d-{i}"), None) for i in range(5)])
    threading.Timer(0.05, gated.gate.set).start()
    writer.close()
    assert all(store.get_decision(f"d-{i}") is not None for i in range(5))
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit([(decision("late"), None)])


def test_flush_times_out_naming_what_is_queued(store: DecisionStore) -> None:
    gated = GatedStore(store)
    writer = DecisionWriter(gated)  # type: ignore[arg-type]
    writer.submit([(decision("d-1"), None)])
    with pytest.raises(TimeoutError, match="1 decisions still queued"):
        writer.flush(timeout=0.05)
    gated.gate.set()
    writer.close()


def test_bounds_are_checked(store: DecisionStore) -> None:
    with pytest.raises(ValueError, match="max_batch=0"):
        DecisionWriter(store, max_batch=0)
