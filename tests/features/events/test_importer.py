from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.events import EventLog, import_events
from features.events.importer import ERRORS_SHOWN
from inboxlab.errors import ImportValidationError, InvalidInputError
from tests.features.events.conftest import write_csv

OK = "e{i},r{i},open,2026-03-0{d}T09:00:00+02:00,c1,v1,,,"


def test_import_writes_valid_rows_and_counts_duplicates(tmp_path: Path, log: EventLog) -> None:
    first = write_csv(
        tmp_path / "a.csv", OK.format(i=1, d=1), OK.format(i=2, d=2), OK.format(i=1, d=3)
    )
    summary = import_events([first], log)
    assert (summary.rows_read, summary.rows_written, summary.duplicates_in_input) == (3, 2, 1)
    again = write_csv(tmp_path / "b.csv", OK.format(i=2, d=2), OK.format(i=3, d=4))
    summary = import_events([again], log)
    assert (summary.rows_written, summary.duplicates_in_log) == (1, 1)
    assert sorted(log.read().column("event_id").to_pylist()) == ["e1", "e2", "e3"]


def test_rows_without_event_id_are_all_kept(tmp_path: Path, log: EventLog) -> None:
    row = ",r1,send,2026-03-01T09:00:00+00:00,c1,v1,,,"
    summary = import_events([write_csv(tmp_path / "a.csv", row, row)], log)
    assert summary.rows_written == 2


def test_one_bad_row_writes_nothing_and_reports_row_and_column(
    tmp_path: Path, log: EventLog
) -> None:
    bad = write_csv(
        tmp_path / "bad.csv",
        OK.format(i=1, d=1),
        "e2,r2,opened,2026-03-01T09:00:00+02:00,c1,v1,,,",
        "e3,a@b.com,open,2026-03-01T09:00:00,c1,v1,,-2,",
    )
    report = tmp_path / "report.csv"
    with pytest.raises(ImportValidationError) as info:
        import_events([bad], log, report_path=report)
    assert log.is_empty()
    assert info.value.total == 4
    assert [(e.row, e.column) for e in info.value.errors] == [
        (2, "kind"),
        (3, "recipient_id"),
        (3, "occurred_at"),
        (3, "value"),
    ]
    with report.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert rows[0]["row"] == "2" and rows[0]["column"] == "kind"


def test_invalid_second_file_blocks_the_valid_first(tmp_path: Path, log: EventLog) -> None:
    good = write_csv(tmp_path / "good.csv", OK.format(i=1, d=1))
    bad = write_csv(tmp_path / "bad.csv", "e9,r9,open,not-a-date,c1,v1,,,")
    with pytest.raises(ImportValidationError):
        import_events([good, bad], log)
    assert log.is_empty()


def test_error_list_is_capped_but_total_counts_all(tmp_path: Path, log: EventLog) -> None:
    rows = [f"e{i},r{i},nope,2026-03-01T09:00:00+00:00,,,,," for i in range(50)]
    with pytest.raises(ImportValidationError) as info:
        import_events([write_csv(tmp_path / "a.csv", *rows)], log)
    assert len(info.value.errors) == ERRORS_SHOWN
    assert info.value.total == 50
    assert "and 30 more" in str(info.value)


def test_parquet_files_are_imported(tmp_path: Path, log: EventLog) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "recipient_id": ["r1", "r2"],
                "kind": ["send", "deliver"],
                "occurred_at": ["2026-03-01T09:00:00+00:00", "2026-03-01T09:01:00-05:00"],
            }
        ),
        path,
    )
    assert import_events([path], log).rows_written == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("events.json", "{}", "unsupported file type"),
        ("empty.csv", "", "empty file"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_unreadable_inputs_are_named(
    tmp_path: Path, log: EventLog, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        import_events([path], log)
