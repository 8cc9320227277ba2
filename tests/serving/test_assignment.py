from __future__ import annotations

from collections import Counter

import pytest
from scipy import stats

from inboxlab.errors import InvalidInputError
from serving.assignment import FixedSplit, hash_unit, in_holdout

IDS = [f"r-{i:06d}" for i in range(20_000)]


def test_assignment_is_stable_for_the_same_inputs() -> None:
    split = FixedSplit(weights={"a": 0.3, "b": 0.7})
    first = [split.assign("salt", "exp-1", r) for r in IDS[:500]]
    assert first == [split.assign("salt", "exp-1", r) for r in IDS[:500]]


def test_pinned_hash_value_does_not_drift_between_releases() -> None:
    # Changing the hash would silently move every recipient to another arm mid-experiment.
    assert hash_unit("salt", "variant", "exp-1", "r-1") == 0.6800144611288765


def test_assignment_matches_weights_over_many_ids() -> None:
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    split = FixedSplit(weights=weights)
    counts = Counter(split.assign("salt", "exp-1", r)[0] for r in IDS)
    observed = [counts[v] for v in weights]
    expected = [w * len(IDS) for w in weights.values()]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_assignment_returns_the_configured_weight_as_propensity() -> None:
    split = FixedSplit(weights={"a": 0.25, "b": 0.75})
    assert {split.assign("s", "e", r) for r in IDS[:200]} == {("a", 0.25), ("b", 0.75)}


def test_salt_and_experiment_reshuffle_assignments() -> None:
    split = FixedSplit(weights={"a": 0.5, "b": 0.5})
    base = [split.assign("s1", "e1", r)[0] for r in IDS[:2_000]]
    for salt, experiment in (("s2", "e1"), ("s1", "e2")):
        other = [split.assign(salt, experiment, r)[0] for r in IDS[:2_000]]
        agreement = sum(x == y for x, y in zip(base, other, strict=True)) / len(base)
        assert 0.45 < agreement < 0.55


def test_holdout_is_independent_of_the_variant() -> None:
    split = FixedSplit(weights={"a": 0.5, "b": 0.5})
    table = Counter(
        (split.assign("s", "e", r)[0], in_holdout("s", "e", r, percentage=20)) for r in IDS
    )
    observed = [[table["a", False], table["a", True]], [table["b", False], table["b", True]]]
    assert stats.chi2_contingency(observed).pvalue > 0.001


@pytest.mark.parametrize("percentage", [0.0, 5.0, 50.0, 100.0])
def test_holdout_share_matches_the_percentage(percentage: float) -> None:
    share = sum(in_holdout("s", "global", r, percentage=percentage) for r in IDS) / len(IDS)
    assert share == pytest.approx(percentage / 100, abs=0.01)


@pytest.mark.parametrize(
    "weights",
    [
        {},
        {"a": 0.5, "b": 0.4},
        {"a": 1.2, "b": -0.2},
        {"a": float("nan"), "b": 1.0},
        {"a": 0.0, "b": 1.0},
    ],
)
def test_invalid_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError) as info:
        FixedSplit(weights=weights)
    assert info.value.field == "weights"


@pytest.mark.parametrize("percentage", [-1.0, 100.5])
def test_invalid_holdout_percentage_is_refused(percentage: float) -> None:
    with pytest.raises(InvalidInputError, match="percentage"):
        in_holdout("s", "e", "r-1", percentage=percentage)


def test_split_ignores_later_changes_to_the_callers_dict() -> None:
    weights = {"a": 0.5, "b": 0.5}
    split = FixedSplit(weights=weights)
    weights["a"] = 0.9
    assert split.weights["a"] == 0.5
