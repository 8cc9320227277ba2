from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from inboxlab.records import EventKind, EventRecord

BASE = {"recipient_id": "r1", "kind": "open", "occurred_at": "2026-03-01T09:30:00+01:00"}


def test_event_timestamp_is_stored_in_utc() -> None:
    event = EventRecord.model_validate(BASE)
    assert event.occurred_at == dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    assert event.kind is EventKind.OPEN


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("recipient_id", "ann@example.com", "not an email address"),
        ("recipient_id", "", "at least 1 character"),
        ("kind", "opened", "Input should be 'send'"),
        ("occurred_at", "2026-03-01T09:30:00", "needs a UTC offset"),
        ("value", -1, "greater than or equal to 0"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_invalid_event_names_field_and_rule(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        EventRecord.model_validate({**BASE, field: value})
    (error,) = info.value.errors()
    assert error["loc"][0] == field
    assert message in error["msg"]
