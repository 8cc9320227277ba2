from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

import serving.batch
from serving.batch import BatchRequest, parse_batch
from serving.json_items import array_item_spans


def _item(i: int, **extra: Any) -> dict[str, Any]:
    return {"recipient_id": f"r{i:05d}", "campaign_id": "spring", **extra}


VALID = [
    json.dumps({"decisions": [_item(i) for i in range(7)]}),
    # whitespace of every JSON kind, an escaped key, nested objects, non-ASCII text
    '\n\t{ "decis\\u0069ons" :\r\n [ {"recipient_id": "r\u00e9-1", "campaign_id": "c",'
    ' "context": {"timezone": "Asia/Tokyo"}} ,\n{"recipient_id":"r-2","campaign_id":"c",'
    '"variants":["a","b"],"send_window":{"start":"2026-03-01T08:00:00Z",'
    '"end":"2026-03-02T08:00:00Z"},"now":"2026-03-01T07:30:00+09:00"}  ] }  ',
    json.dumps({"decisions": [_item(0, experiment_id="exp-1", variants=["x", "y"])]}),
]

INVALID = [
    b"",
    b"not json",
    b'{"decisions": []}',  # too few
    b'{"decisions": [{"recipient_id": "r-1"}]}',  # campaign missing
    b'{"decisions": [{"recipient_id": "r-1", "campaign_id": "c"}], "extra": 1}',
    b'{"decisions": [{"recipient_id": "r-1", "campaign_id": "c"}]} trailing',
    b'{"decisions": [{"recipient_id": "r-1", "campaign_id": "c"},]}',  # trailing comma
    b'{"decisions": [{"recipient_id": NaN, "campaign_id": "c"}]}',
    b'{"decisions": [{"recipient_id": "\\ud800", "campaign_id": "c"}]}',  # lone surrogate
    b'{"decisions": [{"recipient_id": "r-\xff", "campaign_id": "c"}]}',  # not UTF-8
    b'{"decisions": {"recipient_id": "r-1", "campaign_id": "c"}}',
    b'[{"recipient_id": "r-1", "campaign_id": "c"}]',
    b'{"decisions": [{"recipient_id": "r-1", "campaign_id": "c"}], "decisions": []}',
]


@pytest.mark.parametrize("body", VALID)
@pytest.mark.parametrize("slice_size", [1, 2, 2_000])
def test_sliced_parse_equals_one_validation(
    body: str, slice_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving.batch, "PARSE_SLICE", slice_size)
    assert serving.batch._parse_in_slices(body.encode()) is not None  # not the fallback
    assert parse_batch(body.encode()) == BatchRequest.model_validate_json(body)


@pytest.mark.parametrize("body", INVALID)
def test_invalid_bodies_get_the_errors_of_one_validation(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving.batch, "PARSE_SLICE", 1)
    assert serving.batch._parse_in_slices(body) is None  # validated whole: its errors
    try:
        expected: list[dict[str, Any]] | BatchRequest = BatchRequest.model_validate_json(body)
    except ValidationError as exc:
        expected = exc.errors(include_url=False)
    try:
        got: list[dict[str, Any]] | BatchRequest = parse_batch(body)
    except ValidationError as exc:
        got = exc.errors(include_url=False)
    assert repr(got) == repr(expected)  # repr: an error may quote a NaN input


def test_an_invalid_item_in_a_late_slice_is_named_by_its_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving.batch, "PARSE_SLICE", 3)
    items: list[dict[str, Any]] = [_item(i) for i in range(10)]
    items[8] = {"recipient_id": "r-8"}
    with pytest.raises(ValidationError) as caught:
        parse_batch(json.dumps({"decisions": items}).encode())
    (error,) = caught.value.errors()
    assert error["loc"] == ("decisions", 8, "campaign_id")


def test_each_validation_call_gets_one_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    validate = serving.batch._validate_slice

    def watched(json_array: str) -> list[Any]:
        items = validate(json_array)
        calls.append(len(items))
        return items

    monkeypatch.setattr(serving.batch, "PARSE_SLICE", 4)
    monkeypatch.setattr(serving.batch, "_validate_slice", watched)
    body = json.dumps({"decisions": [_item(i) for i in range(10)]}).encode()
    parsed = parse_batch(body)
    assert calls == [4, 4, 2]
    assert [d.recipient_id for d in parsed.decisions] == [f"r{i:05d}" for i in range(10)]


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ('{"k": []}', []),
        ('{"k":[1,"a]",{"x":[{}]},null]}', ["1", '"a]"', '{"x":[{}]}', "null"]),
        (' { "k" : [ 1 , 2 ] } ', ["1", "2"]),
    ],
)
def test_spans_cover_each_item_exactly(text: str, items: list[str]) -> None:
    spans = array_item_spans(text, "k")
    assert spans is not None
    assert [text[a:b] for a, b in spans] == items


@pytest.mark.parametrize(
    "text",
    [
        '{"k": [1]',
        '{"k": [1] "x"}',
        '{"j": [1]}',
        '{"k": 1}',
        '{"k": [1,]}',
        "[1]",
        "",
        '{"k":[1]}x',
    ],
)
def test_other_shapes_have_no_spans(text: str) -> None:
    assert array_item_spans(text, "k") is None
