"""Model inputs derived at send time: hour affinities and the engagement model's whole row.

Training derives them for each labelled send and serving for each candidate hour or variant,
through the functions here, so a model sees the same inputs in both places:
:func:`context_features` for the send-time model, :func:`engagement_inputs` (which uses it)
for the engagement model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from features.engineering.tables import (
    SEND_HOUR_RATES,
    VARIANT_DEFAULTS,
    FeatureValue,
    hour_window,
    send_hour_bucket,
)

__all__ = [
    "ENGAGEMENT_CONTEXT",
    "HOUR_CONTEXT",
    "LATE_HOURS",
    "LIFT_INPUTS",
    "OPEN_DAYS",
    "OPEN_HOURS",
    "PROFILE_COLUMNS",
    "context_features",
    "engagement_inputs",
    "engagement_rows",
    "late_peak_features",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

OPEN_HOURS: tuple[str, ...] = tuple(f"open_hour_{h:02d}" for h in range(24))
OPEN_DAYS: tuple[str, ...] = tuple(f"open_dow_{d}" for d in range(7))
LATE_HOURS: tuple[str, ...] = tuple(f"late_open_hour_{h:02d}" for h in range(24))

#: Stored profile columns the affinities are read from; not model inputs themselves.
PROFILE_COLUMNS: tuple[str, ...] = (*OPEN_HOURS, *OPEN_DAYS, *LATE_HOURS, *SEND_HOUR_RATES)
_PROFILE_SET = frozenset(PROFILE_COLUMNS)
#: Columns :func:`engagement_inputs` derives from the send (numeric ones).
ENGAGEMENT_CONTEXT: tuple[str, ...] = (
    "local_hour",
    "local_weekday",
    "hour_affinity",
    "weekday_affinity",
    "send_hour_rate",
    "late_hour_affinity",
    "variant_click_lift",
)

#: Every column :func:`context_features` can give: what a send's hour and weekday decide.
HOUR_CONTEXT: tuple[str, ...] = (
    "hour_affinity",
    "late_hour_affinity",
    "late_hour_relative",
    "late_peak_distance",
    "send_hour_rate",
    "weekday_affinity",
)

#: ``profile(names)`` gives the (rows × len(names)) matrix of those stored features, or
#: ``None`` when they are not available.
Profile = Callable[[Sequence[str]], FloatArray | None]


def context_features(
    profile: Profile, hours: IntArray, days: IntArray, owners: IntArray | None = None
) -> dict[str, FloatArray]:
    """The profile values at each row's local hour and weekday.

    ``hour_affinity`` is the recipient's (cohort-smoothed) share of opens at the local hour:
    it lets the send-time model score hours a recipient was never mailed at, because the
    profile is pooled toward the cohort rather than learned from this recipient's sends alone.
    ``send_hour_rate`` is the recipient's (cohort-shrunk) open rate of emails sent in the
    send-hour bucket of the hour: unlike the profile, it does not echo the hour the history
    happened to be sent at. ``late_hour_affinity`` is ``hour_affinity`` over late opens only
    (see :mod:`features.engineering.sql`), which show when the person reads mail, summed over
    the hour and its two neighbours. ``weekday_affinity`` is the share of opens on the day.

    By default ``profile`` gives one row per row of ``hours``. With ``owners``, it gives one
    row per owner (a recipient) and row ``i`` reads owner ``owners[i]``'s profile: the
    candidate hours of one recipient then share one profile row, and the per-profile work
    (the late-open window, its peak) is done once per owner rather than once per hour.

    Examples
    --------
    >>> flat = lambda names: np.full((2, len(names)), 1 / len(names))
    >>> out = context_features(flat, np.array([3, 23]), np.array([0, 6]))
    >>> sorted(out)  # doctest: +NORMALIZE_WHITESPACE
    ['hour_affinity', 'late_hour_affinity', 'late_hour_relative', 'late_peak_distance',
     'send_hour_rate', 'weekday_affinity']
    >>> sorted(out) == sorted(HOUR_CONTEXT)
    True
    >>> out["hour_affinity"].round(4).tolist()
    [0.0417, 0.0417]
    >>> one = lambda names: np.arange(len(names), dtype=float)[None, :]
    >>> context_features(one, np.array([3, 23]), np.array([0, 6]), np.zeros(2, int))[
    ...     "hour_affinity"].tolist()
    [3.0, 23.0]
    """
    hour = np.asarray(hours, dtype=int) % 24
    day = np.asarray(days, dtype=int) % 7
    rows = np.arange(len(hour)) if owners is None else np.asarray(owners, dtype=int)
    out: dict[str, FloatArray] = {}
    if (opens := profile(OPEN_HOURS)) is not None:
        out["hour_affinity"] = opens[rows, hour]
    if (late := profile(LATE_HOURS)) is not None:
        window = hour_window(late)
        out["late_hour_affinity"] = window[rows, hour]
        out.update(late_peak_features(window, hour, owners))
    if (rates := profile(SEND_HOUR_RATES)) is not None:
        out["send_hour_rate"] = rates[rows, send_hour_bucket(hour)]
    if (week := profile(OPEN_DAYS)) is not None:
        out["weekday_affinity"] = week[rows, day]
    return out


def late_peak_features(
    window: FloatArray, hours: IntArray, owners: IntArray | None = None
) -> dict[str, FloatArray]:
    """Where each row's hour stands in its recipient's late-open window profile.

    ``late_hour_relative`` is the hour's window share over the recipient's largest one (1 at
    the best hour), and ``late_peak_distance`` the circular distance in hours (0-12) from the
    best hour; a flat profile scores every hour 1 and 0. Unlike the share itself, both rank a
    recipient's hours the same way whatever the profile's spread, which is what the send-time
    argmax compares. ``owners`` maps rows to rows of ``window`` as in
    :func:`context_features` (default: row ``i`` of ``window`` is row ``i``'s).

    Examples
    --------
    >>> window = np.array([[0.1] * 22 + [0.5, 0.2]])
    >>> out = late_peak_features(np.repeat(window, 3, axis=0), np.array([22, 23, 4]))
    >>> out["late_hour_relative"].round(2).tolist(), out["late_peak_distance"].tolist()
    ([1.0, 0.4, 0.2], [0.0, 1.0, 6.0])
    """
    hour = np.asarray(hours, dtype=int) % 24
    rows = np.arange(len(hour)) if owners is None else np.asarray(owners, dtype=int)
    top = window.max(axis=1)
    flat = window.min(axis=1) >= top
    peak = window.argmax(axis=1)
    top, flat, peak = top[rows], flat[rows], peak[rows]
    # A flat profile (no evidence, or the cohort's flat default) has every hour at the top.
    best = np.where(flat, hour, peak)
    gap = np.abs(hour - best)
    return {
        "late_hour_relative": window[rows, hour] / np.where(top > 0, top, 1.0),
        "late_peak_distance": np.minimum(gap, 24 - gap).astype(float),
    }


#: Stored columns ``variant_click_lift`` is derived from.
LIFT_INPUTS: tuple[str, ...] = (
    "variant_click_rate_90d",
    "click_rate_90d",
    "variant_deliveries_90d",
)


def _lift(columns: Mapping[str, ArrayLike]) -> FloatArray:
    # The pair's click rate over the person's own; 1 (no evidence either way) without the
    # pair's deliveries or the person's rate. Both rates are shrunk, so small counts stay near 1.
    variant = np.asarray(columns["variant_click_rate_90d"], dtype=float)
    overall = np.asarray(columns["click_rate_90d"], dtype=float)
    seen = (np.asarray(columns["variant_deliveries_90d"], dtype=float) > 0) & (overall > 0)
    return np.where(seen, variant / np.where(overall > 0, overall, 1.0), 1.0)


def engagement_inputs(
    stored: Mapping[str, ArrayLike],
    variant_ids: Sequence[str | None],
    local_hour: ArrayLike,
    local_weekday: ArrayLike,
    context: Mapping[str, FloatArray] | None = None,
) -> dict[str, Any]:
    """The engagement model's input columns for ``n`` sends, from what the store holds.

    Parameters
    ----------
    stored
        Per send, as columns of length ``n``: the recipient's features of the
        ``engagement_v2`` service (engagement and the send-time profiles) and the per-variant
        features of the send's variant (:data:`~features.engineering.tables.VARIANT_FEATURES`,
        cold-start defaults for a pair never seen).
    variant_ids
        The variant of each send.
    local_hour, local_weekday
        The send's local hour (0-23) and weekday (Monday = 0) in the recipient's time zone.
    context
        :func:`context_features` of these sends at ``local_hour`` and ``local_weekday``,
        when the caller has them already (serving computes them for every candidate hour
        and passes the chosen hour's); computed here from ``stored`` otherwise.

    Returns
    -------
    dict
        ``stored`` without the profile columns, plus ``variant_id`` and the derived
        :data:`ENGAGEMENT_CONTEXT` columns: ``local_hour``, ``local_weekday``, the hour and
        weekday affinities of :func:`context_features`, and ``variant_click_lift`` (the
        pair's smoothed click rate over the recipient's overall one).

    Examples
    --------
    >>> stored = {n: np.full(2, 1 / 24) for n in OPEN_HOURS + LATE_HOURS}
    >>> stored |= {n: np.full(2, 1 / 7) for n in OPEN_DAYS}
    >>> stored |= {n: np.full(2, 0.2) for n in SEND_HOUR_RATES}
    >>> stored |= {"click_rate_90d": [0.05, 0.05], "variant_click_rate_90d": [0.1, 0.0],
    ...            "variant_deliveries_90d": [4, 0]}
    >>> row = engagement_inputs(stored, ["v0", "v1"], [9, 9], [0, 0])
    >>> row["variant_click_lift"].tolist(), row["send_hour_rate"].tolist()
    ([2.0, 1.0], [0.2, 0.2])
    >>> "open_hour_09" in row
    False
    """
    hours = np.asarray(local_hour, dtype=int)
    days = np.asarray(local_weekday, dtype=int)

    def profile(names: Sequence[str]) -> FloatArray | None:
        if not all(n in stored for n in names):
            return None
        return np.column_stack([np.asarray(stored[n], dtype=float) for n in names])

    out: dict[str, Any] = {k: v for k, v in stored.items() if k not in _PROFILE_SET}
    out["variant_id"] = list(variant_ids)
    out["local_hour"] = hours
    out["local_weekday"] = days
    out.update(context_features(profile, hours, days) if context is None else context)
    out["variant_click_lift"] = _lift(stored)
    return out


def engagement_rows(
    recipient: Mapping[str, FeatureValue],
    variants: Mapping[str, Mapping[str, FeatureValue]],
    local_hour: int,
    local_weekday: int,
) -> dict[str, Any]:
    """:func:`engagement_inputs` of one recipient's send, one row per candidate variant.

    ``recipient`` is the recipient's online feature row, ``variants`` maps each candidate
    variant id to its per-variant row (``FeatureClient.variant_features``); rows come out
    in the order of ``variants``.

    Examples
    --------
    >>> rows = engagement_rows({"click_rate_90d": 0.05}, {"v0": {}, "v1": {}}, 9, 0)
    >>> rows["variant_id"], rows["variant_click_lift"].tolist()
    (['v0', 'v1'], [1.0, 1.0])
    """
    ids = list(variants)
    stored: dict[str, Any] = {name: [value] * len(ids) for name, value in recipient.items()}
    for name, default in VARIANT_DEFAULTS.items():
        stored[name] = [variants[v].get(name, default) for v in ids]
    return engagement_inputs(stored, ids, [local_hour] * len(ids), [local_weekday] * len(ids))
