"""The event log: the validated record of everything that happened to every email."""

from __future__ import annotations

from features.events.importer import ImportSummary, import_events, read_event_file
from features.events.log import AppendResult, EventLog
from features.events.schema import EVENT_SCHEMA, PARTITION_COLUMN, REQUIRED_COLUMNS
from features.events.validation import Validated, validate_events

__all__ = [
    "EVENT_SCHEMA",
    "PARTITION_COLUMN",
    "REQUIRED_COLUMNS",
    "AppendResult",
    "EventLog",
    "ImportSummary",
    "Validated",
    "import_events",
    "read_event_file",
    "validate_events",
]
