"""Send-time choice: score every whole hour of the window in local time, pick the best.

Hours inside the recipient's quiet hours are skipped. With probability ``exploration`` a
uniformly random allowed hour is sent instead of the best one, so that the next model sees
hours the current one would never choose; the probability of the hour actually chosen is
returned as ``send_time_propensity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

__all__ = ["Candidates", "SendTimeChoice", "candidate_hours", "choose", "is_quiet", "zone"]

FloatArray = NDArray[np.float64]


@lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name``, UTC when unknown or empty."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_quiet(local_hour: int, quiet_start: int, quiet_end: int) -> bool:
    """Whether ``local_hour`` falls in quiet hours ``[quiet_start, quiet_end)`` (may wrap).

    >>> [is_quiet(h, 21, 8) for h in (20, 21, 3, 8)]
    [False, True, True, False]
    >>> is_quiet(10, 0, 0)  # start == end: no quiet hours
    False
    """
    if quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:
        return quiet_start <= local_hour < quiet_end
    return local_hour >= quiet_start or local_hour < quiet_end


@dataclass(frozen=True, slots=True)
class Candidates:
    """Whole hours of a send window, in UTC and in the recipient's local time."""

    utc: tuple[datetime, ...]
    local_hour: NDArray[np.int64]
    local_weekday: NDArray[np.int64]
    allowed: NDArray[np.bool_]
    #: Positions of the hours a send may take: the allowed ones, or every one when the whole
    #: window is quiet (computed once with the cached candidates, not per choice).
    options: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        options = np.flatnonzero(self.allowed) if self.allowed.any() else np.arange(len(self.utc))
        options.flags.writeable = False
        object.__setattr__(self, "options", options)


def _next_whole_hour(t: datetime) -> datetime:
    """``t`` rounded up to a whole hour (itself when already whole)."""
    whole = t.replace(minute=0, second=0, microsecond=0)
    return whole if whole == t else whole + timedelta(hours=1)


def candidate_hours(
    start: datetime, end: datetime, timezone: str | None, quiet_start: int, quiet_end: int
) -> Candidates:
    """Every whole UTC hour ``t`` with ``start <= t < end`` (the first rounded up).

    For a whole hour ``t``, ``t < end`` exactly when ``t`` is before ``end`` rounded up, so
    the hours depend on ``start`` and ``end`` only through their rounded values: the requests
    of one hour share one (cached, read-only) result.

    >>> from datetime import UTC
    >>> c = candidate_hours(datetime(2026, 3, 1, 6, 30, tzinfo=UTC),
    ...                     datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC), "Europe/Berlin", 21, 8)
    >>> [t.hour for t in c.utc], c.local_hour.tolist(), c.allowed.tolist()
    ([7, 8, 9, 10], [8, 9, 10, 11], [True, True, True, True])
    """
    first, stop = _next_whole_hour(start), _next_whole_hour(end)
    # The zone objects are part of the key: equal instants in other zones hash alike but
    # would hand back hours expressed in the first caller's zone.
    return _candidates(first, stop, first.tzinfo, timezone, quiet_start, quiet_end)


@lru_cache(maxsize=4096)
def _candidates(
    first: datetime,
    stop: datetime,
    _zone_of_first: object,
    timezone: str | None,
    quiet_start: int,
    quiet_end: int,
) -> Candidates:
    hours: list[datetime] = []
    t = first
    while t < stop:
        hours.append(t)
        t += timedelta(hours=1)
    tz = zone(timezone)
    local = [h.astimezone(tz) for h in hours]
    local_hour = np.array([x.hour for x in local], dtype=np.int64)
    local_weekday = np.array([x.weekday() for x in local], dtype=np.int64)
    allowed = np.array([not is_quiet(int(h), quiet_start, quiet_end) for h in local_hour], bool)
    for shared in (local_hour, local_weekday, allowed):
        shared.flags.writeable = False  # one result serves many requests
    return Candidates(tuple(hours), local_hour, local_weekday, allowed)


@dataclass(frozen=True, slots=True)
class SendTimeChoice:
    """The hour chosen, its probability of being chosen and why."""

    send_at: datetime
    propensity: float
    score: float | None
    explored: bool
    reasons: tuple[str, ...]
    index: int
    """Position of ``send_at`` among the candidates' hours."""


def choose(
    candidates: Candidates,
    scores: FloatArray | None,
    *,
    exploration: float,
    rng: np.random.Generator,
) -> SendTimeChoice | None:
    """The best allowed hour by ``scores`` (or the first allowed one without scores).

    Returns ``None`` for an empty window. When every hour is quiet, the best hour of the whole
    window is used and the reason ``quiet_hours_unavoidable`` says so.
    """
    n = len(candidates.utc)
    if n == 0:
        return None
    reasons: list[str] = []
    options = candidates.options
    if len(options) == n and not candidates.allowed[0]:  # every hour is quiet
        reasons.append("quiet_hours_unavoidable")
    if scores is None:
        best = int(options[0])
        reasons.append("send_time_unscored")
    else:
        best = int(options[np.argmax(scores[options])])
    k = options.size
    explore = exploration > 0 and k > 1 and rng.random() < exploration
    chosen = int(options[rng.integers(k)]) if explore else best
    # P(chosen) = P(no exploration) * [chosen is best] + P(exploration) / k
    eps = exploration if k > 1 else 0.0
    propensity = (1 - eps) * (chosen == best) + eps / k
    return SendTimeChoice(
        send_at=candidates.utc[chosen],
        propensity=float(propensity),
        score=None if scores is None else float(scores[chosen]),
        explored=explore,
        reasons=tuple(reasons),
        index=chosen,
    )
