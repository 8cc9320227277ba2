"""Erasure of one person from everything the feature side keeps about them.

The event log, the feature tables, the recipient directory and the SQLite online store. The
decision store (decisions, outcomes, bandit counts) is erased by ``serving``; the command
``inboxlab forget`` does both and writes the audit record.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from features.engineering.tables import FEATURE_TABLES, table_dir
from features.events import EventLog
from features.events.log import rewrite_without
from features.online import entity_key, variant_key_prefix
from features.store import online_db_path
from inboxlab.settings import Settings

__all__ = ["FeatureErasure", "erase_recipient"]


@dataclass(frozen=True, slots=True)
class FeatureErasure:
    """Rows removed per place."""

    events: int
    feature_rows: int
    directory_rows: int
    online_rows: int


def erase_recipient(settings: Settings, recipient_id: str) -> FeatureErasure:
    """Remove ``recipient_id`` from the event log, feature tables, directory and online store."""
    events = EventLog(settings.events_dir).erase(recipient_id)
    feature_rows = 0
    for table in FEATURE_TABLES:
        files = sorted(table_dir(settings, table).glob("date=*/*.parquet"))
        feature_rows += rewrite_without(files, "recipient_id", recipient_id)
    directory = settings.recipients_path
    directory_rows = (
        rewrite_without([directory], "recipient_id", recipient_id) if directory.exists() else 0
    )
    online_rows = 0
    path = online_db_path(settings)
    if settings.stores.online == "sqlite" and path.exists():
        with sqlite3.connect(path) as conn:
            tables = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in tables:
                prefix = variant_key_prefix(recipient_id)  # per-variant rows of the person
                cursor = conn.execute(
                    f'DELETE FROM "{name}" WHERE entity_key = ? OR substr(entity_key, 1, ?) = ?',
                    (entity_key(recipient_id), len(prefix), prefix),
                )
                online_rows += max(cursor.rowcount, 0)
    return FeatureErasure(events, feature_rows, directory_rows, online_rows)
