from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inboxlab.errors import InvalidInputError
from inboxlab.experiment import load_definition, parse_definition

VALID: dict[str, Any] = {
    "id": "subject-2026-03",
    "type": "ab",
    "arms": [{"id": "control", "control": True}, {"id": "emoji", "weight": 3}],
    "primary_metric": "click",
    "holdout_pct": 5,
    "attribution_window_hours": 48,
    "segment_columns": ["tier"],
}


def test_valid_definition_loads_from_yaml_with_default_guardrails(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: subject-2026-03\ntype: bandit\narms:\n  - {id: a, control: true}\n  - {id: b}\n"
        "primary_metric: revenue\n",
        encoding="utf-8",
    )
    d = load_definition(path)
    assert d.control == "a"
    assert d.type == "bandit"
    assert [g.metric for g in d.guardrails] == ["unsubscribe", "complaint", "bounce"]
    assert all(g.margin == 0.1 for g in d.guardrails)


def test_weights_are_normalised() -> None:
    assert parse_definition(VALID).weights == {"control": 0.25, "emoji": 0.75}


def _with(**changes: Any) -> dict[str, Any]:
    return {**VALID, **changes}


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({k: v for k, v in VALID.items() if k != "id"}, "id", "Field required"),
        (_with(id="has space"), "id", "pattern"),
        (_with(type="multivariate"), "type", "'ab' or 'bandit'"),
        (_with(arms=[{"id": "a", "control": True}]), "arms", "at least 2"),
        (_with(arms=[{"id": "a"}, {"id": "b"}]), "definition", "exactly one arm"),
        (
            _with(arms=[{"id": "a", "control": True}, {"id": "b", "control": True}]),
            "definition",
            "found 2",
        ),
        (_with(arms=[{"id": "a", "control": True}, {"id": "a"}]), "definition", "unique"),
        (
            _with(arms=[{"id": "a", "control": True}, {"id": "b", "weight": 0}]),
            "arms.1.weight",
            "greater than 0",
        ),
        (_with(primary_metric="opens"), "primary_metric", "'open'"),
        (_with(holdout_pct=100), "holdout_pct", "less than 100"),
        (_with(attribution_window_hours=0), "attribution_window_hours", "greater than 0"),
        (
            _with(guardrails=[{"metric": "bounce", "margin": -0.1}]),
            "guardrails.0.margin",
            "greater than or equal to 0",
        ),
        (_with(guardrails=[{"metric": "spam"}]), "guardrails.0.metric", "'unsubscribe'"),
        (_with(guardrails=[{"metric": "bounce"}, {"metric": "bounce"}]), "definition", "once"),
        (_with(colour="blue"), "colour", "Extra inputs"),
        (["not", "a", "mapping"], "definition", "must be a mapping"),
    ],
)
def test_invalid_definition_is_rejected_naming_field_and_reason(
    data: Any, field: str, reason: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_definition(data)
    assert info.value.field == field
    assert reason in str(info.value)


def test_invalid_yaml_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_definition(path)
