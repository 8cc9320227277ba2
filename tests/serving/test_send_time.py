from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from serving.scoring.send_time import candidate_hours, is_quiet


def _reference(
    start: datetime, end: datetime, tz: str, quiet_start: int, quiet_end: int
) -> list[tuple[datetime, int, int, bool]]:
    """Every whole hour in [start, end), found by walking the window minute by minute."""
    out = []
    t = start.replace(second=0, microsecond=0)
    if t < start:
        t += timedelta(minutes=1)
    while t < end:
        if t.minute == 0:
            local = t.astimezone(ZoneInfo(tz))
            quiet = is_quiet(local.hour, quiet_start, quiet_end)
            out.append((t, local.hour, local.weekday(), not quiet))
        t += timedelta(minutes=1)
    return out


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_candidate_hours_equal_a_minute_by_minute_walk(tz: str) -> None:
    # Around the March DST change in Europe and the US, windows starting and ending on,
    # just before and just after whole hours; the cache must not change any answer.
    base = datetime(2026, 3, 7, 22, 0, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(microseconds=1), timedelta(minutes=59, seconds=59)]
    for day in range(0, 24 * 24, 7):
        for a in offsets:
            start = base + timedelta(hours=day) + a
            for length in (
                timedelta(0),
                timedelta(minutes=30),
                timedelta(hours=5),
                timedelta(hours=24),
            ):
                for b in offsets:
                    end = start + length + b
                    got = candidate_hours(start, end, tz, 21, 8)
                    rows = list(
                        zip(got.utc, got.local_hour.tolist(), got.local_weekday.tolist(),
                            got.allowed.tolist(), strict=True)
                    )  # fmt: skip
                    assert rows == _reference(start, end, tz, 21, 8), (start, end)


def test_candidate_hours_keep_the_zone_of_the_request() -> None:
    # Equal instants with different offsets are equal keys: each caller still gets its own zone.
    utc = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    plus2 = utc.astimezone(timezone(timedelta(hours=2)))
    a = candidate_hours(utc, utc + timedelta(hours=3), "UTC", 0, 0)
    b = candidate_hours(plus2, plus2 + timedelta(hours=3), "UTC", 0, 0)
    assert a.utc == b.utc
    assert [t.utcoffset() for t in a.utc] == [timedelta(0)] * 3
    assert [t.utcoffset() for t in b.utc] == [timedelta(hours=2)] * 3


def test_shared_candidate_arrays_are_read_only() -> None:
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    cand = candidate_hours(start, start + timedelta(hours=24), "Europe/Berlin", 21, 8)
    assert cand is candidate_hours(
        start + timedelta(minutes=10), start + timedelta(hours=24), "Europe/Berlin", 21, 8
    )
    with pytest.raises(ValueError, match="read-only"):
        cand.local_hour[0] = 3
    assert np.all(cand.allowed == [not is_quiet(h, 21, 8) for h in cand.local_hour])
