from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from features.events import EventLog
from features.events.importer import import_tables
from features.events.schema import EVENT_SCHEMA
from training.labels import PREFETCH_SECONDS, labelled_sends

T0 = datetime(2026, 1, 5, 15, tzinfo=UTC)


def _events(rows: list[tuple[str, str, datetime, str, bool | None]]) -> pa.Table:
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "recipient_id": [r for r, *_ in rows],
            "kind": [k for _, k, *_ in rows],
            "occurred_at": [at for _, _, at, *_ in rows],
            "campaign_id": [c for *_, c, _ in rows],
            "variant_id": ["v0"] * len(rows),
            "decision_id": [None] * len(rows),
            "value": [None] * len(rows),
            "is_machine_open": [m for *_, m in rows],
        },
        schema=EVENT_SCHEMA,
    )


def _opened(tmp_path: Path, open_after: timedelta, *, prefetcher: bool) -> int:
    log = EventLog(tmp_path / "events")
    rows: list[tuple[str, str, datetime, str, bool | None]] = []
    if prefetcher:  # an earlier campaign whose open was flagged as a prefetch
        early = T0 - timedelta(days=3)
        rows += [
            ("r1", "send", early, "c0", None),
            ("r1", "deliver", early + timedelta(seconds=5), "c0", None),
            ("r1", "open", early + timedelta(minutes=3), "c0", True),
        ]
    rows += [
        ("r1", "send", T0, "c1", None),
        ("r1", "deliver", T0 + timedelta(seconds=5), "c1", None),
        ("r1", "open", T0 + timedelta(seconds=5) + open_after, "c1", None),
    ]
    import_tables([("test", _events(rows))], log)
    frame = labelled_sends(log)
    return int(frame.loc[frame["campaign_id"] == "c1", "opened"].iloc[0])


@pytest.mark.parametrize(
    ("open_after", "prefetcher", "opened"),
    [
        (timedelta(seconds=60), False, 0),  # within the machine-open rule: a prefetch
        (timedelta(minutes=5), False, 1),  # no sign of a prefetching client: a person
        (timedelta(minutes=5), True, 0),  # a prefetching client, minutes after delivery
        (timedelta(seconds=PREFETCH_SECONDS + 60), True, 1),  # later: the person
    ],
)
def test_an_unflagged_early_open_counts_as_a_prefetch_only_for_prefetching_clients(
    tmp_path: Path, open_after: timedelta, prefetcher: bool, opened: int
) -> None:
    assert _opened(tmp_path, open_after, prefetcher=prefetcher) == opened
