"""Time in the simulator: UTC microseconds, time zone offsets and local hour of week.

All instants are ``int64`` microseconds since the Unix epoch in UTC, the unit of the event
log's ``occurred_at`` column, so no conversion happens until the Arrow table is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from features.simulator._arrays import FloatArray, IntArray
from inboxlab.errors import InvalidInputError

__all__ = [
    "HOURS_PER_WEEK",
    "US_PER_DAY",
    "US_PER_HOUR",
    "US_PER_MINUTE",
    "day_start_us",
    "local_hour_of_week",
    "to_epoch_us",
    "utc_offset_us",
]

US_PER_MINUTE = 60_000_000
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
HOURS_PER_WEEK = 168
# 1970-01-01 was a Thursday; with Monday 00:00 as hour 0 of the week it is hour 72.
_EPOCH_HOUR_OF_WEEK = 72
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=65_536)
def _offset_at_hour(zone: str, epoch_hour: int) -> int:
    # Every transition of the supported zones happens on a whole UTC hour (even Asia/Kolkata's
    # half-hour offset never changes), so one lookup per UTC hour is exact.
    instant = _EPOCH + timedelta(hours=epoch_hour)
    offset = instant.astimezone(ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return (offset.days * 86_400 + offset.seconds) * 1_000_000


def utc_offset_us(t_us: IntArray, tz_code: IntArray, zones: Sequence[str]) -> IntArray:
    """UTC offset in microseconds of each instant in its recipient's time zone.

    Examples
    --------
    >>> winter, summer = datetime(2026, 1, 5, 12, tzinfo=UTC), datetime(2026, 7, 6, 12, tzinfo=UTC)
    >>> t = to_epoch_us([winter, summer])
    >>> (utc_offset_us(t, np.array([0, 0]), ["Europe/Berlin"]) // US_PER_HOUR).tolist()
    [1, 2]
    """
    hours = t_us // US_PER_HOUR
    out = np.empty(t_us.shape, dtype=np.int64)
    for code, zone in enumerate(zones):
        mask = tz_code == code
        if not mask.any():
            continue
        uniq, inverse = np.unique(hours[mask], return_inverse=True)
        table = np.fromiter((_offset_at_hour(zone, int(h)) for h in uniq), np.int64, len(uniq))
        out[mask] = table[inverse]
    return out


def local_hour_of_week(t_us: IntArray, tz_code: IntArray, zones: Sequence[str]) -> FloatArray:
    """Fractional local hour of the week in ``[0, 168)``; 0 is Monday 00:00 local time.

    Examples
    --------
    >>> t = to_epoch_us([datetime(2026, 1, 5, 15, 30, tzinfo=UTC)])  # a Monday
    >>> local_hour_of_week(t, np.array([0]), ["America/New_York"]).tolist()
    [10.5]
    """
    local_us = t_us + utc_offset_us(t_us, tz_code, zones)
    return np.mod(local_us / US_PER_HOUR + _EPOCH_HOUR_OF_WEEK, HOURS_PER_WEEK)


def day_start_us(day: date) -> int:
    """Microseconds since the epoch of UTC midnight starting ``day``."""
    return (day.toordinal() - date(1970, 1, 1).toordinal()) * US_PER_DAY


def to_epoch_us(
    values: datetime | Sequence[datetime] | np.ndarray, size: int | None = None
) -> IntArray:
    """Convert aware datetimes or ``datetime64`` values to UTC epoch microseconds.

    A single datetime is broadcast to ``size`` values when ``size`` is given. Naive
    datetimes are refused: the simulator never guesses a time zone.

    Examples
    --------
    >>> to_epoch_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)).tolist()
    [1000000]
    """
    if isinstance(values, datetime):
        values = [values] * (1 if size is None else size)
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        out = values.astype("datetime64[us]").astype(np.int64)
    else:
        items = list(values)
        for item in items:
            if not isinstance(item, datetime) or item.utcoffset() is None:
                raise InvalidInputError(
                    f"send_at must hold timezone-aware datetimes, got {item!r}", field="send_at"
                )
        out = np.fromiter(
            ((item - _EPOCH) // timedelta(microseconds=1) for item in items), np.int64, len(items)
        )
    if size is not None and out.shape != (size,):
        raise InvalidInputError(
            f"send_at must be one datetime or {size} of them, got {out.shape[0]}", field="send_at"
        )
    return out
