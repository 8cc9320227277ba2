"""The feature SQL: plain statements that run unchanged on DuckDB and on Spark SQL.

The pipeline is a list of named ``SELECT`` statements; an engine runs them in order, keeping
each result as a temporary table (DuckDB) or view (Spark) under its name. Inputs are four
relations registered by the caller:

``events``
    the event log (``EVENT_SCHEMA``);
``calendar``
    ``day`` (DATE) and ``day_num`` (days since 1970-01-01), covering the log;
``recipients``
    ``recipient_id``, ``timezone`` (validated IANA names; missing recipients mean UTC);
``tz_offsets``
    ``timezone``, ``day_num``, ``offset_minutes``: UTC offset at noon UTC of that day.

Portability is why the SQL avoids date arithmetic, time-zone functions and ``dayofweek``
(whose results differ between engines): days are integers from ``calendar``, local time is the
UTC hour and minute plus an offset from ``tz_offsets`` (exact except for the few hours around a
DST change), and weekday is ``(day_num + 3) % 7`` with Monday = 0 (1970-01-01 was a Thursday).

Snapshots. The snapshot of day ``D`` (``event_timestamp`` = ``D`` 00:00 UTC) aggregates the
per-day rows of days ``D - w`` to ``D - 1``, i.e. exactly the events strictly before ``D``.

Send-hour open rates. Each send is followed for 24 hours: it counts as opened when a human
open of the same campaign comes within that time. Sends are bucketed by the local hour they
went out at (``SEND_BUCKET_HOURS``-hour buckets) and, with their outcome, counted on the day
after the send, when the 24 hours are over at the latest; the snapshot of ``D`` thus sees only
outcomes that are complete before ``D``. The open-time profile (hour of the *open*) mostly
echoes the hour the history was sent at, since many opens follow delivery closely; the
open rate by hour of the *send* is what a send-time choice changes.

Late opens. An open at least ``LATE_OPEN_SECONDS`` after the first delivery of its campaign
is late: the person did not open on arrival but when they chose to read mail, so the local
hours of late opens show the preferred hour without the echo of the send hour. Their profile
is smoothed toward the cohort like the open-time profile.

Machine opens. An open flagged ``is_machine_open = true`` is a machine open and one flagged
``false`` is human. An unflagged open (null) counts as a machine open when it happens within
``MACHINE_OPEN_SECONDS`` after the first delivery of the same campaign to the same recipient:
privacy proxies such as Apple Mail Privacy Protection fetch the pixel on delivery, people take
longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from features.engineering.tables import NEVER_DAYS, SEND_BUCKET_HOURS, WINDOWS

__all__ = [
    "COHORT_RATE_STRENGTH",
    "LATE_OPEN_SECONDS",
    "MACHINE_OPEN_SECONDS",
    "PRIOR_STRENGTH",
    "PROFILE_STRENGTH",
    "SEND_BUCKETS",
    "SEND_RATE_STRENGTH",
    "Statement",
    "feature_statements",
]

#: Unflagged opens this soon after delivery are treated as machine opens.
MACHINE_OPEN_SECONDS: Final = 120
#: Pseudo-deliveries of the population rate added to every recipient's rate (Beta prior).
PRIOR_STRENGTH: Final = 10.0
#: Pseudo-opens of the cohort's open-time profile added to every recipient's profile.
PROFILE_STRENGTH: Final = 5.0
#: Number of send-hour buckets; bucket ``b`` holds local hours ``b * SEND_BUCKET_HOURS`` on.
SEND_BUCKETS: Final = 24 // SEND_BUCKET_HOURS
#: Pseudo-sends of the cohort's bucket rate added to a recipient's sends in each bucket.
SEND_RATE_STRENGTH: Final = 2.0
#: Pseudo-sends of the cohort's all-hours rate added to the cohort's sends in each bucket.
COHORT_RATE_STRENGTH: Final = 50.0
#: Opens this long after the first delivery are late: the person chose when to read.
LATE_OPEN_SECONDS: Final = 2 * 3600
#: Seconds after a send within which a human open of its campaign counts as its outcome.
_OPEN_WINDOW_SECONDS: Final = 24 * 3600
#: Mean lifetimes (days) of the decayed scores: the score itself, and trend's fast and slow.
SCORE_TAU: Final = 14.0
FAST_TAU: Final = 7.0
SLOW_TAU: Final = 28.0

_LONGEST: Final = max(WINDOWS)
_ENGAGE_WEIGHT = "(opens + 2 * clicks + 4 * conversions)"


def _f(value: float) -> str:
    # A bare 14.0 is a DECIMAL in DuckDB, and EXP/division on it lose digits; DOUBLE is
    # what Spark uses, so both engines agree to the last bits.
    return f"CAST({value!r} AS DOUBLE)"


@dataclass(frozen=True, slots=True)
class Statement:
    """One step of the pipeline: its result is kept under ``name``."""

    name: str
    sql: str


def _labelled_events(end_day: int) -> str:
    # Machine-open heuristic against the first delivery of the same campaign.
    return f"""
SELECT e.recipient_id, e.kind, e.value, c.day_num, e.campaign_id, e.occurred_at,
  CASE
    WHEN e.kind <> 'open' THEN 0
    WHEN e.is_machine_open IS NOT NULL THEN CASE WHEN e.is_machine_open THEN 1 ELSE 0 END
    WHEN d.first_deliver IS NOT NULL AND e.occurred_at >= d.first_deliver
      AND e.occurred_at < d.first_deliver + INTERVAL {MACHINE_OPEN_SECONDS} SECOND THEN 1
    ELSE 0
  END AS is_machine,
  CASE
    WHEN e.kind = 'open' AND d.first_deliver IS NOT NULL
      AND e.occurred_at >= d.first_deliver + INTERVAL {LATE_OPEN_SECONDS} SECOND THEN 1
    ELSE 0
  END AS is_late,
  HOUR(e.occurred_at) * 60 + MINUTE(e.occurred_at) + COALESCE(o.offset_minutes, 0) AS local_min
FROM events e
JOIN calendar c ON c.day = CAST(e.occurred_at AS DATE)
LEFT JOIN recipients r ON r.recipient_id = e.recipient_id
LEFT JOIN tz_offsets o ON o.timezone = r.timezone AND o.day_num = c.day_num
LEFT JOIN (
  SELECT recipient_id, campaign_id, MIN(occurred_at) AS first_deliver
  FROM events WHERE kind = 'deliver' AND campaign_id IS NOT NULL
  GROUP BY recipient_id, campaign_id
) d ON e.kind = 'open' AND d.recipient_id = e.recipient_id AND d.campaign_id = e.campaign_id
WHERE c.day_num < {end_day}"""


def _daily() -> str:
    human_open = "kind = 'open' AND is_machine = 0"
    local_hour = "CAST(FLOOR(((local_min + 1440) % 1440) / 60.0) AS INT)"
    local_dow = "(((day_num + 3 + CAST(FLOOR(local_min / 1440.0) AS INT)) % 7) + 7) % 7"
    hours = ",\n  ".join(
        f"SUM(CASE WHEN {human_open} AND {local_hour} = {h} THEN 1 ELSE 0 END) AS oh_{h}"
        for h in range(24)
    )
    late = ",\n  ".join(
        f"SUM(CASE WHEN {human_open} AND is_late = 1 AND {local_hour} = {h} THEN 1 ELSE 0 END)"
        f" AS ol_{h}"
        for h in range(24)
    )
    dows = ",\n  ".join(
        f"SUM(CASE WHEN {human_open} AND {local_dow} = {d} THEN 1 ELSE 0 END) AS od_{d}"
        for d in range(7)
    )
    return f"""
SELECT recipient_id, day_num,
  SUM(CASE WHEN kind = 'send' THEN 1 ELSE 0 END) AS sends,
  SUM(CASE WHEN kind = 'deliver' THEN 1 ELSE 0 END) AS deliveries,
  SUM(CASE WHEN {human_open} THEN 1 ELSE 0 END) AS opens,
  SUM(CASE WHEN kind = 'open' AND is_machine = 1 THEN 1 ELSE 0 END) AS machine_opens,
  SUM(CASE WHEN kind = 'click' THEN 1 ELSE 0 END) AS clicks,
  SUM(CASE WHEN kind = 'convert' THEN 1 ELSE 0 END) AS conversions,
  SUM(CASE WHEN kind = 'convert' THEN COALESCE(value, 0.0) ELSE 0.0 END) AS revenue,
  SUM(CASE WHEN kind = 'unsubscribe' THEN 1 ELSE 0 END) AS unsubscribes,
  SUM(CASE WHEN kind = 'complaint' THEN 1 ELSE 0 END) AS complaints,
  SUM(CASE WHEN kind = 'bounce' THEN 1 ELSE 0 END) AS bounces,
  {hours},
  {late},
  {dows}
FROM labelled_events
GROUP BY recipient_id, day_num"""


def _send_outcomes() -> str:
    # One row per send: its local send-hour bucket and whether a human open of the same
    # campaign followed within 24 hours. ``day_num`` is the day after the send, when the
    # outcome is known (see the module docstring).
    local_hour = "CAST(FLOOR(((s.local_min + 1440) % 1440) / 60.0) AS INT)"
    return f"""
SELECT s.recipient_id, s.day_num + 1 AS day_num,
  CAST(FLOOR({local_hour} / {_f(float(SEND_BUCKET_HOURS))}) AS INT) AS bucket,
  MAX(CASE WHEN o.recipient_id IS NULL THEN 0 ELSE 1 END) AS opened
FROM (
  SELECT recipient_id, campaign_id, occurred_at, day_num, local_min
  FROM labelled_events WHERE kind = 'send'
) s
LEFT JOIN (
  SELECT recipient_id, campaign_id, occurred_at
  FROM labelled_events WHERE kind = 'open' AND is_machine = 0 AND campaign_id IS NOT NULL
) o ON o.recipient_id = s.recipient_id AND o.campaign_id = s.campaign_id
  AND o.occurred_at >= s.occurred_at
  AND o.occurred_at < s.occurred_at + INTERVAL {_OPEN_WINDOW_SECONDS} SECOND
GROUP BY s.recipient_id, s.campaign_id, s.occurred_at, s.day_num, s.local_min"""


def _send_daily() -> str:
    cols = [f"SUM(CASE WHEN bucket = {b} THEN 1 ELSE 0 END) AS ss_{b}" for b in range(SEND_BUCKETS)]
    cols += [
        f"SUM(CASE WHEN bucket = {b} THEN opened ELSE 0 END) AS so_{b}" for b in range(SEND_BUCKETS)
    ]
    body = ",\n  ".join(cols)
    return (
        f"SELECT recipient_id, day_num,\n  {body}\n"
        "FROM send_outcomes GROUP BY recipient_id, day_num"
    )


_SEND_PROFILE = (
    *(f"ss_{b}" for b in range(SEND_BUCKETS)),
    *(f"so_{b}" for b in range(SEND_BUCKETS)),
)

_LAST = {
    "send": "sends",
    "open": "opens",
    "click": "clicks",
    "conversion": "conversions",
    "bounce": "bounces",
    "delivery": "deliveries",
}
#: The "days since" columns that are features; the others only derive ``has_bounced``.
_SINCE_FEATURES = ("send", "open", "click", "conversion")
_TOTALS = ("conversions", "revenue", "unsubscribes", "complaints", "bounces")


def _prior(grid_start: int) -> str:
    # State from before the grid, so unbounded windows need not re-read all history as rows.
    before = f"day_num < {grid_start}"
    lasts = ",\n  ".join(
        f"MAX(CASE WHEN {before} AND {col} > 0 THEN day_num END) AS last_{name}"
        for name, col in _LAST.items()
    )
    totals = ",\n  ".join(
        f"SUM(CASE WHEN {before} THEN {c} ELSE 0 END) AS prior_{c}" for c in _TOTALS
    )
    return f"""
SELECT recipient_id, MIN(day_num) AS first_day,
  {lasts},
  {totals}
FROM daily GROUP BY recipient_id"""


def _grid(grid_start: int, last_day: int) -> str:
    zero_cols = [
        "sends", "deliveries", "opens", "machine_opens", "clicks", "conversions", "revenue",
        "unsubscribes", "complaints", "bounces",
        *(f"oh_{h}" for h in range(24)), *(f"od_{d}" for d in range(7)),
        *(f"ol_{h}" for h in range(24)),
    ]  # fmt: skip
    cols = ",\n  ".join(
        [f"COALESCE(d.{c}, 0) AS {c}" for c in zero_cols]
        + [f"COALESCE(sd.{c}, 0) AS {c}" for c in _SEND_PROFILE]
    )
    return f"""
SELECT p.recipient_id, c.day_num, c.day, p.first_day,
  {cols}
FROM prior p
JOIN calendar c ON c.day_num >= p.first_day AND c.day_num >= {grid_start}
  AND c.day_num <= {last_day}
LEFT JOIN daily d ON d.recipient_id = p.recipient_id AND d.day_num = c.day_num
LEFT JOIN send_daily sd ON sd.recipient_id = p.recipient_id AND sd.day_num = c.day_num"""


_CUM = (
    "OVER (PARTITION BY recipient_id ORDER BY day_num "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
)
_ORDER = "OVER (PARTITION BY recipient_id ORDER BY day_num)"
_COUNTS = ("sends", "deliveries", "opens", "machine_opens", "clicks", "conversions", "revenue")
_PROFILE = (
    *(f"oh_{h}" for h in range(24)),
    *(f"od_{d}" for d in range(7)),
    *(f"ol_{h}" for h in range(24)),
    *_SEND_PROFILE,
)
_TAUS = {"score": SCORE_TAU, "fast": FAST_TAU, "slow": SLOW_TAU}


def _cumulative(anchor: int) -> str:
    # Running totals per recipient, one cheap streaming window each. Window sums over the
    # last w days are then differences of two lagged running totals (the grid has a row for
    # every day, so rows are days): far faster than dozens of sliding frames.
    parts = [f"SUM({c}) {_CUM} AS cum_{c}" for c in (*_COUNTS, *_TOTALS[2:], *_PROFILE)]
    parts += [
        f"MAX(CASE WHEN {col} > 0 THEN day_num END) {_CUM} AS cum_last_{name}"
        for name, col in _LAST.items()
    ]
    # sum_d w_d exp(-(D-d)/tau) = exp(-(D-a)/tau) * sum_d w_d exp((d-a)/tau); the anchor a is
    # the grid start, so exponents stay below (grid length)/tau.
    parts += [
        f"SUM({_ENGAGE_WEIGHT} * EXP((day_num - {anchor}) / {_f(tau)})) {_CUM} AS cum_{name}"
        for name, tau in _TAUS.items()
    ]
    body = ",\n  ".join(parts)
    return f"SELECT recipient_id, day_num, day, first_day,\n  {body}\nFROM grid"


def _sum_last(column: str, days: int) -> str:
    """Sum of ``column`` over the ``days`` rows before the current one."""
    return (
        f"(COALESCE(LAG(cum_{column}, 1) {_ORDER}, 0) "
        f"- COALESCE(LAG(cum_{column}, {days + 1}) {_ORDER}, 0))"
    )


def _windows(anchor: int) -> str:
    parts = [
        f"ROUND({_sum_last(c, w)}, 6) AS {c}_{w}d"
        if c == "revenue"
        else f"{_sum_last(c, w)} AS {c}_{w}d"
        for w in WINDOWS
        for c in _COUNTS
    ]
    parts.append(f"{_sum_last('sends', 1)} AS sends_1d")
    parts += [f"LAG(cum_last_{name}, 1) {_ORDER} AS grid_last_{name}" for name in _LAST]
    parts += [f"COALESCE(LAG(cum_{c}, 1) {_ORDER}, 0) AS grid_{c}" for c in _TOTALS]
    parts += [f"{_sum_last(c, _LONGEST)} AS n_{c}" for c in _PROFILE]
    parts += [
        f"EXP(-(day_num - {anchor}) / {_f(tau)}) * {_sum_last(name, _LONGEST)} AS {alias}"
        for (name, tau), alias in zip(
            _TAUS.items(), ("engagement_score", "score_fast", "score_slow"), strict=True
        )
    ]
    body = ",\n  ".join(parts)
    return f"SELECT recipient_id, day_num, day, first_day,\n  {body}\nFROM cumulative"


def _snapshots(first_day: int) -> str:
    since = ",\n  ".join(
        f"COALESCE(day_num - COALESCE(w.grid_last_{name}, p.last_{name}), {NEVER_DAYS}) "
        f"AS days_since_last_{name}"
        for name in _LAST
    )
    totals = ",\n  ".join(f"w.grid_{c} + COALESCE(p.prior_{c}, 0) AS total_{c}" for c in _TOTALS)
    return f"""
SELECT w.*, COALESCE(r.timezone, 'UTC') AS timezone,
  {since},
  {totals}
FROM windows w
JOIN prior p ON p.recipient_id = w.recipient_id
LEFT JOIN recipients r ON r.recipient_id = w.recipient_id
WHERE w.day_num >= {first_day} AND w.day_num > w.first_day"""


def _population() -> str:
    # Population rates per snapshot day: the prior mean the recipients' rates shrink toward.
    sums = ",\n  ".join(
        f"SUM({c}_{w}d) AS pop_{c}_{w}d"
        for w in (30, 90)
        for c in ("deliveries", "opens", "clicks", "conversions")
    )
    return f"SELECT day_num,\n  {sums}\nFROM snapshots GROUP BY day_num"


def _rate(num: str, w: int) -> str:
    pop = (
        f"CASE WHEN p.pop_deliveries_{w}d > 0 "
        f"THEN p.pop_{num}_{w}d / p.pop_deliveries_{w}d ELSE 0.0 END"
    )
    return f"(s.{num}_{w}d + {PRIOR_STRENGTH} * ({pop})) / (s.deliveries_{w}d + {PRIOR_STRENGTH})"


def _engagement() -> str:
    counts = ("sends", "deliveries", "opens", "machine_opens", "clicks", "conversions")
    cols = [f"CAST(s.{c}_{w}d AS BIGINT) AS {c}_{w}d" for w in WINDOWS for c in counts]
    cols += [f"CAST(s.revenue_{w}d AS DOUBLE) AS revenue_{w}d" for w in WINDOWS]
    names = {"opens": "open_rate", "clicks": "click_rate", "conversions": "conversion_rate"}
    cols += [f"{_rate(num, w)} AS {name}_{w}d" for w in (30, 90) for num, name in names.items()]
    cols += [
        f"CAST(s.days_since_last_{n} AS BIGINT) AS days_since_last_{n}" for n in _SINCE_FEATURES
    ]
    all_opens = "(s.opens_90d + s.machine_opens_90d)"
    cols += [
        "s.engagement_score AS engagement_score",
        f"s.score_fast / {_f(FAST_TAU)} - s.score_slow / {_f(SLOW_TAU)} AS engagement_trend",
        "CAST(s.sends_1d AS BIGINT) AS sends_1d",
        "CASE WHEN s.total_unsubscribes > 0 THEN 1 ELSE 0 END AS is_unsubscribed",
        "CASE WHEN s.total_complaints > 0 THEN 1 ELSE 0 END AS has_complained",
        # A hard bounce: the last bounce came after the last delivery. A soft bounce is
        # followed by a delivery (a retry or the next campaign) and clears (day resolution).
        "CASE WHEN s.total_bounces > 0 AND s.days_since_last_bounce < s.days_since_last_delivery"
        " THEN 1 ELSE 0 END AS has_bounced",
        f"CASE WHEN {all_opens} > 0 THEN s.machine_opens_90d / {all_opens} ELSE 0.0 END"
        " AS machine_open_share_90d",
        "CAST(s.total_conversions AS BIGINT) AS conversions_total",
        "CAST(s.total_revenue AS DOUBLE) AS revenue_total",
        "CASE WHEN s.total_conversions > 0 THEN s.total_revenue / s.total_conversions"
        " ELSE 0.0 END AS avg_order_value",
        "CAST(s.day_num - s.first_day AS BIGINT) AS tenure_days",
    ]
    body = ",\n  ".join(cols)
    return (
        f"SELECT s.recipient_id, s.day, s.day_num,\n  {body}\n"
        "FROM snapshots s JOIN population p ON p.day_num = s.day_num"
    )


def _cohort() -> str:
    # The cohort is the time zone: people in one zone share working hours and weekends.
    sums = ", ".join(
        [f"SUM(n_oh_{h}) AS c_oh_{h}" for h in range(24)]
        + [f"SUM(n_od_{d}) AS c_od_{d}" for d in range(7)]
        + [f"SUM(n_ol_{h}) AS c_ol_{h}" for h in range(24)]
        + [f"SUM(n_{c}) AS c_{c}" for c in _SEND_PROFILE]
    )
    return f"SELECT timezone, day_num, {sums}\nFROM snapshots GROUP BY timezone, day_num"


def _send_hour_rates() -> list[str]:
    # Two-level empirical Bayes with additive (Beta) priors. The cohort's rate for bucket b is
    # shrunk toward the cohort's rate over all hours with COHORT_RATE_STRENGTH pseudo-sends, so
    # a bucket a zone was never mailed at gets the zone's overall rate; the recipient's rate is
    # shrunk toward that with SEND_RATE_STRENGTH pseudo-sends. A recipient with no sends in a
    # bucket gets the cohort's rate there.
    c_sends = " + ".join(f"c.c_ss_{b}" for b in range(SEND_BUCKETS))
    c_opens = " + ".join(f"c.c_so_{b}" for b in range(SEND_BUCKETS))
    c_all = f"(CASE WHEN {c_sends} > 0 THEN ({c_opens}) / CAST({c_sends} AS DOUBLE) ELSE 0.0 END)"
    m, k = _f(COHORT_RATE_STRENGTH), _f(SEND_RATE_STRENGTH)
    n = " + ".join(f"s.n_ss_{b}" for b in range(SEND_BUCKETS))
    cols = [f"CAST({n} AS BIGINT) AS send_hour_sends_90d"]
    for b in range(SEND_BUCKETS):
        cohort = f"((c.c_so_{b} + {m} * {c_all}) / (c.c_ss_{b} + {m}))"
        cols.append(
            f"(s.n_so_{b} + {k} * {cohort}) / (s.n_ss_{b} + {k})"
            f" AS send_hour_rate_{b * SEND_BUCKET_HOURS:02d}"
        )
    return cols


def _send_time() -> str:
    n = " + ".join(f"s.n_oh_{h}" for h in range(24))
    c_h = " + ".join(f"c.c_oh_{h}" for h in range(24))
    c_d = " + ".join(f"c.c_od_{d}" for d in range(7))
    k = _f(PROFILE_STRENGTH)
    # Cohort shares get add-one smoothing so an empty cohort falls back to a flat profile.
    cols = [f"CAST({n} AS BIGINT) AS profile_opens_90d"]
    cols += [
        f"(s.n_oh_{h} + {k} * (c.c_oh_{h} + {_f(1.0)}) / ({c_h} + {_f(24.0)})) / ({n} + {k})"
        f" AS open_hour_{h:02d}"
        for h in range(24)
    ]
    cols += [
        f"(s.n_od_{d} + {k} * (c.c_od_{d} + {_f(1.0)}) / ({c_d} + {_f(7.0)})) / ({n} + {k})"
        f" AS open_dow_{d}"
        for d in range(7)
    ]
    n_late = " + ".join(f"s.n_ol_{h}" for h in range(24))
    c_late = " + ".join(f"c.c_ol_{h}" for h in range(24))
    cols += [f"CAST({n_late} AS BIGINT) AS late_opens_90d"]
    cols += [
        f"(s.n_ol_{h} + {k} * (c.c_ol_{h} + {_f(1.0)}) / ({c_late} + {_f(24.0)}))"
        f" / ({n_late} + {k}) AS late_open_hour_{h:02d}"
        for h in range(24)
    ]
    cols += _send_hour_rates()
    body = ",\n  ".join(cols)
    return (
        f"SELECT s.recipient_id, s.day, s.day_num, s.timezone,\n  {body}\n"
        "FROM snapshots s JOIN cohort c ON c.timezone = s.timezone AND c.day_num = s.day_num"
    )


def feature_statements(first_day: int, last_day: int) -> list[Statement]:
    """The pipeline computing snapshots of days ``first_day`` … ``last_day`` (inclusive).

    Days are ``day_num`` integers (days since 1970-01-01). The results named ``engagement``
    and ``send_time`` are the two feature tables; they carry ``day`` and ``day_num`` but no
    timestamps, which the writer adds in the engine's own type.

    Parameters
    ----------
    first_day, last_day
        Snapshot days to compute. Events from ``first_day - 90`` on are read as rows; older
        ones only through per-recipient totals and last-seen days.

    Examples
    --------
    >>> [s.name for s in feature_statements(20_000, 20_010)][-2:]
    ['engagement', 'send_time']
    """
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")
    grid_start = first_day - _LONGEST
    return [
        Statement("labelled_events", _labelled_events(last_day)),
        Statement("daily", _daily()),
        Statement("send_outcomes", _send_outcomes()),
        Statement("send_daily", _send_daily()),
        Statement("prior", _prior(grid_start)),
        Statement("grid", _grid(grid_start, last_day)),
        Statement("cumulative", _cumulative(grid_start)),
        Statement("windows", _windows(grid_start)),
        Statement("snapshots", _snapshots(first_day)),
        Statement("population", _population()),
        Statement("cohort", _cohort()),
        Statement("engagement", _engagement()),
        Statement("send_time", _send_time()),
    ]
