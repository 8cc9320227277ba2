"""Erasure of one person from everything the feature side keeps about them.

The event log, the feature tables, the recipient directory and the online store (SQLite or
Redis, whichever ``stores.online`` names). The
decision store (decisions, outcomes, bandit counts) is erased by ``serving``; the command
``inboxlab forget`` does both and writes the audit record.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from features.engineering.tables import (
    FEATURE_TABLES,
    locked_tables,
    migrate_layout,
    table_files,
)
from features.events import EventLog
from features.events.log import rewrite_without
from features.online import entity_key, variant_key_prefix
from features.prepared import LAYOUT_TABLE, PREPARED_TABLE
from features.store import DEFAULT_PROJECT, online_db_path
from inboxlab.errors import StoreError
from inboxlab.settings import Settings

__all__ = ["FeatureErasure", "erase_recipient"]


@dataclass(frozen=True, slots=True)
class FeatureErasure:
    """Rows removed per place."""

    events: int
    feature_rows: int
    directory_rows: int
    online_rows: int


def erase_recipient(
    settings: Settings, recipient_id: str, *, project: str = DEFAULT_PROJECT
) -> FeatureErasure:
    """Remove ``recipient_id`` from the event log, feature tables, directory and online store."""
    # After a running build has published (its files are then rewritten), before the next
    # one reads the log.
    with locked_tables(settings):
        events = EventLog(settings.events_dir).erase(recipient_id)
        migrate_layout(settings)  # tables of earlier versions are erased too
        feature_rows = 0
        for table in FEATURE_TABLES:
            files = table_files(settings, table)
            feature_rows += rewrite_without(files, "recipient_id", recipient_id)
    directory = settings.recipients_path
    directory_rows = (
        rewrite_without([directory], "recipient_id", recipient_id) if directory.exists() else 0
    )
    if settings.stores.online == "redis":
        online_rows = _erase_redis(settings, recipient_id, project)
    else:
        online_rows = _erase_sqlite(settings, recipient_id)
    return FeatureErasure(events, feature_rows, directory_rows, online_rows)


def _erase_sqlite(settings: Settings, recipient_id: str) -> int:
    path = online_db_path(settings)
    if not path.exists():
        return 0
    removed = 0
    with sqlite3.connect(path) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        # Feast's tables, then the prepared rows made from them (features.prepared): their
        # triggers already deleted the person's, unless a table lost its triggers. The count
        # is of Feast's rows.
        for name in sorted(set(tables) - {LAYOUT_TABLE}, key=lambda n: n == PREPARED_TABLE):
            prefix = variant_key_prefix(recipient_id)  # per-variant rows of the person
            cursor = conn.execute(
                f'DELETE FROM "{name}" WHERE entity_key = ? OR substr(entity_key, 1, ?) = ?',
                (entity_key(recipient_id), len(prefix), prefix),
            )
            if name != PREPARED_TABLE:
                removed += max(cursor.rowcount, 0)
    return removed


def _erase_redis(settings: Settings, recipient_id: str, project: str) -> int:
    """Delete the person's hashes: Feast keys one per entity, the entity key then the project.

    The per-variant keys are found with ``SCAN`` on their shared start, glob characters
    escaped, so no variant list is needed; each match is checked to be a whole variant key of
    this project (the pattern alone would also match a project whose name ends in this one).
    """
    import redis

    suffix = project.encode()
    prefix = variant_key_prefix(recipient_id)
    conn = redis.Redis.from_url(settings.stores.redis_url)
    try:
        pattern = _glob_escape(prefix) + b"*" + _glob_escape(suffix)
        keys = [entity_key(recipient_id) + suffix]
        for key in conn.scan_iter(match=pattern, count=1000):
            size = int.from_bytes(key[len(prefix) : len(prefix) + 4], "little")
            if len(key) == len(prefix) + 4 + size + len(suffix):
                keys.append(key)
        return int(conn.delete(*keys))
    except redis.RedisError as exc:
        raise StoreError(f"Redis online store at {settings.stores.redis_url}: {exc}") from exc
    finally:
        conn.close()


def _glob_escape(raw: bytes) -> bytes:
    r"""``raw`` as a Redis glob pattern that matches only itself.

    >>> _glob_escape(b"a*b[c]?\\")
    b'a\\*b\\[c\\]\\?\\\\'
    """
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)
