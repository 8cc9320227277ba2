from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from experiments.exports import analyze_file
from inboxlab.errors import InvalidInputError
from inboxlab.experiment import parse_definition


def test_definition_weights_arms_and_guardrails_are_used(
    units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> None:
    df = units({"a": 0.05, "b": 0.05}, 40_000, seed=12)  # a 50/50 split on disk
    spec = parse_definition(
        {
            "id": "weighted",
            "type": "ab",
            "primary_metric": "click",
            "arms": [{"id": "a", "control": True, "weight": 3}, {"id": "b"}, {"id": "c"}],
            "guardrails": [{"metric": "unsubscribe", "margin": 0.2}, {"metric": "bounce"}],
            "segment_columns": ["tier"],
        }
    )
    result = analyze_file(write_table(df), definition=spec)
    assert result.experiment_id == "weighted"
    assert result.srm.flagged  # 50/50/0 against 60/20/20 weights
    assert result.recommendation.rule == "srm"
    assert any("arm 'c' has no units" in w for w in result.warnings)
    assert any("guardrail 'bounce' is not in the data" in w for w in result.warnings)
    assert {g.margin for g in result.guardrails} == {0.2}
    assert {s.column for s in result.segments} == {"tier"}


def test_control_is_required_without_a_definition(
    units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> None:
    with pytest.raises(InvalidInputError) as info:
        analyze_file(write_table(units({"a": 0.1, "b": 0.1}, 100)))
    assert info.value.field == "control"
