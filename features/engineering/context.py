"""Time zones and request-time context (local hour and weekday).

The same functions serve the feature build (per-day UTC offsets), Feast's on-demand view and
the scoring API, so a request's local hour is computed one way everywhere.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["LocalContext", "local_context", "utc_offsets", "valid_timezone"]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def valid_timezone(name: str | None) -> str:
    """``name`` when it is a known IANA time zone, else ``"UTC"`` (logged).

    >>> valid_timezone("Europe/Paris"), valid_timezone("Mars/Olympus"), valid_timezone(None)
    ('Europe/Paris', 'UTC', 'UTC')
    """
    if not name:
        return "UTC"
    if _zone(name) is None:
        _warn_unknown(name)
        return "UTC"
    return name


@lru_cache(maxsize=1024)
def _warn_unknown(name: str) -> None:
    # Once per name: a recipients table may repeat a bad zone on thousands of rows.
    logger.warning("unknown time zone %r; using UTC", name)


class LocalContext(NamedTuple):
    """Local hour of day (0-23) and day of week (Monday = 0)."""

    hour: int
    weekday: int


def local_context(timezone: str | None, at: datetime | float) -> LocalContext:
    """Local hour and weekday of the instant ``at`` in ``timezone`` (unknown zones: UTC).

    ``at`` is a datetime (naive means UTC) or Unix seconds.

    >>> local_context("America/New_York", datetime(2026, 3, 2, 3, 30, tzinfo=UTC))
    LocalContext(hour=22, weekday=6)
    """
    if isinstance(at, int | float):
        aware = datetime.fromtimestamp(at, UTC)
    else:
        aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    local = aware.astimezone(_zone(valid_timezone(timezone)) or UTC)
    return LocalContext(local.hour, local.weekday())


def utc_offsets(timezones: set[str], first: date, last: date) -> list[tuple[str, int, int]]:
    """``(timezone, day_num, offset_minutes)`` at noon UTC of every day from first to last.

    ``day_num`` counts days since 1970-01-01. Noon keeps the DST-change day right for the
    hours people open email in; the few hours after a change at night are one hour off.
    """
    epoch = date(1970, 1, 1)
    rows: list[tuple[str, int, int]] = []
    for name in sorted(timezones):
        zone = _zone(name)
        if zone is None:
            continue
        day = first
        while day <= last:
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            offset = noon.astimezone(zone).utcoffset() or timedelta(0)
            rows.append((name, (day - epoch).days, int(offset.total_seconds() // 60)))
            day += timedelta(days=1)
    return rows
