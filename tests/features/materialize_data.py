"""Snapshot tables with nulls and edge values, written alike for the bulk and Feast writes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features.materialize_engine as engine
from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    VARIANT_FEATURES,
    VARIANT_TABLE,
    feature_type,
    snapshot_dir,
)
from inboxlab.settings import Settings, StoreSettings

DAY = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = {
    ENGAGEMENT_TABLE: (ENGAGEMENT_FEATURES, ["recipient_id"]),
    SEND_TIME_TABLE: (SEND_TIME_FEATURES, ["recipient_id"]),
    VARIANT_TABLE: (VARIANT_FEATURES, ["recipient_id", "variant_id"]),
}
ZONES = np.array(["Europe/Berlin", "", "Asia/Tokyo", "ünïcödé/Zone"], object)


def column(kind: type, rng: np.random.Generator, n: int) -> pa.Array:
    """Values of one feature with nulls and edge values mixed in."""
    null = rng.random(n) < 0.15
    if kind is str:
        zones = ZONES[rng.integers(0, len(ZONES), n)].tolist()
        return pa.array([None if gone else zone for gone, zone in zip(null, zones, strict=True)])
    if kind is float:
        values = rng.normal(0, 10, n)
        values[rng.random(n) < 0.05] = np.inf
        values[rng.random(n) < 0.05] = -0.0
        values[rng.random(n) < 0.05] = np.nan
        return pa.array(values, pa.float64(), mask=null)
    return pa.array(rng.integers(-300, 300, n), pa.int64(), mask=null)


def write_day(data: Path, day: datetime, n: int) -> None:
    """One snapshot day of every feature table; the variant table repeats some pairs within
    the day, with later ``created_at``, so that de-duplication decides which row is loaded."""
    rng = np.random.default_rng(day.toordinal())
    for table, (names, keys) in TABLES.items():
        size = n * 2 if keys[1:] else n
        cols: dict[str, Any] = {"recipient_id": [f"r{i % n:04d}" for i in range(size)]}
        if keys[1:]:
            cols["variant_id"] = [f"v{(i // n) % 2}" for i in range(size)]
            cols["recipient_id"][-3:] = cols["recipient_id"][:3]  # same pairs again
            cols["variant_id"][-3:] = cols["variant_id"][:3]
        for name in names:
            cols[name] = column(feature_type(name), rng, size)
        cols["event_timestamp"] = pa.array([day] * size, pa.timestamp("us", tz="UTC"))
        created = [day + timedelta(hours=1, microseconds=i) for i in range(size)]
        cols["created_at"] = pa.array(created, pa.timestamp("ns", tz="UTC"))
        path = (
            snapshot_dir(Settings(data_dir=data), table, day.date(), day.date()) / "part-0.parquet"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)


def record_bulk_writes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each call of the bulk write returns (whether it wrote), from now on."""
    calls: list[bool] = []
    write = engine._write

    def recorded(*args: Any) -> bool:
        calls.append(write(*args))
        return calls[-1]

    monkeypatch.setattr(engine, "_write", recorded)
    return calls


def twin_dirs(root: Path) -> tuple[Settings, Settings]:
    """Two data directories with the same first snapshot day: bulk write, Feast's write."""
    bulk, feast = Settings(data_dir=root / "bulk"), Settings(data_dir=root / "feast")
    write_day(bulk.data_dir, DAY, 40)
    shutil.copytree(bulk.data_dir, feast.data_dir)
    return bulk, Settings(data_dir=feast.data_dir, stores=StoreSettings(bulk_materialize=False))
