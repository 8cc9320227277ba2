"""Time zones and request context."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from features.engineering.context import local_context, utc_offsets, valid_timezone


@pytest.mark.parametrize(
    ("zone", "at", "hour", "weekday"),
    [
        ("Europe/Paris", datetime(2026, 1, 5, 8, 0, tzinfo=UTC), 9, 0),
        ("Europe/Paris", datetime(2026, 7, 5, 8, 0, tzinfo=UTC), 10, 6),
        ("America/Los_Angeles", datetime(2026, 1, 5, 3, 0, tzinfo=UTC), 19, 6),
        ("Asia/Kolkata", datetime(2026, 1, 5, 20, 0), 1, 1),
        ("No/Such_Zone", datetime(2026, 1, 5, 20, 0, tzinfo=UTC), 20, 0),
        (None, 1767643200, 20, 0),
    ],
)
def test_local_context(zone: str | None, at: datetime | int, hour: int, weekday: int) -> None:
    assert local_context(zone, at) == (hour, weekday)


@pytest.mark.parametrize("bad", ["", "Mars/Olympus", "../etc/passwd", "UTC+5"])
def test_unknown_time_zones_fall_back_to_utc(bad: str) -> None:
    assert valid_timezone(bad) == "UTC"


def test_offsets_follow_daylight_saving() -> None:
    rows = utc_offsets({"Europe/Paris", "Bad/Zone"}, date(2026, 3, 28), date(2026, 3, 30))
    assert [r[2] for r in rows] == [60, 120, 120]
    assert {r[0] for r in rows} == {"Europe/Paris"}
