from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from features.events import EVENT_SCHEMA, validate_events

GOOD = {
    "event_id": "e1",
    "recipient_id": "r1",
    "kind": "open",
    "occurred_at": "2026-03-01T09:30:00+01:00",
    "campaign_id": "c1",
    "variant_id": "v1",
    "decision_id": None,
    "value": None,
    "is_machine_open": None,
}


def _row(**changes: str | None) -> pa.Table:
    row = {**GOOD, **changes}
    return pa.table({k: pa.array([v], pa.string()) for k, v in row.items()})


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("kind", "opened", "unknown kind"),
        ("kind", None, "missing required value"),
        ("recipient_id", "ann@example.com", "looks like an email address"),
        ("recipient_id", None, "missing required value"),
        ("recipient_id", "   ", "missing required value"),
        ("recipient_id", "r" * 300, "longer than 256"),
        ("occurred_at", "2026-03-01T09:30:00", "no UTC offset"),
        ("occurred_at", "2026-03-01", "no UTC offset"),
        ("occurred_at", "yesterday", "not an ISO 8601 timestamp"),
        ("occurred_at", "2026-13-45T09:30:00+00:00", "not an ISO 8601 timestamp"),
        ("occurred_at", None, "missing required value"),
        ("value", "-3.5", "negative revenue"),
        ("value", "ten", "not a number"),
        ("value", "inf", "not a finite number"),
        ("is_machine_open", "maybe", "not a boolean"),
    ],
)
def test_bad_cell_is_reported_with_row_column_and_reason(
    column: str, value: str | None, reason: str
) -> None:
    raw = pa.concat_tables([_row(), _row(**{column: value})])
    result = validate_events(raw)
    assert len(result.errors) == 1
    (error,) = result.errors
    assert (error.row, error.column) == (2, column)
    assert reason in error.reason
    assert result.table.num_rows == 0


def test_email_value_is_not_echoed_in_the_reason() -> None:
    (error,) = validate_events(_row(recipient_id="ann@example.com")).errors
    assert "ann@example.com" not in str(error)


def test_missing_required_column_and_unknown_column_are_header_errors() -> None:
    raw = _row().drop_columns(["kind"]).append_column("opened_at", pa.array(["x"]))
    errors = validate_events(raw).errors
    assert {(e.row, e.column) for e in errors} == {(0, "kind"), (0, "opened_at")}


def test_valid_rows_are_normalised_to_utc_and_typed() -> None:
    raw = pa.concat_tables(
        [
            _row(occurred_at="2026-03-01T09:30:00+01:00", value="12.5", is_machine_open="TRUE"),
            _row(occurred_at="2026-03-01T08:30:00Z", value="", is_machine_open="0", event_id=""),
        ]
    )
    result = validate_events(raw)
    assert result.errors == ()
    assert result.table.schema.equals(EVENT_SCHEMA)
    rows = result.table.to_pylist()
    assert (
        rows[0]["occurred_at"]
        == rows[1]["occurred_at"]
        == dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    )
    assert (rows[0]["value"], rows[1]["value"]) == (12.5, None)
    assert (rows[0]["is_machine_open"], rows[1]["is_machine_open"]) == (True, False)
    assert rows[1]["event_id"] is None


def test_errors_come_in_row_order_across_columns() -> None:
    raw = pa.concat_tables(
        [_row(kind="x"), _row(), _row(recipient_id="a@b.co", kind="y"), _row(value="-1")]
    )
    errors = validate_events(raw).errors
    assert [(e.row, e.column) for e in errors] == [
        (1, "kind"),
        (3, "recipient_id"),
        (3, "kind"),
        (4, "value"),
    ]


def test_parquet_timestamps_without_time_zone_are_refused() -> None:
    raw = pa.table(
        {
            "recipient_id": ["r1"],
            "kind": ["send"],
            "occurred_at": pa.array([dt.datetime(2026, 3, 1, 9)], pa.timestamp("us")),
        }
    )
    (error,) = validate_events(raw).errors
    assert error.column == "occurred_at"
    assert "no time zone" in error.reason


def test_typed_parquet_columns_are_accepted() -> None:
    raw = pa.table(
        {
            "recipient_id": ["r1"],
            "kind": ["convert"],
            "occurred_at": pa.array(
                [dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)], pa.timestamp("ns", tz="UTC")
            ),
            "value": pa.array([19.99]),
            "is_machine_open": pa.array([None], pa.bool_()),
        }
    )
    result = validate_events(raw)
    assert result.errors == ()
    assert result.table.column("value").to_pylist() == [19.99]
