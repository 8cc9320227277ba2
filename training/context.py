"""Hour-dependent model inputs derived from a recipient's stored profiles.

Training derives them for each labelled send and serving for each candidate hour, through
this one function, so the send-time model sees the same inputs in both places.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from features.engineering.tables import SEND_HOUR_RATES, hour_window, send_hour_bucket

__all__ = ["LATE_HOURS", "OPEN_DAYS", "OPEN_HOURS", "context_features"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

OPEN_HOURS: tuple[str, ...] = tuple(f"open_hour_{h:02d}" for h in range(24))
OPEN_DAYS: tuple[str, ...] = tuple(f"open_dow_{d}" for d in range(7))
LATE_HOURS: tuple[str, ...] = tuple(f"late_open_hour_{h:02d}" for h in range(24))

#: ``profile(names)`` gives the (rows × len(names)) matrix of those stored features, or
#: ``None`` when they are not available.
Profile = Callable[[Sequence[str]], FloatArray | None]


def context_features(profile: Profile, hours: IntArray, days: IntArray) -> dict[str, FloatArray]:
    """The profile values at each row's local hour and weekday.

    ``hour_affinity`` is the recipient's (cohort-smoothed) share of opens at the local hour:
    it lets the send-time model score hours a recipient was never mailed at, because the
    profile is pooled toward the cohort rather than learned from this recipient's sends alone.
    ``send_hour_rate`` is the recipient's (cohort-shrunk) open rate of emails sent in the
    send-hour bucket of the hour: unlike the profile, it does not echo the hour the history
    happened to be sent at. ``late_hour_affinity`` is ``hour_affinity`` over late opens only
    (see :mod:`features.engineering.sql`), which show when the person reads mail, summed over
    the hour and its two neighbours. ``weekday_affinity`` is the share of opens on the day.

    Examples
    --------
    >>> flat = lambda names: np.full((2, len(names)), 1 / len(names))
    >>> out = context_features(flat, np.array([3, 23]), np.array([0, 6]))
    >>> sorted(out)
    ['hour_affinity', 'late_hour_affinity', 'send_hour_rate', 'weekday_affinity']
    >>> out["hour_affinity"].round(4).tolist()
    [0.0417, 0.0417]
    """
    rows = np.arange(len(hours))
    hour = np.asarray(hours, dtype=int) % 24
    day = np.asarray(days, dtype=int) % 7
    out: dict[str, FloatArray] = {}
    if (opens := profile(OPEN_HOURS)) is not None:
        out["hour_affinity"] = opens[rows, hour]
    if (late := profile(LATE_HOURS)) is not None:
        out["late_hour_affinity"] = hour_window(late)[rows, hour]
    if (rates := profile(SEND_HOUR_RATES)) is not None:
        out["send_hour_rate"] = rates[rows, send_hour_bucket(hour)]
    if (week := profile(OPEN_DAYS)) is not None:
        out["weekday_affinity"] = week[rows, day]
    return out
