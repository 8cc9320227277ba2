from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings
from serving.coalesce import Coalescer
from serving.decide import DecisionEngine
from serving.schemas import DecisionRequest, DecisionResponse
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from tests.serving.test_batch import comparable, make_engine, mixed_audience, request


@pytest.fixture
def engine(settings: Settings, store: DecisionStore, models: ModelSet) -> DecisionEngine:
    return make_engine(settings, store, models, global_holdout_pct=10)


class Groups:
    """Records the recipients of every group the engine decides together."""

    def __init__(self, engine: DecisionEngine, *, fail: bool = False) -> None:
        self.seen: list[list[str]] = []
        self._decide = engine.decide_together
        self._fail = fail
        engine.decide_together = self  # type: ignore[method-assign]

    def __call__(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        self.seen.append([r.recipient_id for r in requests])
        if self._fail:
            raise RuntimeError("the group failed")
        return self._decide(requests)


def arrive_together(coalescer: Coalescer, requests: Sequence[DecisionRequest]) -> list[Any]:
    """Every request's answer (or error) when all arrive in the same turn of the loop."""

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(coalescer.decide(r) for r in requests), return_exceptions=True
        )

    return asyncio.run(main())


def test_requests_ready_together_are_one_group_decided_as_singles_would_be(
    engine: DecisionEngine,
) -> None:
    audience = list({r.recipient_id: r for r in mixed_audience()}.values())  # one each
    engine.rng = np.random.default_rng(5)
    single = [engine.decide(r) for r in audience]
    groups = Groups(engine)
    engine.rng = np.random.default_rng(5)
    together = arrive_together(Coalescer(engine, max_group=64), audience)
    assert groups.seen == [[r.recipient_id for r in audience]]
    for one, grouped in zip(single, together, strict=True):
        assert isinstance(grouped, DecisionResponse)
        assert comparable(grouped) == comparable(one)
        assert grouped.scores.model_dump() == pytest.approx(one.scores.model_dump(), abs=1e-9)
    assert len({d.decision_id for d in together}) == len(audience)


def test_a_bad_request_fails_alone_and_the_others_are_decided(engine: DecisionEngine) -> None:
    groups = Groups(engine)
    answers = arrive_together(
        Coalescer(engine),
        [
            request(1),
            request(2, experiment_id="nope"),
            request(3, experiment_id="ab-1", variants=["v0", "zz"]),
            request(4, experiment_id="bandit-1"),
        ],
    )
    assert isinstance(answers[1], NotFoundError)
    assert isinstance(answers[2], InvalidInputError) and answers[2].field == "variants"
    assert [a.recipient_id for a in (answers[0], answers[3])] == ["r1", "r4"]
    assert groups.seen == [["r1", "r4"]]


def test_a_recipient_twice_in_a_turn_is_decided_in_order_in_two_groups(
    engine: DecisionEngine,
) -> None:
    groups = Groups(engine)
    answers = arrive_together(
        Coalescer(engine, max_group=2),
        [request(1), request(2), request(1, campaign_id="c2"), request(3), request(4)],
    )
    assert groups.seen == [["r1", "r2"], ["r1", "r3"], ["r4"]]
    assert [a.recipient_id for a in answers] == ["r1", "r2", "r1", "r3", "r4"]


def test_a_group_that_fails_is_decided_one_by_one(engine: DecisionEngine) -> None:
    groups = Groups(engine, fail=True)
    answers = arrive_together(Coalescer(engine), [request(i) for i in range(3)])
    assert groups.seen == [["r0", "r1", "r2"]]
    assert [a.recipient_id for a in answers] == ["r0", "r1", "r2"]


def test_a_group_of_one_decides_each_request_alone(engine: DecisionEngine) -> None:
    groups = Groups(engine)
    answers = arrive_together(Coalescer(engine, max_group=1), [request(i) for i in range(3)])
    assert groups.seen == []
    assert [a.recipient_id for a in answers] == ["r0", "r1", "r2"]
    with pytest.raises(ValueError, match="max_group"):
        Coalescer(engine, max_group=0)
