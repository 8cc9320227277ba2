from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from features.online import (
    VIEW_OF_FEATURE,
    FeatureRow,
    InMemoryFeatureClient,
    SqliteFeatureClient,
    with_defaults,
)
from features.online_redis import RedisFeatureClient
from features.store import online_db_path
from inboxlab.records import Action
from inboxlab.settings import DecisionSettings, Settings, StoreSettings
from serving.budget import BudgetExceededError, ReadGuard
from serving.decide import DecisionEngine
from serving.schemas import DecisionRequest
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from tests.conftest import redis_paused

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
BUDGET_MS = 1000.0  # generous: a loaded CI machine must still meet it with the fast reads
SLOW_S = 6.0  # far beyond the budget: a read this slow always misses it


class SlowFeatures(InMemoryFeatureClient):
    """A feature client that answers, correctly, ``seconds`` late."""

    def __init__(self, seconds: float = SLOW_S) -> None:
        super().__init__({"r-1": {"timezone": "Asia/Tokyo"}})
        self.seconds = seconds

    def get_many(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        time.sleep(self.seconds)
        return super().get_many(recipient_ids)


class SlowStore(DecisionStore):
    """A real decision store whose recipient reads take ``SLOW_S`` seconds (asleep, not in
    SQLite: only the thread pool can bound them)."""

    interruptible = False

    def recipient_states(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW_S)
        return super().recipient_states(*args, **kwargs)


@pytest.fixture
def slow_store(settings: Settings) -> Iterator[DecisionStore]:
    s = SlowStore(settings.decision_store_url)
    s.create_schema()
    yield s
    s.close()


def engine(
    settings: Settings, store: DecisionStore, models: ModelSet, features: Any
) -> DecisionEngine:
    s = settings.model_copy(update={"decisions": DecisionSettings(budget_ms=BUDGET_MS)})
    return DecisionEngine(
        s, store, ExperimentStore(store.engine), features, models, np.random.default_rng(0)
    )


def request() -> DecisionRequest:
    return DecisionRequest(recipient_id="r-1", campaign_id="c1", now=NOW)


def timed(eng: DecisionEngine) -> tuple[Any, float]:
    started = time.perf_counter()
    out = eng.decide(request())
    return out, time.perf_counter() - started


def test_slow_features_fall_back_to_defaults_within_the_budget(
    settings: Settings, models: ModelSet
) -> None:
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    eng = engine(settings, store, models, SlowFeatures())
    out, seconds = timed(eng)
    assert seconds < SLOW_S / 2
    assert out.action is Action.SEND
    assert "features_timeout" in out.reasons
    assert out.scores.p_open is not None  # scored on cold-start defaults
    stored = store.get_decision(out.decision_id)
    assert stored is not None and "features_timeout" in stored.reasons
    eng.close()
    store.close()


def suppressed_within_the_budget(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> DecisionEngine:
    """An engine with a budget over ``store``, after checking that its decision comes back
    suppressed, in time, because the recipient's state did not."""
    features = InMemoryFeatureClient({"r-1": {"timezone": "Asia/Tokyo"}})
    eng = engine(settings, store, models, features)
    out, seconds = timed(eng)
    assert seconds < SLOW_S / 2
    assert out.action is Action.SUPPRESS
    assert out.reasons == ["recipient_state_unavailable"]
    return eng


def test_a_slow_decision_store_suppresses_within_the_budget(
    settings: Settings, slow_store: DecisionStore, models: ModelSet
) -> None:
    suppressed_within_the_budget(settings, slow_store, models).close()


def test_without_a_budget_reads_run_inline_and_wait(settings: Settings, models: ModelSet) -> None:
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    eng = DecisionEngine(
        settings.model_copy(update={"decisions": DecisionSettings(budget_ms=0)}),
        store,
        ExperimentStore(store.engine),
        SlowFeatures(0.3),
        models,
        np.random.default_rng(0),
    )
    out, seconds = timed(eng)
    assert seconds >= 0.3
    assert "features_timeout" not in out.reasons
    eng.close()
    store.close()


def test_guard_reraises_what_the_read_raised() -> None:
    for budget in (0.0, 50.0):
        guard = ReadGuard(budget)

        def fail() -> None:
            raise OSError("store down")

        with pytest.raises(OSError, match="store down"):
            guard.result(guard.start(fail), guard.deadline())
        guard.close()


def test_guard_times_out_and_refuses_negative_budgets() -> None:
    guard = ReadGuard(10)
    with pytest.raises(BudgetExceededError, match="10 ms budget"):
        guard.result(guard.start(lambda: time.sleep(0.5)), guard.deadline())
    guard.close()
    with pytest.raises(ValueError, match="budget_ms must be >= 0, got -1"):
        ReadGuard(-1)


ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


class EndlessSqliteStore(DecisionStore):
    """A real SQLite decision store whose recipient read first runs a statement that never
    ends on its own, on the store's connection; records the threads it ran on."""

    threads: list[int]

    def _recipient_rows(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        with self._connections.connection(self.engine) as raw:
            raw.execute(ENDLESS).fetchone()
        return super()._recipient_rows(*args, **kwargs)


def test_a_sqlite_read_stops_at_the_deadline_on_the_callers_thread(
    settings: Settings, models: ModelSet
) -> None:
    store = EndlessSqliteStore(settings.decision_store_url)
    store.threads = []
    store.create_schema()
    assert store.interruptible  # a SQLite file: no thread hand-off
    eng = suppressed_within_the_budget(settings, store, models)
    assert store.threads == [threading.get_ident()]
    # The connection is fine afterwards: the next read runs to its end.
    assert DecisionStore._recipient_rows(store, ["r-1"], NOW) == []
    eng.close()
    store.close()


def test_an_interrupted_read_that_fails_before_the_deadline_is_its_own_error() -> None:
    guard = ReadGuard(10_000)

    def fail() -> None:
        raise OSError("store down")

    deadline = guard.deadline()
    with pytest.raises(OSError, match="store down"):
        guard.result(guard.start(fail, deadline, interruptible=True), deadline)
    guard.close()


class EndlessOnlineStore(SqliteFeatureClient):
    """A real SQLite online-store client whose reads first run a statement that never ends
    on its own, on the connection they read on; records the threads they ran on. Recipient
    reads endless with ``recipients``, else defaults; variant reads endless with
    ``variants``."""

    threads: list[int]
    recipients = True
    variants = False

    def _load_rows(self, recipient_ids: Sequence[str]) -> Any:
        self.threads.append(threading.get_ident())
        if self.recipients:
            self._reader().execute(ENDLESS).fetchone()
        return {rid: with_defaults(None, VIEW_OF_FEATURE) for rid in recipient_ids}

    def _load_variant_rows(self, pairs: Sequence[tuple[str, str]]) -> Any:
        self.threads.append(threading.get_ident())
        if self.variants:
            self._reader().execute(ENDLESS).fetchone()
        return super()._load_variant_rows(pairs)


@pytest.fixture
def endless_features(settings: Settings) -> Iterator[EndlessOnlineStore]:
    path = online_db_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(path).close()  # an empty store: the reads below never get to its tables
    client = EndlessOnlineStore(settings)
    client.threads = []
    yield client
    client.close()


def test_an_online_store_read_stops_at_the_deadline_on_the_callers_thread(
    settings: Settings, models: ModelSet, endless_features: EndlessOnlineStore
) -> None:
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    eng = engine(settings, store, models, endless_features)
    out, seconds = timed(eng)
    assert seconds < SLOW_S / 2
    assert out.action is Action.SEND
    assert out.reasons == ["features_timeout"]
    assert out.scores.p_open is not None  # scored on cold-start defaults
    assert set(endless_features.threads) == {threading.get_ident()}  # no thread hand-off
    # The client works afterwards: the next read runs to its end.
    endless_features.recipients = False
    assert endless_features.get("r-2")["timezone"] == "UTC"
    eng.close()
    store.close()


def test_the_variant_read_is_bounded_by_the_same_budget(
    settings: Settings, models: ModelSet, endless_features: EndlessOnlineStore
) -> None:
    endless_features.recipients, endless_features.variants = False, True
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    eng = engine(settings, store, models, endless_features)
    started = time.perf_counter()
    out = eng.decide(
        DecisionRequest(recipient_id="r-1", campaign_id="c1", now=NOW, variants=["v0", "v1"])
    )
    assert time.perf_counter() - started < SLOW_S / 2
    assert out.action is Action.SEND and out.variant_id == "v0"
    assert out.reasons == ["features_timeout"]
    assert out.scores.p_click is not None  # on the per-variant defaults
    assert set(endless_features.threads) == {threading.get_ident()}
    eng.close()
    store.close()


class RecordingRedis(RedisFeatureClient):
    """A real Redis online-store client that records the threads its reads ran on."""

    threads: list[int]

    def _load(self, recipient_ids: Sequence[str]) -> Any:
        self.threads.append(threading.get_ident())
        return super()._load(recipient_ids)


@pytest.mark.redis
def test_a_redis_that_stops_answering_falls_back_at_the_deadline_on_the_callers_thread(
    settings: Settings, models: ModelSet, redis_url: str
) -> None:
    on_redis = settings.model_copy(
        update={"stores": StoreSettings(online="redis", redis_url=redis_url)}
    )
    # A project nothing was materialized under: every row is the cold-start default.
    features = RecordingRedis(
        on_redis, project=f"t{uuid.uuid4().hex[:12]}", max_staleness=timedelta(0)
    )
    features.threads = []
    assert features.interruptible  # no thread hand-off under a budget
    store = DecisionStore(settings.decision_store_url)
    store.create_schema()
    eng = engine(settings, store, models, features)
    assert eng.decide(request()).reasons == []  # a pooled connection, open and answered
    with redis_paused(redis_url, SLOW_S):
        out, seconds = timed(eng)
    assert seconds < SLOW_S / 2  # the budget, long before Redis answers
    assert out.action is Action.SEND
    assert out.reasons == ["features_timeout"]
    assert set(features.threads) == {threading.get_ident()}
    assert eng.decide(request()).reasons == []  # Redis answers again: so does the client
    eng.close()
    store.close()
    features.close()
