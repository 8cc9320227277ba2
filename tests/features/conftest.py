"""Small synthetic event logs for the feature-store tests."""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.events.schema import EVENT_SCHEMA
from inboxlab.settings import Settings, StoreSettings
from tests.conftest import REDIS_URL, need, port_open

Row = dict[str, object]
START = datetime(2026, 3, 1, tzinfo=UTC)


def write_events(settings: Settings, rows: Sequence[Row]) -> None:
    """Write ``rows`` into the event log layout, one file per day and call."""
    table = pa.Table.from_pylist(list(rows), schema=EVENT_SCHEMA)
    days = sorted({r["occurred_at"].date() for r in rows})  # type: ignore[attr-defined]
    for day in days:
        part = [r for r in rows if r["occurred_at"].date() == day]  # type: ignore[attr-defined]
        directory = settings.events_dir / f"date={day.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        n = len(list(directory.glob("*.parquet")))
        pq.write_table(
            pa.Table.from_pylist(part, schema=EVENT_SCHEMA), directory / f"part-{n}.parquet"
        )
    del table


def event(recipient: str, kind: str, at: datetime, **extra: object) -> Row:
    """One event row with the optional columns defaulted."""
    row: Row = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(recipient_id=recipient, kind=kind, occurred_at=at, **extra)
    return row


def random_log(n_recipients: int, days: int, seed: int) -> list[Row]:
    """A plausible log: sends, deliveries, some opens (some machine), clicks, conversions."""
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    for d in range(days):
        for r in range(n_recipients):
            if rng.random() > 0.5:
                continue
            rid = f"r{r:03d}"
            camp = f"c{d}"
            sent = START + timedelta(days=d, hours=int(rng.integers(0, 24)))
            rows.append(event(rid, "send", sent, campaign_id=camp))
            if rng.random() < 0.05:
                rows.append(event(rid, "bounce", sent + timedelta(seconds=5), campaign_id=camp))
                continue
            delivered = sent + timedelta(seconds=30)
            rows.append(event(rid, "deliver", delivered, campaign_id=camp))
            u = rng.random()
            if u < 0.15:
                rows.append(event(rid, "open", delivered + timedelta(seconds=40), campaign_id=camp))
            elif u < 0.2:
                rows.append(
                    event(
                        rid, "open", delivered + timedelta(hours=3), campaign_id=camp,
                        is_machine_open=True,
                    )
                )  # fmt: skip
            elif u < 0.5:
                opened = delivered + timedelta(minutes=int(rng.integers(5, 600)))
                rows.append(event(rid, "open", opened, campaign_id=camp))
                if rng.random() < 0.3:
                    rows.append(event(rid, "click", opened + timedelta(minutes=1)))
                    if rng.random() < 0.3:
                        at = opened + timedelta(minutes=5)
                        rows.append(event(rid, "convert", at, value=float(rng.integers(5, 90))))
            if rng.random() < 0.003:
                rows.append(event(rid, "unsubscribe", delivered + timedelta(hours=1)))
    return rows


def with_variants(rows: Sequence[Row], variants: int = 3) -> list[Row]:
    """``rows`` with a variant on every send (by recipient and day, no randomness), and the
    campaign of the preceding open on clicks and conversions that have none, so the
    per-variant features attribute them."""
    out: list[Row] = []
    last_campaign: dict[object, object] = {}
    for row in rows:
        row = dict(row)
        rid = row["recipient_id"]
        if row["kind"] == "send":
            at: datetime = row["occurred_at"]  # type: ignore[assignment]
            row["variant_id"] = f"v{(int(str(rid)[1:]) + at.day) % variants}"
        elif row["kind"] == "open":
            last_campaign[rid] = row["campaign_id"]
        elif row["kind"] in ("click", "convert") and row["campaign_id"] is None:
            row["campaign_id"] = last_campaign.get(rid)
        out.append(row)
    return out


def write_recipients(settings: Settings, zones: dict[str, str]) -> None:
    """The recipients table with the given time zones."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "recipient_id": list(zones),
                "timezone": list(zones.values()),
                "created_at": pa.array([START] * len(zones), pa.timestamp("us", tz="UTC")),
            }
        ),
        settings.data_dir / "recipients.parquet",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with every runtime path under ``tmp_path``."""
    return Settings(data_dir=tmp_path)


@pytest.fixture
def small_log(settings: Settings) -> Callable[[], list[Row]]:
    """Writes a 40-recipient, 20-day log with mixed time zones; returns its rows."""

    def make() -> list[Row]:
        rows = random_log(40, 20, seed=3)
        write_events(settings, rows)
        zones = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Not/AZone"]
        write_recipients(settings, {f"r{i:03d}": zones[i % 4] for i in range(30)})
        return rows

    return make


#: Third-party warnings raised inside Feast 0.67 (by name only), for modules that call it.
FEAST_WARNINGS = [
    pytest.mark.filterwarnings("ignore:On demand feature view:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning"),
]


@pytest.fixture(scope="session")
def built_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[Row]]:
    """A small log with its feature tables built and materialized into SQLite (shared)."""
    from features.engineering.build import build_features
    from features.store import materialize

    settings = Settings(data_dir=tmp_path_factory.mktemp("world"))
    rows = with_variants(random_log(40, 20, seed=5))
    write_events(settings, rows)
    write_recipients(settings, {f"r{i:03d}": "Europe/Paris" for i in range(40)})
    build_features(settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "On demand feature view", RuntimeWarning)
        warnings.filterwarnings("ignore", "Downcasting object dtype arrays", FutureWarning)
        materialize(settings)
    return settings, rows


@pytest.fixture(scope="module")
def redis_world(
    built_world: tuple[Settings, list[Row]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """A copy of the shared world materialized into the local Redis under its own project.

    A copy: Feast's teardown deletes the registry, which the shared world's other tests use.
    """
    from features.store import feature_store, materialize

    need("redis", port_open("127.0.0.1", 6379), "nothing answers at 127.0.0.1:6379")
    settings, _ = built_world
    copy = tmp_path_factory.mktemp("redis-world") / "data"
    shutil.copytree(settings.data_dir, copy, ignore=shutil.ignore_patterns("feast"))
    redis = Settings(data_dir=copy, stores=StoreSettings(online="redis", redis_url=REDIS_URL))
    project = f"t{uuid.uuid4().hex[:12]}"  # keys of parallel runs never collide
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "On demand feature view", RuntimeWarning)
        warnings.filterwarnings("ignore", "Downcasting object dtype arrays", FutureWarning)
        materialize(redis, project=project)
    try:
        yield redis, project
    finally:
        feature_store(redis, project=project).teardown()


@pytest.fixture
def twin(tmp_path: Path) -> tuple[Settings, Settings]:
    """Two data directories with the same first snapshot day of tables with nulls and edge
    values: one materialized with the bulk write, one with Feast's own write."""
    from tests.features.materialize_data import twin_dirs

    return twin_dirs(tmp_path)


def engagement_frame(ids: Sequence[str]) -> pd.DataFrame:
    """New rows of every engagement feature for ``ids``, stamped now, for a Feast write:
    each value distinct (100 + the id's position + the feature's position / 8, in its type)."""
    from features.engineering.tables import ENGAGEMENT_FEATURES, feature_type

    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {
            "recipient_id": list(ids),
            "event_timestamp": [now] * len(ids),
            "created_at": [now] * len(ids),
            **{
                name: [feature_type(name)(100 + i + k / 8) for i in range(len(ids))]
                for k, name in enumerate(ENGAGEMENT_FEATURES)
            },
        }
    )
