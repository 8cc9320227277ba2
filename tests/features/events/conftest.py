from __future__ import annotations

from pathlib import Path

import pytest

from features.events import EventLog
from inboxlab.records import EVENT_COLUMNS

HEADER = ",".join(EVENT_COLUMNS)


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events")


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
