from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inboxlab.records import Action, DecisionRecord
from inboxlab.settings import Settings
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from tests.serving.models import planted_models

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def models() -> ModelSet:
    """The planted champions of :mod:`tests.serving.models`, loaded once per module."""
    return planted_models(Settings())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionStore]:
    """An empty decision store on SQLite, and on PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        sqlite_store = DecisionStore(f"sqlite:///{tmp_path / 'decisions.db'}")
        sqlite_store.create_schema()
        yield sqlite_store
        sqlite_store.close()
        return
    url = request.getfixturevalue("postgres_url")
    pg_store = DecisionStore(url, schema=f"inboxlab_test_{uuid.uuid4().hex[:12]}")
    pg_store.create_schema()
    try:
        yield pg_store
    finally:
        pg_store.drop_schema()
        pg_store.close()


@pytest.fixture
def sqlite_store(settings: Settings) -> Iterator[DecisionStore]:
    """An empty decision store on SQLite only, in the data directory of ``settings``: for
    modules whose tests exercise the engine rather than the database."""
    s = DecisionStore(settings.decision_store_url)
    s.create_schema()
    yield s
    s.close()


def decision(
    decision_id: str = "d-1",
    *,
    recipient_id: str = "r-1",
    experiment_id: str | None = "exp-1",
    variant_id: str | None = "a",
    action: Action = Action.SEND,
    decided_at: datetime = T0,
    segment: str | None = None,
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=decision_id,
        recipient_id=recipient_id,
        campaign_id="camp-1",
        experiment_id=experiment_id,
        decided_at=decided_at,
        action=action,
        reasons=() if action == Action.SEND else ("unsubscribed",),
        variant_id=variant_id,
        variant_propensity=0.5 if variant_id else None,
        scores={"p_open": 0.3},
        model_versions={"engagement": "3"},
        segment=segment,
        policy="bandit" if experiment_id else "none",
    )
