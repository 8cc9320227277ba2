"""Feast data sources: the Parquet feature tables and the request-time context.

The feature tables live under the data directory, so sources are made by functions of it;
the module-level objects use the directory of the current settings (``INBOXLAB_DATA_DIR``).
"""

from __future__ import annotations

from pathlib import Path

from feast import Field, FileSource, RequestSource
from feast.data_format import ParquetFormat
from feast.types import String, UnixTimestamp

from features.engineering.tables import table_glob
from inboxlab.settings import get_settings

__all__ = [
    "engagement_source",
    "make_engagement_source",
    "make_send_time_source",
    "make_variant_source",
    "request_context",
    "send_time_source",
    "variant_source",
]


def make_engagement_source(data_dir: Path) -> FileSource:
    """The daily engagement snapshots under ``data_dir``."""
    return FileSource(
        name="engagement_snapshots",
        path=table_glob(data_dir, "engagement"),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_at",
        description="Daily engagement snapshots; each row uses only events before its time.",
        tags={"table": "engagement"},
    )


def make_send_time_source(data_dir: Path) -> FileSource:
    """The daily open-time profile snapshots under ``data_dir``."""
    return FileSource(
        name="send_time_snapshots",
        path=table_glob(data_dir, "send_time"),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_at",
        description="Daily open-time profiles (local hour and weekday) and time zones.",
        tags={"table": "send_time"},
    )


def make_variant_source(data_dir: Path) -> FileSource:
    """The per-(recipient, variant) snapshots under ``data_dir``."""
    return FileSource(
        name="recipient_variant_snapshots",
        path=table_glob(data_dir, "recipient_variant"),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_at",
        description="Per recipient and variant, 90-day history; a row only on the days a "
        "pair's values change.",
        tags={"table": "recipient_variant"},
    )


request_context = RequestSource(
    name="request_context",
    schema=[
        Field(name="request_timezone", dtype=String),
        Field(name="request_at", dtype=UnixTimestamp),
    ],
    description="The time zone and instant of a scoring request.",
    tags={"owner": "serving"},
)

engagement_source = make_engagement_source(get_settings().data_dir)
send_time_source = make_send_time_source(get_settings().data_dir)
variant_source = make_variant_source(get_settings().data_dir)
