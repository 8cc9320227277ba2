"""Per-(recipient, variant) history: plain SQL that runs unchanged on DuckDB and Spark SQL.

The ``recipient_variant`` feature table holds, per recipient and variant, what the recipient
did with that variant's emails over the 90 days before the snapshot: sends, deliveries, human
opens, clicks and conversions, the click rate (per delivery) and the click-to-open rate (per
human open), each shrunk toward the variant's population rate over the same 90 days. Inputs
are the ``events`` and ``calendar`` relations of :mod:`features.engineering.sql`; the result
is the relation ``recipient_variant`` with ``recipient_id``, ``variant_id``, ``day`` and
``day_num``.

Attribution. An event counts for the variant it carries, else for the variant of the send of
the same campaign to the same recipient (opens and clicks often carry only the campaign).
Events with neither are left out. Machine opens follow the rule of the main SQL: the flag
when set, else an open within ``MACHINE_OPEN_SECONDS`` of the campaign's first delivery.

Sparse snapshots. A pair's 90-day values change only on the day after one of its events (the
event enters the window) and 91 days after it (the event leaves), so the table has a row for
a pair only on those days, not on every day: an event on day ``d`` adds its counts at
``d + 1`` and subtracts them at ``d + 91``, and the running sum of these deltas is the window
total, exact and without a range join. For an as-of join (newest row strictly before the
send) this is exact as long as rows are used up to 90 days old: a row with history is
followed by another at most 90 days later (when its newest event leaves), and the row written
when the last event leaves is all zeros, the cold-start defaults. Hence a time to live of 91
days (:data:`~features.engineering.tables.VARIANT_TTL`). On a simulated 20,000 recipients ×
60 days (0.95 M events) this is 0.39 M rows, 13 % of a dense (pair × day) grid, and these
statements take about a tenth of the whole feature build.

The smoothed rates use the variant's population rate as of the row's own day: the population
moves slowly, and refreshing it would mean re-writing every pair every day. Rates are 0.0
when their denominator (deliveries, human opens) is zero, like every rate of a recipient
without history, so a pair whose window emptied looks exactly like a pair never seen.
"""

from __future__ import annotations

from typing import Final

from features.engineering.sql import Statement, machine_open
from features.engineering.tables import VARIANT_TABLE

__all__ = [
    "VARIANT_OPEN_PRIOR_STRENGTH",
    "VARIANT_PRIOR_STRENGTH",
    "VARIANT_WINDOW_DAYS",
    "variant_statements",
]

#: Look-back of the per-variant counts, in days.
VARIANT_WINDOW_DAYS: Final = 90
#: Pseudo-deliveries at the variant's population click rate added to a pair's click rate.
VARIANT_PRIOR_STRENGTH: Final = 5.0
#: Pseudo-opens at the variant's population click-to-open rate added to a pair's.
VARIANT_OPEN_PRIOR_STRENGTH: Final = 2.0

_COUNTS = ("sends", "deliveries", "opens", "clicks", "conversions")


def _d(value: float) -> str:
    # DOUBLE on both engines (a bare 5.0 is a DECIMAL in DuckDB).
    return f"CAST({value!r} AS DOUBLE)"


def _variant_events(first_day: int, last_day: int) -> str:
    # Only event days whose entry or exit falls in the snapshot range matter: d + 91 >= first.
    lo = first_day - VARIANT_WINDOW_DAYS - 1
    return f"""
SELECT e.recipient_id, COALESCE(e.variant_id, k.send_variant) AS variant_id, c.day_num,
  CASE WHEN e.kind = 'send' THEN 1 ELSE 0 END AS is_send,
  CASE WHEN e.kind = 'deliver' THEN 1 ELSE 0 END AS is_delivery,
  CASE WHEN e.kind = 'open' THEN 1 - {machine_open("e", "k")} ELSE 0 END AS is_human_open,
  CASE WHEN e.kind = 'click' THEN 1 ELSE 0 END AS is_click,
  CASE WHEN e.kind = 'convert' THEN 1 ELSE 0 END AS is_conversion
FROM events e
JOIN calendar c ON c.day = CAST(e.occurred_at AS DATE)
LEFT JOIN (
  SELECT recipient_id, campaign_id,
    MIN(CASE WHEN kind = 'deliver' THEN occurred_at END) AS first_deliver,
    MIN(CASE WHEN kind = 'send' THEN variant_id END) AS send_variant
  FROM events WHERE kind IN ('send', 'deliver') AND campaign_id IS NOT NULL
  GROUP BY recipient_id, campaign_id
) k ON k.recipient_id = e.recipient_id AND k.campaign_id = e.campaign_id
WHERE c.day_num >= {lo} AND c.day_num < {last_day}
  AND e.kind IN ('send', 'deliver', 'open', 'click', 'convert')"""


def _variant_deltas() -> str:
    # Per pair and day the counts enter the window the next day and leave it 91 days on.
    sums = ",\n  ".join(
        f"SUM({flag}) AS {name}"
        for flag, name in zip(
            ("is_send", "is_delivery", "is_human_open", "is_click", "is_conversion"),
            _COUNTS,
            strict=True,
        )
    )
    daily = (
        f"SELECT recipient_id, variant_id, day_num,\n  {sums}\n"
        "FROM variant_events WHERE variant_id IS NOT NULL\n"
        "GROUP BY recipient_id, variant_id, day_num"
    )
    plus = ", ".join(_COUNTS)
    minus = ", ".join(f"-{c} AS {c}" for c in _COUNTS)
    changes = ", ".join(f"SUM({c}) AS {c}" for c in _COUNTS)
    return f"""
SELECT recipient_id, variant_id, snap_day, {changes}
FROM (
  SELECT recipient_id, variant_id, day_num + 1 AS snap_day, {plus} FROM ({daily}) a
  UNION ALL
  SELECT recipient_id, variant_id, day_num + {VARIANT_WINDOW_DAYS + 1} AS snap_day, {minus}
  FROM ({daily}) b
) d
GROUP BY recipient_id, variant_id, snap_day"""


def _running(keys: str) -> str:
    frame = (
        f"OVER (PARTITION BY {keys} ORDER BY snap_day "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    return ",\n  ".join(f"SUM({c}) {frame} AS {c}" for c in _COUNTS)


def _variant_windows() -> str:
    return (
        f"SELECT recipient_id, variant_id, snap_day,\n  {_running('recipient_id, variant_id')}\n"
        "FROM variant_deltas"
    )


def _variant_population() -> str:
    # Each pair's delta day is a delta day of its variant too, so an equi-join finds it.
    changes = ", ".join(f"SUM({c}) AS {c}" for c in _COUNTS)
    return f"""
SELECT variant_id, snap_day,
  {_running("variant_id")}
FROM (SELECT variant_id, snap_day, {changes} FROM variant_deltas GROUP BY variant_id, snap_day) p"""


def _shrunk(num: str, den: str, strength: float) -> str:
    pop = (
        f"CASE WHEN p.{den} > 0 THEN CAST(p.{num} AS DOUBLE) / CAST(p.{den} AS DOUBLE) "
        "ELSE CAST(0.0 AS DOUBLE) END"
    )
    k = _d(strength)
    return (
        f"CASE WHEN w.{den} > 0 THEN (CAST(w.{num} AS DOUBLE) + {k} * ({pop})) "
        f"/ (CAST(w.{den} AS DOUBLE) + {k}) ELSE CAST(0.0 AS DOUBLE) END"
    )


def _variant(first_day: int, last_day: int) -> str:
    counts = ",\n  ".join(
        f"CAST(w.{c} AS BIGINT) AS variant_{c}_{VARIANT_WINDOW_DAYS}d" for c in _COUNTS
    )
    click_rate = _shrunk("clicks", "deliveries", VARIANT_PRIOR_STRENGTH)
    click_to_open = _shrunk("clicks", "opens", VARIANT_OPEN_PRIOR_STRENGTH)
    return f"""
SELECT w.recipient_id, w.variant_id, c.day, c.day_num,
  {counts},
  {click_rate} AS variant_click_rate_{VARIANT_WINDOW_DAYS}d,
  {click_to_open} AS variant_click_to_open_rate_{VARIANT_WINDOW_DAYS}d
FROM variant_windows w
JOIN variant_population p ON p.variant_id = w.variant_id AND p.snap_day = w.snap_day
JOIN calendar c ON c.day_num = w.snap_day
WHERE w.snap_day >= {first_day} AND w.snap_day <= {last_day}"""


def variant_statements(first_day: int, last_day: int) -> list[Statement]:
    """The pipeline computing the ``variant`` rows of snapshot days ``first_day`` … ``last_day``.

    Days are ``day_num`` integers (days since 1970-01-01), as in
    :func:`~features.engineering.sql.feature_statements`; only the days on which a pair's
    values change get a row (see the module docstring).

    Examples
    --------
    >>> [s.name for s in variant_statements(20_000, 20_010)][-2:]
    ['variant_population', 'recipient_variant']
    """
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")
    return [
        Statement("variant_events", _variant_events(first_day, last_day)),
        Statement("variant_deltas", _variant_deltas()),
        Statement("variant_windows", _variant_windows()),
        Statement("variant_population", _variant_population()),
        Statement(VARIANT_TABLE, _variant(first_day, last_day)),
    ]
