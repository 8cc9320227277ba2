"""The feature SQL: plain statements that run unchanged on DuckDB and on Spark SQL.

The pipeline is a list of named ``SELECT`` statements; an engine runs them in order, keeping
each result as a temporary table (DuckDB) or view (Spark) under its name. The steps over
every recipient (:func:`shared_statements`: labelled events, send outcomes, cohort and
population sums) come first; the per-recipient steps (:func:`recipient_statements`) can then
run for all recipients at once or for ranges of ``recipient_id`` in turn, with the same
results. Inputs are four relations registered by the caller:

``events``
    the event log (``EVENT_SCHEMA``);
``calendar``
    ``day`` (DATE) and ``day_num`` (days since 1970-01-01), covering the log;
``recipients``
    ``recipient_id``, ``timezone`` (validated IANA names; missing recipients mean UTC),
    ``created_day``: the ``day_num`` the recipient joined, null when unknown;
``tz_offsets``
    ``timezone``, ``day_num``, ``offset_minutes``: UTC offset at noon UTC of that day.

Portability is why the SQL avoids date arithmetic, time-zone functions and ``dayofweek``
(whose results differ between engines): days are integers from ``calendar``, local time is the
UTC hour and minute plus an offset from ``tz_offsets`` (exact except for the few hours around a
DST change), and weekday is ``(day_num + 3) % 7`` with Monday = 0 (1970-01-01 was a Thursday).

Snapshots. The snapshot of day ``D`` (``event_timestamp`` = ``D`` 00:00 UTC) aggregates the
per-day rows of days ``D - w`` to ``D - 1``, i.e. exactly the events strictly before ``D``.

Running totals. The grid has a row per recipient and day ``D`` holding the counts of day
``D - 1``; one running sum per column gives the totals of the days before ``D``, and the sum
over the ``w`` days before ``D`` is that total minus the one on row ``D - w`` (an equi-join,
no range frame). The cohort and population sums need only per zone and day counts, so they
are computed from the events, not from the per-recipient grid: a recipient without a
snapshot on ``D`` has no events before ``D`` and adds nothing either way.

Packed counts. The eighty integer counts of the grid are packed into a few BIGINT lanes of
fields ``bits`` wide (``52 // bits`` fields a lane, so every lane is exact in DOUBLE too);
sums and differences of lanes are lanes of sums and differences as long as no field leaves
``[0, 2**bits)``, which holds when ``2**bits`` exceeds the most events of one recipient
(the ``max_events`` the caller passes). A dozen running sums then replace eighty. The
per-day counts are packed as they are counted: each event adds a power of two to the lane of
each field it counts in (its kind; for a human open its local hour, weekday and late hour),
so ``daily`` sums a dozen lanes instead of counting eighty conditions per event.

Tenure. Days from the day the recipient joined (``created_day`` of ``recipients``) to the
snapshot, or from the day of the recipient's first event when that is earlier or the join
day is unknown: a history never starts after its first event.

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
    "RecipientRange",
    "Statement",
    "feature_statements",
    "machine_open",
    "recipient_statements",
    "shared_statements",
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
#: ``(lo, hi)``: recipients with ``lo <= recipient_id < hi``; ``None`` leaves a side open.
RecipientRange = tuple[str | None, str | None]


def _f(value: float) -> str:
    # A bare 14.0 is a DECIMAL in DuckDB, and EXP/division on it lose digits; DOUBLE is
    # what Spark uses, so both engines agree to the last bits.
    return f"CAST({value!r} AS DOUBLE)"


@dataclass(frozen=True, slots=True)
class Statement:
    """One step of the pipeline: its result is kept under ``name``."""

    name: str
    sql: str


def machine_open(event: str, deliveries: str) -> str:
    """SQL: 1 when the row ``event`` is a machine open, else 0 (see the module docstring).

    ``deliveries`` is the alias of a relation with the ``first_deliver`` time of the event's
    campaign to its recipient.

    >>> "is_machine_open" in machine_open("e", "d")
    True
    """
    e, d = event, deliveries
    return f"""CASE
    WHEN {e}.kind <> 'open' THEN 0
    WHEN {e}.is_machine_open IS NOT NULL THEN CASE WHEN {e}.is_machine_open THEN 1 ELSE 0 END
    WHEN {d}.first_deliver IS NOT NULL AND {e}.occurred_at >= {d}.first_deliver
      AND {e}.occurred_at < {d}.first_deliver + INTERVAL {MACHINE_OPEN_SECONDS} SECOND THEN 1
    ELSE 0
  END"""


def _labelled_events(end_day: int) -> str:
    # Machine-open heuristic against the first delivery of the same campaign.
    return f"""
SELECT e.recipient_id, e.kind, e.value, c.day_num, e.campaign_id, e.occurred_at,
  {machine_open("e", "d")} AS is_machine,
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


_HUMAN_OPEN = "kind = 'open' AND is_machine = 0"
_LOCAL_HOUR = "CAST(FLOOR(((local_min + 1440) % 1440) / 60.0) AS INT)"
_LOCAL_DOW = "(((day_num + 3 + CAST(FLOOR(local_min / 1440.0) AS INT)) % 7) + 7) % 7"


def _in_range(recipients: RecipientRange) -> str:
    lo, hi = recipients
    parts = ["1 = 1"]
    if lo is not None:
        parts.append(f"recipient_id >= {_quote(lo)}")
    if hi is not None:
        parts.append(f"recipient_id < {_quote(hi)}")
    return " AND ".join(parts)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _event_fields() -> list[tuple[str, tuple[str, ...]]]:
    """Per event, the grid fields it adds one to: the count of its kind and, for a human
    open, the fields of its local hour, weekday and (if late) late-open hour. Each item is
    the SQL of a field index into ``_FIELDS`` (NULL: none) and the fields it can name."""
    by_kind = (
        ("kind = 'send'", "sends"),
        ("kind = 'deliver'", "deliveries"),
        (_HUMAN_OPEN, "opens"),
        ("kind = 'open' AND is_machine = 1", "machine_opens"),
        ("kind = 'click'", "clicks"),
        ("kind = 'convert'", "conversions"),
        ("kind = 'unsubscribe'", "unsubscribes"),
        ("kind = 'complaint'", "complaints"),
        ("kind = 'bounce'", "bounces"),
    )
    kind = "CASE " + " ".join(f"WHEN {c} THEN {_FIELDS.index(f)}" for c, f in by_kind) + " END"
    late = f"{_HUMAN_OPEN} AND is_late = 1"
    return [
        (kind, tuple(f for _, f in by_kind)),
        (_field_of(_HUMAN_OPEN, "oh", _LOCAL_HOUR), _HOURS),
        (_field_of(_HUMAN_OPEN, "od", _LOCAL_DOW), _DOWS),
        (_field_of(late, "ol", _LOCAL_HOUR), _LATE_HOURS),
    ]


def _field_of(condition: str, group: str, offset: str) -> str:
    # ``{group}_0`` … are contiguous in ``_FIELDS``, so field ``{group}_k`` is the first + k.
    return f"CASE WHEN {condition} THEN {_FIELDS.index(f'{group}_0')} + {offset} END"


def _packed_counts(
    source: str, fields: list[tuple[str, tuple[str, ...]]], packing: _Packing
) -> tuple[str, list[str]]:
    """The FROM clause and the lane sums that count, per group, the fields named by the rows
    of ``source`` (``fields`` as in :func:`_event_fields`).

    A row adds ``2 ** (bits * k)`` to the lane holding its field at position ``k``, so one
    SUM per lane replaces one COUNT per field; no field of a group exceeds the group's count,
    which :func:`recipient_statements` bounds by ``max_events``.
    """
    per_lane, n = packing.per_lane, len(fields)
    index = ", ".join(f"{sql} AS f_{j}" for j, (sql, _) in enumerate(fields))
    lane = ", ".join(
        f"CAST(FLOOR(f_{j} / {_f(float(per_lane))}) AS INT) AS l_{j}" for j in range(n)
    )
    bit = ", ".join(
        f"CAST(POWER(2, {packing.bits} * (f_{j} - {per_lane} * l_{j})) AS BIGINT) AS b_{j}"
        for j in range(n)
    )
    # One step per derived column: an alias cannot be read in its own SELECT on Spark.
    source = (
        f"(SELECT *, {bit} FROM (SELECT *, {lane} FROM (SELECT *, {index} FROM {source}) i) l) b"
    )
    sums = []
    for k in packing.lanes_of(tuple(f for _, group in fields for f in group)):
        terms = [
            f"CASE WHEN l_{j} = {k} THEN b_{j} ELSE 0 END"
            for j, (_, group) in enumerate(fields)
            if k in packing.lanes_of(group)
        ]
        sums.append(f"CAST(SUM({' + '.join(terms)}) AS BIGINT) AS lane_{k}")
    return source, sums


#: The counts of kinds that later steps read by name from ``daily``.
_DAILY_COUNTS = (
    "sends",
    "deliveries",
    "opens",
    "clicks",
    "conversions",
    "unsubscribes",
    "complaints",
    "bounces",
)


def _daily(recipients: RecipientRange, packing: _Packing) -> str:
    source, sums = _packed_counts(
        f"(SELECT * FROM labelled_events WHERE {_in_range(recipients)}) e",
        _event_fields(),
        packing,
    )
    counts = ",\n  ".join(f"{packing.unpack(c, 'lane_')} AS {c}" for c in _DAILY_COUNTS)
    lanes = ",\n    ".join(sums)
    return f"""
SELECT a.*,
  {counts}
FROM (
  SELECT recipient_id, day_num,
    {lanes},
    SUM(CASE WHEN kind = 'convert' THEN COALESCE(value, 0.0) ELSE 0.0 END) AS revenue
  FROM {source}
  GROUP BY recipient_id, day_num
) a"""


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


def _send_daily(recipients: RecipientRange, packing: _Packing) -> str:
    fields = [
        (f"{_FIELDS.index('ss_0')} + bucket", _SEND_PROFILE[:SEND_BUCKETS]),
        (
            f"CASE WHEN opened = 1 THEN {_FIELDS.index('so_0')} + bucket END",
            _SEND_PROFILE[SEND_BUCKETS:],
        ),
    ]
    source, sums = _packed_counts(
        f"(SELECT * FROM send_outcomes WHERE {_in_range(recipients)}) o", fields, packing
    )
    body = ",\n  ".join(sums)
    return f"SELECT recipient_id, day_num,\n  {body}\nFROM {source}\nGROUP BY recipient_id, day_num"


_SEND_PROFILE = (
    *(f"ss_{b}" for b in range(SEND_BUCKETS)),
    *(f"so_{b}" for b in range(SEND_BUCKETS)),
)
_HOURS = tuple(f"oh_{h}" for h in range(24))
_DOWS = tuple(f"od_{d}" for d in range(7))
_LATE_HOURS = tuple(f"ol_{h}" for h in range(24))
_OPEN_PROFILE = (*_HOURS, *_DOWS, *_LATE_HOURS)
_PROFILE = (*_OPEN_PROFILE, *_SEND_PROFILE)
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
#: Counts summed over every window.
_WINDOWED = ("sends", "deliveries", "opens", "machine_opens", "clicks", "conversions")
#: Totals over all history (revenue, a DOUBLE, is summed apart).
_TOTALS = ("conversions", "unsubscribes", "complaints", "bounces")
#: Every integer column of the grid, in packing order (see ``_Packing``).
_FIELDS = (*_WINDOWED, *_TOTALS[1:], *_PROFILE)
_TAUS = {"score": SCORE_TAU, "fast": FAST_TAU, "slow": SLOW_TAU}
_CUM = (
    "OVER (PARTITION BY recipient_id ORDER BY day_num "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
)


@dataclass(frozen=True, slots=True)
class _Packing:
    """Several non-negative counts in one BIGINT: field ``k`` of a lane is ``bits`` wide.

    A lane holds ``52 // bits`` fields, so it stays below 2**52 and its fields come back
    exactly through DOUBLE division on both engines. Sums and differences of lanes are the
    lanes of the sums and differences as long as no field leaves ``[0, 2**bits)``: every
    field is a count of one recipient's events, so ``bits`` covers the most events of a
    recipient.
    """

    bits: int

    @property
    def per_lane(self) -> int:
        return _LANE_BITS // self.bits

    @property
    def lanes(self) -> int:
        return -(-len(_FIELDS) // self.per_lane)

    def place(self, field: str) -> tuple[int, int]:
        """(lane, position in the lane) of ``field``."""
        i = _FIELDS.index(field)
        return i // self.per_lane, i % self.per_lane

    def lanes_of(self, fields: tuple[str, ...]) -> list[int]:
        return sorted({self.place(f)[0] for f in fields})

    def unpack(self, field: str, prefix: str) -> str:
        """``field`` from the lane column ``{prefix}{lane}``."""
        lane, k = self.place(field)
        column = f"{prefix}{lane}"
        if k:
            column = f"CAST(FLOOR({column} / {_f(float(2 ** (self.bits * k)))}) AS BIGINT)"
        return f"({column} % {2**self.bits})"


_LANE_BITS: Final = 52


def _prior(grid_start: int) -> str:
    # State from before the grid, so unbounded windows need not re-read all history as rows.
    before = f"day_num < {grid_start}"
    lasts = ",\n  ".join(
        f"MAX(CASE WHEN {before} AND {col} > 0 THEN day_num END) AS last_{name}"
        for name, col in _LAST.items()
    )
    totals = ",\n  ".join(
        f"SUM(CASE WHEN {before} THEN {c} ELSE 0 END) AS prior_{c}" for c in (*_TOTALS, "revenue")
    )
    return f"""
SELECT recipient_id, MIN(day_num) AS first_day,
  {lasts},
  {totals}
FROM daily GROUP BY recipient_id"""


def _cumulative(grid_start: int, last_day: int, packing: _Packing) -> str:
    # The grid has a row per recipient and day D from the day after the recipient's first
    # event (and after the grid start) on, holding the counts of day D - 1; its running
    # totals are thus the sums over the days before D. Integer counts are packed into lanes,
    # so a handful of running sums replace eighty.

    # ``daily`` and ``send_daily`` hold disjoint fields, so a lane is the sum of theirs.
    daily = packing.lanes_of(tuple(f for _, group in _event_fields() for f in group))
    sent = packing.lanes_of(_SEND_PROFILE)
    grid_cols = [
        " + ".join(
            [f"COALESCE(d.lane_{i}, 0)"] * (i in daily)
            + [f"COALESCE(sd.lane_{i}, 0)"] * (i in sent)
        )
        + f" AS lane_{i}"
        for i in range(packing.lanes)
    ]
    grid_cols.append("COALESCE(d.revenue, 0.0) AS revenue")
    grid_cols.append("COALESCE(d.sends, 0) AS sends_1d")
    # sum_d w_d exp(-(D-d)/tau) = exp(-(D-a)/tau) * sum_d w_d exp((d-a)/tau); the anchor a is
    # the grid start, so exponents stay below (grid length)/tau.
    weight = "(COALESCE(d.opens, 0) + 2 * COALESCE(d.clicks, 0) + 4 * COALESCE(d.conversions, 0))"
    grid_cols += [
        f"{weight} * EXP((c.day_num - 1 - {grid_start}) / {_f(tau)}) AS w_{name}"
        for name, tau in _TAUS.items()
    ]
    grid_cols += [
        f"CASE WHEN d.{col} > 0 THEN d.day_num END AS seen_{name}" for name, col in _LAST.items()
    ]
    grid = ",\n    ".join(grid_cols)
    sums = [f"CAST(SUM(lane_{i}) {_CUM} AS BIGINT) AS lane_{i}" for i in range(packing.lanes)]
    sums += [f"SUM(revenue) {_CUM} AS revenue"]
    sums += [f"SUM(w_{name}) {_CUM} AS {name}" for name in _TAUS]
    sums += [f"MAX(seen_{name}) {_CUM} AS last_{name}" for name in _LAST]
    body = ",\n  ".join(sums)
    return f"""
SELECT recipient_id, day_num, day, first_day, sends_1d,
  {body}
FROM (
  SELECT p.recipient_id, c.day_num, c.day, p.first_day,
    {grid}
  FROM prior p
  JOIN calendar c ON c.day_num > p.first_day AND c.day_num > {grid_start}
    AND c.day_num <= {last_day}
  LEFT JOIN daily d ON d.recipient_id = p.recipient_id AND d.day_num = c.day_num - 1
  LEFT JOIN send_daily sd ON sd.recipient_id = p.recipient_id AND sd.day_num = c.day_num - 1
) g"""


def _snapshots(first_day: int, grid_start: int, packing: _Packing) -> str:
    # Window sums are differences of running totals: the row D - w of the same recipient
    # holds the totals of the days before D - w (no row there: nothing before it).
    cols = []
    for w in WINDOWS:
        lanes = range(packing.lanes) if w == _LONGEST else packing.lanes_of(_WINDOWED)
        cols += [f"c.lane_{i} - COALESCE(c{w}.lane_{i}, 0) AS n{w}_{i}" for i in lanes]
        cols.append(f"ROUND(c.revenue - COALESCE(c{w}.revenue, 0.0), 6) AS revenue_{w}d")
    cols += [
        f"EXP(-(c.day_num - {grid_start}) / {_f(tau)}) * (c.{name} - COALESCE(c{_LONGEST}.{name}, "
        f"0.0)) AS {alias}"
        for (name, tau), alias in zip(
            _TAUS.items(), ("engagement_score", "score_fast", "score_slow"), strict=True
        )
    ]
    cols += [
        f"COALESCE(c.day_num - COALESCE(c.last_{name}, p.last_{name}), {NEVER_DAYS}) "
        f"AS days_since_last_{name}"
        for name in _LAST
    ]
    cols += [
        f"{packing.unpack(c, 'c.lane_')} + COALESCE(p.prior_{c}, 0) AS total_{c}" for c in _TOTALS
    ]
    cols.append("c.revenue + COALESCE(p.prior_revenue, 0.0) AS total_revenue")
    joins = "\n".join(
        f"LEFT JOIN cumulative c{w} ON c{w}.recipient_id = c.recipient_id"
        f" AND c{w}.day_num = c.day_num - {w}"
        for w in WINDOWS
    )
    body = ",\n  ".join(cols)
    return f"""
SELECT c.recipient_id, c.day_num, c.day, c.sends_1d,
  COALESCE(r.timezone, 'UTC') AS timezone,
  CASE WHEN r.created_day < c.first_day THEN r.created_day ELSE c.first_day END AS joined_day,
  {body}
FROM cumulative c
JOIN prior p ON p.recipient_id = c.recipient_id
LEFT JOIN recipients r ON r.recipient_id = c.recipient_id
{joins}
WHERE c.day_num >= {first_day}"""


def _tz_events() -> str:
    # The cohort and population sums need only per zone and day counts: a narrow
    # aggregation of every recipient's events, pivoted in ``tz_daily``.
    return f"""
SELECT timezone, day_num, kind, is_machine, is_late, hour, dow, COUNT(*) AS n
FROM (
  SELECT COALESCE(r.timezone, 'UTC') AS timezone, e.day_num, e.kind, e.is_machine, e.is_late,
    {_LOCAL_HOUR.replace("local_min", "e.local_min")} AS hour,
    {_LOCAL_DOW.replace("local_min", "e.local_min").replace("day_num", "e.day_num")} AS dow
  FROM labelled_events e LEFT JOIN recipients r ON r.recipient_id = e.recipient_id
) x
GROUP BY timezone, day_num, kind, is_machine, is_late, hour, dow"""


def _tz_sends() -> str:
    return """
SELECT COALESCE(r.timezone, 'UTC') AS timezone, s.day_num, s.bucket,
  COUNT(*) AS n, SUM(s.opened) AS opened
FROM send_outcomes s LEFT JOIN recipients r ON r.recipient_id = s.recipient_id
GROUP BY COALESCE(r.timezone, 'UTC'), s.day_num, s.bucket"""


def _tz_daily() -> str:
    human = "kind = 'open' AND is_machine = 0"
    sums = [
        f"SUM(CASE WHEN {cond} THEN n ELSE 0 END) AS {name}"
        for name, cond in (
            ("deliveries", "kind = 'deliver'"),
            ("opens", human),
            ("clicks", "kind = 'click'"),
            ("conversions", "kind = 'convert'"),
            *((f"oh_{h}", f"{human} AND hour = {h}") for h in range(24)),
            *((f"od_{d}", f"{human} AND dow = {d}") for d in range(7)),
            *((f"ol_{h}", f"{human} AND is_late = 1 AND hour = {h}") for h in range(24)),
            *((f"ss_{b}", f"kind = 'outcome' AND bucket = {b}") for b in range(SEND_BUCKETS)),
        )
    ]
    sums += [
        f"SUM(CASE WHEN kind = 'outcome' AND bucket = {b} THEN opened ELSE 0 END) AS so_{b}"
        for b in range(SEND_BUCKETS)
    ]
    body = ",\n  ".join(sums)
    return f"""
SELECT timezone, day_num,
  {body}
FROM (
  SELECT timezone, day_num, kind, is_machine, is_late, hour, dow, -1 AS bucket, n, 0 AS opened
  FROM tz_events
  UNION ALL
  SELECT timezone, day_num, 'outcome' AS kind, 0 AS is_machine, 0 AS is_late, -1 AS hour,
    -1 AS dow, bucket, n, opened
  FROM tz_sends
) u
GROUP BY timezone, day_num"""


def _population(first_day: int, last_day: int) -> str:
    # Population rates per snapshot day: the prior mean the recipients' rates shrink toward.
    # A recipient without a snapshot on D has no events before D, so the sums over every
    # event of the window equal the sums over the snapshots.
    sums = ",\n  ".join(
        f"COALESCE(SUM(CASE WHEN t.day_num >= c.day_num - {w} THEN t.{c} END), 0) AS pop_{c}_{w}d"
        for w in (30, 90)
        for c in ("deliveries", "opens", "clicks", "conversions")
    )
    return f"""
SELECT c.day_num,
  {sums}
FROM calendar c
LEFT JOIN tz_daily t ON t.day_num >= c.day_num - {_LONGEST} AND t.day_num < c.day_num
WHERE c.day_num >= {first_day} AND c.day_num <= {last_day}
GROUP BY c.day_num"""


_COHORT_TOTALS = {
    "oh": [f"oh_{h}" for h in range(24)],
    "od": [f"od_{d}" for d in range(7)],
    "ol": [f"ol_{h}" for h in range(24)],
    "ss": [f"ss_{b}" for b in range(SEND_BUCKETS)],
    "so": [f"so_{b}" for b in range(SEND_BUCKETS)],
}


def _cohort_priors() -> list[str]:
    # The pseudo-counts the cohort adds to each recipient's profile and send-hour rates,
    # computed once per zone and day rather than on every recipient's row. Cohort shares get
    # add-one smoothing so an empty cohort falls back to a flat profile.
    k = _f(PROFILE_STRENGTH)
    sizes = {"oh": 24, "od": 7, "ol": 24}
    cols = [
        f"{k} * (c_{name}_{i} + {_f(1.0)}) / (c_{name}_all + {_f(float(size))}) AS k_{name}_{i}"
        for name, size in sizes.items()
        for i in range(size)
    ]
    # Two-level empirical Bayes with additive (Beta) priors. The cohort's rate for bucket b is
    # shrunk toward the cohort's rate over all hours with COHORT_RATE_STRENGTH pseudo-sends, so
    # a bucket a zone was never mailed at gets the zone's overall rate; the recipient's rate is
    # shrunk toward that with SEND_RATE_STRENGTH pseudo-sends.
    c_all = "(CASE WHEN c_ss_all > 0 THEN (c_so_all) / CAST(c_ss_all AS DOUBLE) ELSE 0.0 END)"
    m, k_send = _f(COHORT_RATE_STRENGTH), _f(SEND_RATE_STRENGTH)
    cols += [
        f"{k_send} * ((c_so_{b} + {m} * {c_all}) / (c_ss_{b} + {m})) AS k_so_{b}"
        for b in range(SEND_BUCKETS)
    ]
    return cols


def _cohort(first_day: int, last_day: int) -> str:
    # The cohort is the time zone: people in one zone share working hours and weekends.
    sums = ",\n  ".join(f"COALESCE(SUM(t.{c}), 0) AS c_{c}" for c in _PROFILE)
    totals = ",\n  ".join(
        f"{' + '.join(f'c_{c}' for c in cols)} AS c_{name}_all"
        for name, cols in _COHORT_TOTALS.items()
    )
    priors = ",\n  ".join(_cohort_priors())
    return f"""
SELECT y.*,
  {priors}
FROM (
SELECT x.*,
  {totals}
FROM (
SELECT z.timezone, c.day_num,
  {sums}
FROM (SELECT DISTINCT timezone FROM tz_daily) z
CROSS JOIN calendar c
LEFT JOIN tz_daily t ON t.timezone = z.timezone AND t.day_num >= c.day_num - {_LONGEST}
  AND t.day_num < c.day_num
WHERE c.day_num >= {first_day} AND c.day_num <= {last_day}
GROUP BY z.timezone, c.day_num
) x
) y"""


def _rate(num: str, w: int) -> str:
    pop = (
        f"CASE WHEN p.pop_deliveries_{w}d > 0 "
        f"THEN p.pop_{num}_{w}d / p.pop_deliveries_{w}d ELSE 0.0 END"
    )
    return f"(s.{num}_{w}d + {PRIOR_STRENGTH} * ({pop})) / (s.deliveries_{w}d + {PRIOR_STRENGTH})"


def _engagement(packing: _Packing) -> str:
    counts = ("sends", "deliveries", "opens", "machine_opens", "clicks", "conversions")
    unpacked = ",\n    ".join(
        f"{packing.unpack(c, f's.n{w}_')} AS {c}_{w}d" for w in WINDOWS for c in counts
    )
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
        "CAST(s.day_num - s.joined_day AS BIGINT) AS tenure_days",
    ]
    body = ",\n  ".join(cols)
    return f"""
SELECT s.recipient_id, s.day, s.day_num,
  {body}
FROM (
  SELECT s.*,
    {unpacked}
  FROM snapshots s
) s
JOIN population p ON p.day_num = s.day_num"""


def _send_time(packing: _Packing) -> str:
    k = _f(PROFILE_STRENGTH)
    unpacked = [f"{packing.unpack(c, f's.n{_LONGEST}_')} AS n_{c}" for c in _PROFILE]
    totals = [
        f"{' + '.join(f'n_{c}' for c in cols)} AS n_{name}_all"
        for name, cols in _COHORT_TOTALS.items()
        if name != "so"
    ]
    # Each share is (own count + the cohort's pseudo-count, see ``_cohort_priors``) over
    # (own total + the prior's strength).
    cols = ["CAST(s.n_oh_all AS BIGINT) AS profile_opens_90d"]
    cols += [
        f"(s.n_oh_{h} + c.k_oh_{h}) / (s.n_oh_all + {k}) AS open_hour_{h:02d}" for h in range(24)
    ]
    cols += [f"(s.n_od_{d} + c.k_od_{d}) / (s.n_oh_all + {k}) AS open_dow_{d}" for d in range(7)]
    cols += ["CAST(s.n_ol_all AS BIGINT) AS late_opens_90d"]
    cols += [
        f"(s.n_ol_{h} + c.k_ol_{h}) / (s.n_ol_all + {k}) AS late_open_hour_{h:02d}"
        for h in range(24)
    ]
    # A recipient with no sends in a bucket gets the cohort's rate there.
    cols += ["CAST(s.n_ss_all AS BIGINT) AS send_hour_sends_90d"]
    cols += [
        f"(s.n_so_{b} + c.k_so_{b}) / (s.n_ss_{b} + {_f(SEND_RATE_STRENGTH)})"
        f" AS send_hour_rate_{b * SEND_BUCKET_HOURS:02d}"
        for b in range(SEND_BUCKETS)
    ]
    body = ",\n  ".join(cols)
    inner = ",\n      ".join(unpacked)
    outer = ",\n    ".join(totals)
    return f"""
SELECT s.recipient_id, s.day, s.day_num, s.timezone,
  {body}
FROM (
  SELECT u.*,
    {outer}
  FROM (
    SELECT s.recipient_id, s.day, s.day_num, s.timezone,
      {inner}
    FROM snapshots s
  ) u
) s
JOIN cohort c ON c.timezone = s.timezone AND c.day_num = s.day_num"""


def _check_days(first_day: int, last_day: int) -> None:
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")


def shared_statements(first_day: int, last_day: int) -> list[Statement]:
    """The steps over every recipient: labelled events, send outcomes, cohort and population.

    Run once before :func:`recipient_statements` (which reads their results), whatever
    range of recipients those compute.

    Examples
    --------
    >>> [s.name for s in shared_statements(20_000, 20_010)][-2:]
    ['population', 'cohort']
    """
    _check_days(first_day, last_day)
    return [
        Statement("labelled_events", _labelled_events(last_day)),
        Statement("send_outcomes", _send_outcomes()),
        Statement("tz_events", _tz_events()),
        Statement("tz_sends", _tz_sends()),
        Statement("tz_daily", _tz_daily()),
        Statement("population", _population(first_day, last_day)),
        Statement("cohort", _cohort(first_day, last_day)),
    ]


def recipient_statements(
    first_day: int,
    last_day: int,
    *,
    max_events: int,
    recipients: RecipientRange = (None, None),
) -> list[Statement]:
    """The per-recipient steps, ending in the feature tables ``engagement`` and ``send_time``.

    Parameters
    ----------
    first_day, last_day
        Snapshot days to compute (``day_num``, inclusive), as in :func:`feature_statements`.
    max_events
        An upper bound on the events of any one recipient up to ``last_day``: it sizes the
        packed count fields, and a smaller value than the truth gives wrong counts.
    recipients
        Only recipients with ``lo <= recipient_id < hi`` (``None``: unbounded), so a large
        log can be computed in several passes of bounded memory.

    Raises
    ------
    ValueError
        When ``max_events`` is negative or too large to pack.

    Examples
    --------
    >>> [s.name for s in recipient_statements(20_000, 20_010, max_events=500)][-2:]
    ['engagement', 'send_time']
    """
    _check_days(first_day, last_day)
    if not 0 <= max_events < 2**_LANE_BITS:
        raise ValueError(f"max_events {max_events} is outside [0, 2**{_LANE_BITS})")
    packing = _Packing(bits=max(1, max_events.bit_length()))
    grid_start = first_day - _LONGEST
    return [
        Statement("daily", _daily(recipients, packing)),
        Statement("send_daily", _send_daily(recipients, packing)),
        Statement("prior", _prior(grid_start)),
        Statement("cumulative", _cumulative(grid_start, last_day, packing)),
        Statement("snapshots", _snapshots(first_day, grid_start, packing)),
        Statement("engagement", _engagement(packing)),
        Statement("send_time", _send_time(packing)),
    ]


def feature_statements(first_day: int, last_day: int, *, max_events: int) -> list[Statement]:
    """The pipeline computing snapshots of days ``first_day`` … ``last_day`` (inclusive).

    Days are ``day_num`` integers (days since 1970-01-01). The results named ``engagement``
    and ``send_time`` are the two feature tables; they carry ``day`` and ``day_num`` but no
    timestamps, which the writer adds in the engine's own type. This is
    :func:`shared_statements` followed by :func:`recipient_statements` for every recipient.

    Parameters
    ----------
    first_day, last_day
        Snapshot days to compute. Events from ``first_day - 90`` on are read as rows; older
        ones only through per-recipient totals and last-seen days.
    max_events
        An upper bound on the events of any one recipient up to ``last_day``.

    Examples
    --------
    >>> [s.name for s in feature_statements(20_000, 20_010, max_events=500)][-2:]
    ['engagement', 'send_time']
    """
    return [
        *shared_statements(first_day, last_day),
        *recipient_statements(first_day, last_day, max_events=max_events),
    ]
