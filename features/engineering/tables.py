"""Names, columns and cold-start defaults of the feature tables.

Three Parquet tables live under ``{data_dir}/features/``, a directory per build chunk named
by its first and last snapshot day, a file per range of recipients in it::

    features/engagement/snapshots-YYYYMMDD-YYYYMMDD/part-0.parquet
    features/send_time/snapshots-YYYYMMDD-YYYYMMDD/part-0.parquet
    features/recipient_variant/snapshots-YYYYMMDD-YYYYMMDD/part-0.parquet

A file holds every snapshot day of its chunk for its recipients, in no particular order:
writing each day to a file of its own (Hive partitions) cost DuckDB about twice the Parquet
encoding (``benchmarks/README.md``). Readers filter on ``event_timestamp``; Parquet's row-group
statistics let them skip the files of other chunks. Tables written by earlier versions, one
directory per day (``date=YYYY-MM-DD``), are renamed into this layout by
:func:`migrate_layout`: the files are the same.

Every row is keyed by ``recipient_id`` (and ``variant_id`` in ``recipient_variant``) and
``event_timestamp`` (the snapshot, midnight UTC of ``date``) and is computed only from events
that occurred strictly before ``event_timestamp``. ``engagement`` and ``send_time`` have a row
per recipient and day; ``recipient_variant`` only on the days a pair's values change (see
:mod:`features.engineering.variant`).
``created_at`` records when the row was written (Feast's ``created_timestamp_column``).

The defaults below are what a recipient with no history looks like: the training frame fills
missing rows with them and the online clients return them for unknown recipients, so a model
sees the same cold start in training and in serving.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from inboxlab.settings import Settings

__all__ = [
    "DEFAULTS",
    "ENGAGEMENT_FEATURES",
    "ENGAGEMENT_TABLE",
    "FEATURE_TABLES",
    "NEVER_DAYS",
    "SEND_BUCKET_HOURS",
    "SEND_HOUR_BUCKETS",
    "SEND_HOUR_RATES",
    "SEND_TIME_FEATURES",
    "SEND_TIME_TABLE",
    "SNAPSHOT_GLOB",
    "VARIANT_DEFAULTS",
    "VARIANT_FEATURES",
    "VARIANT_KEYS",
    "VARIANT_TABLE",
    "VARIANT_TTL",
    "WINDOWS",
    "FeatureValue",
    "feature_type",
    "features_dir",
    "hour_window",
    "locked_tables",
    "migrate_layout",
    "send_hour_bucket",
    "snapshot_dir",
    "snapshot_spans",
    "table_dir",
    "table_files",
    "table_glob",
]

FeatureValue = float | int | str

ENGAGEMENT_TABLE: Final = "engagement"
SEND_TIME_TABLE: Final = "send_time"
VARIANT_TABLE: Final = "recipient_variant"
FEATURE_TABLES: Final = (ENGAGEMENT_TABLE, SEND_TIME_TABLE, VARIANT_TABLE)
#: Join keys of the per-(recipient, variant) table.
VARIANT_KEYS: Final = ("recipient_id", "variant_id")
#: How old a ``recipient_variant`` row may be and still apply: its rows are written only on
#: the days a pair's 90-day values change, so a row with history is superseded within 90
#: days, and a row older than that is the all-zero one, equal to the defaults.
VARIANT_TTL: Final = timedelta(days=91)

#: Look-back windows in days.
WINDOWS: Final = (7, 30, 90)

#: "Days since" value for something that never happened (a cap, so models see a number).
NEVER_DAYS: Final = 999

_COUNTS = ("sends", "deliveries", "opens", "machine_opens", "clicks", "conversions", "revenue")
_RATES = ("open_rate", "click_rate", "conversion_rate")
_SINCE = ("send", "open", "click", "conversion")

ENGAGEMENT_FEATURES: Final[tuple[str, ...]] = (
    *(f"{c}_{w}d" for w in WINDOWS for c in _COUNTS),
    *(f"{r}_{w}d" for w in (30, 90) for r in _RATES),
    *(f"days_since_last_{s}" for s in _SINCE),
    "engagement_score",
    "engagement_trend",
    "sends_1d",
    "is_unsubscribed",
    "has_complained",
    "has_bounced",
    "machine_open_share_90d",
    "conversions_total",
    "revenue_total",
    "avg_order_value",
    "tenure_days",
)

#: Width in local hours of the send-hour buckets of the ``send_hour_rate_HH`` features: three
#: hours, as a recipient gets only a few sends at other than the usual hour in 90 days.
SEND_BUCKET_HOURS: Final = 3
#: First local hour of each send-hour bucket.
SEND_HOUR_BUCKETS: Final[tuple[int, ...]] = tuple(range(0, 24, SEND_BUCKET_HOURS))
#: The send-hour open rates, one per bucket, in bucket order.
SEND_HOUR_RATES: Final[tuple[str, ...]] = tuple(
    f"send_hour_rate_{h:02d}" for h in SEND_HOUR_BUCKETS
)

SEND_TIME_FEATURES: Final[tuple[str, ...]] = (
    "timezone",
    "profile_opens_90d",
    *(f"open_hour_{h:02d}" for h in range(24)),
    *(f"open_dow_{d}" for d in range(7)),
    "late_opens_90d",
    *(f"late_open_hour_{h:02d}" for h in range(24)),
    "send_hour_sends_90d",
    *SEND_HOUR_RATES,
)

#: Per (recipient, variant) over 90 days: counts, click rate per delivery and per human open.
VARIANT_FEATURES: Final[tuple[str, ...]] = (
    *(f"variant_{c}_90d" for c in ("sends", "deliveries", "opens", "clicks", "conversions")),
    "variant_click_rate_90d",
    "variant_click_to_open_rate_90d",
)


_FLOAT_MARKERS = ("revenue", "rate", "score", "trend", "share", "value", "open_hour", "open_dow")


def feature_type(name: str) -> type[float] | type[int] | type[str]:
    """The Python type of a feature's values: ``str`` (time zone), ``float`` or ``int``.

    >>> feature_type("revenue_7d"), feature_type("opens_7d"), feature_type("timezone")
    (<class 'float'>, <class 'int'>, <class 'str'>)
    """
    if name == "timezone":
        return str
    return float if any(marker in name for marker in _FLOAT_MARKERS) else int


def _default(name: str) -> FeatureValue:
    if name == "timezone":
        return "UTC"
    if name.startswith("days_since_last_"):
        return NEVER_DAYS
    if name.startswith(("open_hour_", "late_open_hour_")):
        return 1 / 24  # no history: a flat profile, the model's cohort curve decides
    if name.startswith("open_dow_"):
        return 1 / 7
    # send_hour_rate_*: 0.0 like every rate of a recipient without history; the zero
    # send_hour_sends_90d next to it tells the model the rate carries no evidence.
    return feature_type(name)(0)


#: Cold-start value of every feature: zero counts and rates, ``NEVER_DAYS``, flat profiles, UTC.
DEFAULTS: Final[dict[str, FeatureValue]] = {
    name: _default(name) for name in (*ENGAGEMENT_FEATURES, *SEND_TIME_FEATURES)
}

#: Cold-start value of every per-variant feature: zero counts and rates (a pair never seen).
VARIANT_DEFAULTS: Final[dict[str, FeatureValue]] = {
    name: feature_type(name)(0) for name in VARIANT_FEATURES
}


def send_hour_bucket(local_hour: NDArray[np.int_]) -> NDArray[np.int_]:
    """Index into ``SEND_HOUR_RATES`` of the bucket of each local hour (0-23).

    >>> send_hour_bucket(np.array([0, 2, 3, 23])).tolist()
    [0, 0, 1, 7]
    """
    return (np.asarray(local_hour, dtype=int) % 24) // SEND_BUCKET_HOURS


def hour_window(profile: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each hour's share plus its two neighbours' (circularly), for ``(n, 24)`` profiles.

    Late opens scatter about an hour around the preferred hour, so the three-hour sum is a
    steadier affinity than the share of the hour alone.

    >>> hour_window(np.eye(24)[[5]])[0, 4:7].tolist()
    [1.0, 1.0, 1.0]
    """
    # Fancy indexing with fixed neighbour indices: np.roll costs several times more on the
    # small matrices of one decision.
    return profile + profile[:, _PREVIOUS_HOUR] + profile[:, _NEXT_HOUR]


_PREVIOUS_HOUR = (np.arange(24) - 1) % 24
_NEXT_HOUR = (np.arange(24) + 1) % 24


def features_dir(settings: Settings) -> Path:
    """The directory holding every feature table."""
    return settings.data_dir / "features"


def table_dir(settings: Settings, table: str) -> Path:
    """The directory of one feature table (a directory per build chunk in it)."""
    if table not in FEATURE_TABLES:
        raise ValueError(f"unknown feature table {table!r}; expected one of {FEATURE_TABLES}")
    return features_dir(settings) / table


#: Directory of one build chunk's files: ``snapshots-<first day>-<last day>``.
_SNAPSHOT_DIR = re.compile(r"snapshots-(\d{8})-(\d{8})")
#: Glob of a table's data files relative to its directory (staging directories, which start
#: with ``_``, hold their files one level deeper or under another name).
SNAPSHOT_GLOB: Final = "snapshots-*/*.parquet"


def snapshot_dir(settings: Settings, table: str, first: date, last: date) -> Path:
    """The directory of the snapshots ``first`` to ``last`` (inclusive) of ``table``.

    >>> snapshot_dir(Settings(data_dir=Path("/d")), "engagement", date(2026, 3, 1),
    ...              date(2026, 3, 31)).as_posix()
    '/d/features/engagement/snapshots-20260301-20260331'
    """
    return table_dir(settings, table) / f"snapshots-{first:%Y%m%d}-{last:%Y%m%d}"


def snapshot_spans(settings: Settings, table: str) -> list[tuple[date, date]]:
    """First and last snapshot day of each chunk of ``table`` that holds files, sorted."""
    directory = table_dir(settings, table)
    if not directory.exists():
        return []
    spans = []
    for path in directory.iterdir():
        match = _SNAPSHOT_DIR.fullmatch(path.name)
        if match and any(path.glob("*.parquet")):
            first, last = (date(int(d[:4]), int(d[4:6]), int(d[6:])) for d in match.groups())
            spans.append((first, last))
    return sorted(spans)


def table_glob(data_dir: Path, table: str) -> str:
    """The glob of every data file of ``table`` under ``data_dir``, for DuckDB and Feast."""
    return str(data_dir.resolve() / "features" / table / SNAPSHOT_GLOB)


def table_files(settings: Settings, table: str) -> list[Path]:
    """Every data file of ``table``, sorted."""
    return sorted(table_dir(settings, table).glob(SNAPSHOT_GLOB))


def migrate_layout(settings: Settings) -> int:
    """Rename the day directories of tables written by earlier versions (``date=YYYY-MM-DD``)
    into the current layout, one chunk per day; returns how many were renamed.

    The files do not change: the day was only ever in the directory's name and in
    ``event_timestamp``.
    """
    moved = 0
    for table in FEATURE_TABLES:
        directory = table_dir(settings, table)
        if not directory.exists():
            continue
        for path in sorted(directory.glob("date=*")):
            try:
                day = date.fromisoformat(path.name.removeprefix("date="))
            except ValueError:
                continue
            try:
                path.rename(snapshot_dir(settings, table, day, day))
            except FileNotFoundError:  # another process renamed it first
                continue
            moved += 1
    return moved


@contextmanager
def locked_tables(settings: Settings) -> Iterator[None]:
    """Hold the feature tables for a writer: one build or erasure at a time, the others wait.

    An erasure waits for a build to publish, then rewrites its files; a build that starts
    after an erasure reads the log without the person. Once held, the staging directories a
    killed build left behind (``_staging-*``) are removed.
    """
    directory = features_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".write.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for table in FEATURE_TABLES:
                for staging in table_dir(settings, table).glob("_staging-*"):
                    shutil.rmtree(staging, ignore_errors=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
