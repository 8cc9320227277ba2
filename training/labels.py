"""Labelled sends: one row per (recipient, campaign) send with what followed it.

Labels follow the rules of the features (``features.engineering.sql``): an open flagged
``is_machine_open`` is a machine open, an unflagged open within ``MACHINE_OPEN_SECONDS`` of the
delivery is taken as one too, and machine opens never count as engagement. One rule is
stricter, because a label is judged with the whole log at hand: for a recipient whose client
is known to prefetch (some open of theirs was flagged as a machine open), an unflagged open
within ``PREFETCH_SECONDS`` of the delivery is taken as a machine open too. Most platforms
flag only a share of prefetches, and a prefetch minutes after delivery would otherwise label
the send opened whatever the person did, which hides their engagement and send-time
preference behind noise the size of the signal. A send whose label
window has not ended by the end of the log is censored and left out by :func:`complete`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from features.engineering.sql import MACHINE_OPEN_SECONDS
from features.events import EventLog

__all__ = ["HORIZONS", "LABELS", "PREFETCH_SECONDS", "complete", "labelled_sends"]

#: How long after delivery an unflagged open of a known prefetching client is taken as the
#: prefetch: privacy proxies fetch on arrival, within minutes; a person who opens that soon
#: is lost from the label, a small share next to the prefetches caught.
PREFETCH_SECONDS = 600

#: How long after the send each label may still turn positive.
HORIZONS: dict[str, timedelta] = {
    "opened": timedelta(hours=24),
    "clicked": timedelta(hours=72),
    "converted": timedelta(days=14),
}
LABELS = tuple(HORIZONS)

_SQL = f"""
WITH sends AS (
    SELECT recipient_id, campaign_id, arg_min(variant_id, occurred_at) AS variant_id,
           min(occurred_at) AS sent_at
    FROM events WHERE kind = 'send' AND campaign_id IS NOT NULL
    GROUP BY recipient_id, campaign_id
),
delivered AS (
    SELECT recipient_id, campaign_id, min(occurred_at) AS first_deliver
    FROM events WHERE kind = 'deliver' GROUP BY recipient_id, campaign_id
),
prefetchers AS (
    SELECT DISTINCT recipient_id, true AS prefetches
    FROM events WHERE kind = 'open' AND is_machine_open
),
human_opens AS (
    SELECT e.recipient_id, e.campaign_id, min(e.occurred_at) AS first_open
    FROM events e LEFT JOIN delivered d USING (recipient_id, campaign_id)
    LEFT JOIN prefetchers p USING (recipient_id)
    WHERE e.kind = 'open' AND NOT COALESCE(
        e.is_machine_open,
        d.first_deliver IS NOT NULL AND e.occurred_at < d.first_deliver + CASE
            WHEN p.prefetches THEN INTERVAL {PREFETCH_SECONDS} SECOND
            ELSE INTERVAL {MACHINE_OPEN_SECONDS} SECOND END
    )
    GROUP BY e.recipient_id, e.campaign_id
),
firsts AS (
    SELECT recipient_id, campaign_id,
           min(occurred_at) FILTER (WHERE kind = 'click') AS first_click,
           min(occurred_at) FILTER (WHERE kind = 'convert') AS first_convert,
           sum(value) FILTER (WHERE kind = 'convert') AS revenue
    FROM events WHERE kind IN ('click', 'convert') GROUP BY recipient_id, campaign_id
)
SELECT s.recipient_id, s.campaign_id, s.variant_id, s.sent_at, z.timezone,
       hour(timezone(z.timezone, s.sent_at))::INTEGER AS local_hour,
       (isodow(timezone(z.timezone, s.sent_at)) - 1)::INTEGER AS local_weekday,
       COALESCE(o.first_open < s.sent_at + INTERVAL 24 HOUR, false)::INTEGER AS opened,
       COALESCE(f.first_click < s.sent_at + INTERVAL 72 HOUR, false)::INTEGER AS clicked,
       COALESCE(f.first_convert < s.sent_at + INTERVAL 14 DAY, false)::INTEGER AS converted,
       COALESCE(f.revenue, 0.0) AS revenue
FROM sends s
LEFT JOIN (SELECT recipient_id, timezone FROM recipients) r USING (recipient_id)
CROSS JOIN LATERAL (SELECT COALESCE(r.timezone, 'UTC') AS timezone) z
LEFT JOIN human_opens o USING (recipient_id, campaign_id)
LEFT JOIN firsts f USING (recipient_id, campaign_id)
ORDER BY s.sent_at, s.recipient_id
"""


def labelled_sends(log: EventLog, recipients_path: Path | None = None) -> pd.DataFrame:
    """Every send in ``log`` with its labels, local hour and weekday.

    ``sent_at`` is UTC; ``local_hour`` (0-23) and ``local_weekday`` (Monday = 0) use the
    recipient's time zone from the recipient directory (UTC when unknown).
    """
    with log.connect() as con:
        if recipients_path is not None and recipients_path.exists():
            path = str(recipients_path).replace("'", "''")
            con.execute(f"CREATE VIEW recipients AS SELECT * FROM read_parquet('{path}')")
        else:
            con.execute(
                "CREATE VIEW recipients AS "
                "SELECT NULL::VARCHAR AS recipient_id, NULL::VARCHAR AS timezone WHERE false"
            )
        frame: pd.DataFrame = con.sql(_SQL).df()
    frame["sent_at"] = pd.to_datetime(frame["sent_at"], utc=True)
    return frame


def complete(frame: pd.DataFrame, label: str, log_end: pd.Timestamp) -> pd.DataFrame:
    """Rows whose ``label`` window ended by ``log_end`` (later ones are still censored)."""
    if label not in HORIZONS:
        raise ValueError(f"unknown label {label!r}; known: {', '.join(LABELS)}")
    return frame[frame["sent_at"] + HORIZONS[label] <= log_end]
