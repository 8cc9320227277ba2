from __future__ import annotations

from pathlib import Path

import pytest

from features.events import EventLog

HEADER = "event_id,recipient_id,kind,occurred_at,campaign_id,variant_id,decision_id,value,is_machine_open"


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events")


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
