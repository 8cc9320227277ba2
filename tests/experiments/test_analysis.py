from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from experiments.analysis import analyze
from experiments.source import ExperimentData, aggregate
from experiments.statistics import BinaryStatistic, Statistic
from inboxlab.errors import InvalidInputError
from inboxlab.experiment import GuardrailSpec


def _data(
    clicks: dict[str, tuple[int, int]], unsub: dict[str, tuple[int, int]] | None = None
) -> ExperimentData:
    stats: dict[str, dict[str, Statistic]] = {
        "click": {a: BinaryStatistic(*v) for a, v in clicks.items()}
    }
    metrics: dict[str, object] = {"click": "binary"}
    if unsub:
        stats["unsubscribe"] = {a: BinaryStatistic(*v) for a, v in unsub.items()}
        metrics["unsubscribe"] = "binary"
    return ExperimentData(
        arms=tuple(sorted(clicks)),
        units={a: v[0] for a, v in clicks.items()},
        metrics=metrics,  # type: ignore[arg-type]
        stats=stats,
    )


def test_clear_winner_is_shipped_with_the_rule(
    units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> None:
    df = units({"a": 0.05, "b": 0.065, "c": 0.05}, 60_000, seed=1)
    result = analyze(aggregate(write_table(df), segments=["tier"]), control="a")
    assert result.arms == ("a", "b", "c")
    assert result.primary.metric == "click"
    assert result.recommendation.decision == "ship"
    assert result.recommendation.arm == "b"
    assert result.recommendation.rule == "winner"
    assert "Ship b" in result.recommendation.text
    b = result.primary.arm("b")
    assert b.lift is not None and b.lift.chance_to_beat > 0.99
    assert b.probability_best > 0.9
    assert not result.srm.flagged
    assert {g.metric for g in result.guardrails} == {"unsubscribe"}
    assert {s.level for s in result.segments} == {"high", "mid", "low"}
    assert result.timeline


def test_planted_sample_ratio_mismatch_stops_the_experiment() -> None:
    result = analyze(_data({"a": (52_000, 2600), "b": (48_000, 2900)}), control="a")
    assert result.srm.flagged
    assert result.recommendation.decision == "stop"
    assert result.recommendation.rule == "srm"


def test_flagged_guardrail_blocks_shipping() -> None:
    data = _data(
        {"a": (50_000, 2500), "b": (50_000, 3000)}, unsub={"a": (50_000, 100), "b": (50_000, 200)}
    )
    result = analyze(data, control="a")
    (g,) = result.guardrails
    assert g.flagged and g.probability_worse > 0.99
    assert result.recommendation.decision == "stop"
    assert result.recommendation.rule == "guardrail"


def test_guardrail_probability_uses_margin() -> None:
    data = _data(
        {"a": (50_000, 2500), "b": (50_000, 2500)}, unsub={"a": (50_000, 100), "b": (50_000, 108)}
    )
    tight = analyze(data, control="a", guardrails=[GuardrailSpec(metric="unsubscribe", margin=0)])
    loose = analyze(data, control="a", guardrails=[GuardrailSpec(metric="unsubscribe", margin=1)])
    assert tight.guardrails[0].probability_worse > 0.6
    assert loose.guardrails[0].probability_worse < 1e-4


def test_control_better_than_every_variant_stops() -> None:
    result = analyze(_data({"a": (50_000, 3000), "b": (50_000, 2500)}), control="a")
    assert result.recommendation.decision == "stop"
    assert result.recommendation.rule == "control-wins"


def test_close_race_keeps_running() -> None:
    result = analyze(_data({"a": (20_000, 1000), "b": (20_000, 1020)}), control="a")
    assert result.recommendation.decision == "keep running"
    assert result.recommendation.rule == "undecided"


@pytest.mark.parametrize(
    ("clicks", "arms", "warning"),
    [
        ({"a": (1000, 50), "b": (1000, 60)}, ("a", "b", "c"), "arm 'c' has no units"),
        ({"a": (1000, 0), "b": (1000, 0)}, (), "arm 'a' has no click events yet"),
        ({"a": (40, 2), "b": (1000, 60)}, (), "fewer than the minimum 100"),
    ],
)
def test_degenerate_data_gives_warnings_not_exceptions(
    clicks: dict[str, tuple[int, int]], arms: tuple[str, ...], warning: str
) -> None:
    result = analyze(_data(clicks), control="a", arms=arms)
    assert any(warning in w for w in result.warnings)
    assert result.recommendation.decision in {"keep running", "stop"}
    assert len(result.primary.arms) == len(set(clicks) | set(arms))


def test_too_few_units_keeps_running_even_with_a_big_lift() -> None:
    result = analyze(_data({"a": (50, 1), "b": (50, 20)}), control="a")
    assert result.recommendation.rule == "minimum-sample"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"control": "z"}, "control"), ({"control": "a", "primary": "open"}, "metric")],
)
def test_unknown_control_or_metric_is_rejected(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        analyze(_data({"a": (100, 5), "b": (100, 6)}), **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bandit_data_reports_ipw_beside_naive(write_table: Callable[..., Path]) -> None:
    df = pd.DataFrame(
        {
            "arm": ["a"] * 600 + ["b"] * 400,
            "click": ([1] * 30 + [0] * 570) + ([1] * 30 + [0] * 370),
            "pscore": [0.6] * 600 + [0.4] * 400,
        }
    )
    result = analyze(aggregate(write_table(df)), control="a")
    assert result.experiment_type == "bandit"
    assert result.srm.method == "horvitz-thompson"
    b = result.primary.arm("b")
    assert b.ipw_lift is not None and b.lift is not None
    assert b.ipw_value == pytest.approx(0.075)
    assert b.ipw_lift.estimate == pytest.approx(0.5, abs=1e-9)


def test_arm_without_units_is_not_flagged_on_guardrails() -> None:
    data = _data(
        {"a": (50_000, 2500), "b": (50_000, 2600)}, unsub={"a": (50_000, 100), "b": (50_000, 100)}
    )
    result = analyze(data, control="a", arms=("a", "b", "c"))
    assert [g.arm for g in result.guardrails] == ["b"]


def test_winner_harming_a_guardrail_is_not_shipped() -> None:
    data = _data(
        {"a": (50_000, 2500), "b": (50_000, 3000), "c": (50_000, 2500)},
        unsub={"a": (50_000, 100), "b": (50_000, 200), "c": (50_000, 100)},
    )
    result = analyze(data, control="a")
    assert result.recommendation.decision == "keep running"
    assert "b is flagged on unsubscribe" in result.recommendation.text
