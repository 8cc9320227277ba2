"""The Arrow schema of the event log and of normalised import data."""

from __future__ import annotations

import pyarrow as pa

from inboxlab.records import EVENT_COLUMNS

__all__ = ["EVENT_SCHEMA", "PARTITION_COLUMN", "REQUIRED_COLUMNS"]

#: The stored schema. ``occurred_at`` is UTC with microsecond precision.
EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("recipient_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("campaign_id", pa.string()),
        pa.field("variant_id", pa.string()),
        pa.field("decision_id", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("is_machine_open", pa.bool_()),
    ]
)
assert tuple(EVENT_SCHEMA.names) == EVENT_COLUMNS

#: Columns every row must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("recipient_id", "kind", "occurred_at")

#: Hive-style partition key of the log directory: ``events/date=YYYY-MM-DD/part-*.parquet``.
PARTITION_COLUMN = "date"
