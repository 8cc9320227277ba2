from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from features.engineering.tables import VARIANT_FEATURES
from features.online import InMemoryFeatureClient
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.experiment import parse_definition
from inboxlab.records import Action
from inboxlab.settings import Settings
from serving.batch import BatchDecider
from serving.decide import DecisionEngine
from serving.schemas import DecisionRequest, DecisionResponse
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # a Monday
ZONES = ["Asia/Tokyo", "Europe/Berlin", "America/New_York", "UTC", "Australia/Sydney"]


@pytest.fixture
def store(sqlite_store: DecisionStore) -> DecisionStore:
    return sqlite_store


def audience_features(n: int) -> InMemoryFeatureClient:
    """Recipients with varied zones, engagement tiers, open-time profiles and consent."""
    rng = np.random.default_rng(11)
    rows: dict[str, dict[str, Any]] = {}
    variants: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(n):
        hours = rng.dirichlet(np.ones(24))
        row: dict[str, Any] = {f"open_hour_{h:02d}": float(hours[h]) for h in range(24)}
        row |= {f"late_open_hour_{h:02d}": float(hours[(h + 3) % 24]) for h in range(24)}
        row |= {f"open_dow_{d}": float(w) for d, w in enumerate(rng.dirichlet(np.ones(7)))}
        row |= {
            "timezone": ZONES[i % len(ZONES)],
            "opens_90d": int(rng.integers(0, 12)) * (i % 3 != 0),
            "clicks_90d": int(rng.integers(0, 3)),
            "open_rate_30d": float(rng.random()),
            "click_rate_90d": float(rng.random() / 5),
        }
        if i % 11 == 5:
            row["is_unsubscribed"] = 1
        rows[f"r{i}"] = row
        variants[f"r{i}", "v1"] = {
            "variant_click_rate_90d": float(rng.random() / 4),
            "variant_deliveries_90d": int(rng.integers(1, 9)),
        }
    return InMemoryFeatureClient(rows, variants=variants)


def make_engine(
    settings: Settings, store: DecisionStore, models: ModelSet, **decisions: Any
) -> DecisionEngine:
    s = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(
                update={
                    "send_time_exploration": 0.0,
                    "allocation_refresh_seconds": 3600.0,  # one allocation for both paths
                    **decisions,
                }
            )
        }
    )
    engine = DecisionEngine(
        s,
        store,
        ExperimentStore(store.engine),
        audience_features(40),
        models,
        np.random.default_rng(1),
    )
    for definition in (
        {
            "id": "bandit-1",
            "type": "bandit",
            "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
            "holdout_pct": 15,
        },
        {
            "id": "ctx-1",
            "type": "bandit",
            "arms": [{"id": "v0", "control": True}, {"id": "v1"}],
            "bandit": {"contextual": True},
        },
        {
            "id": "ab-1",
            "type": "ab",
            "arms": [{"id": "v0", "control": True, "weight": 3}, {"id": "v1", "weight": 1}],
        },
    ):
        engine.experiments.create(parse_definition(definition))
    return engine


def request(i: int, **kw: Any) -> DecisionRequest:
    return DecisionRequest.model_validate(
        {"recipient_id": f"r{i}", "campaign_id": "c1", "now": NOW.isoformat(), **kw}
    )


def mixed_audience() -> list[DecisionRequest]:
    """Every branch of a decision: each policy, windows, quiet hours, repeats, two clocks."""
    out: list[DecisionRequest] = []
    for i in range(40):
        kind = i % 6
        if kind == 0:
            out.append(request(i, experiment_id="bandit-1"))
        elif kind == 1:
            out.append(request(i, experiment_id="ctx-1", variants=["v1", "v0"]))
        elif kind == 2:
            out.append(request(i, experiment_id="ab-1"))
        elif kind == 3:
            out.append(request(i, variants=["x", "y"]))
        elif kind == 4:
            out.append(request(i, context={"timezone": "Europe/Lisbon"}))
        else:
            later = (NOW + timedelta(hours=7, minutes=13)).isoformat()
            out.append(request(i, experiment_id="bandit-1", now=later))
    start = NOW + timedelta(hours=2)
    night = NOW.replace(hour=22)
    for i in (1, 2, 3):  # several recipients each, so that holdouts cannot hide a branch
        # six hours; fifteen minutes with no whole hour; a window inside quiet hours
        six = {"start": start.isoformat(), "end": (start + timedelta(hours=6)).isoformat()}
        short = {
            "start": (start + timedelta(minutes=10)).isoformat(),
            "end": (start + timedelta(minutes=25)).isoformat(),
        }
        quiet = {"start": night.isoformat(), "end": (night + timedelta(hours=4)).isoformat()}
        out.append(request(i, send_window=six))
        out.append(request(i, send_window=short))
        out.append(request(i, context={"timezone": "UTC"}, send_window=quiet))
    out += [
        request(6, experiment_id="bandit-1"),  # a recipient again, in the same chunk
        request(6, experiment_id="ab-1"),
    ]
    return out


def comparable(d: DecisionResponse) -> dict[str, Any]:
    return d.model_dump(exclude={"decision_id", "scores"})


def decided_both_ways(
    engine: DecisionEngine, audience: list[DecisionRequest], *, chunk_size: int, seed: int
) -> tuple[list[DecisionResponse], list[DecisionResponse]]:
    """``audience`` decided one by one, then as a batch, each from the same random draws."""
    engine.rng = np.random.default_rng(seed)
    single = [engine.decide(r) for r in audience]
    engine.rng = np.random.default_rng(seed)
    return single, BatchDecider(engine, chunk_size=chunk_size).decide(audience)


def assert_same_decisions(single: list[DecisionResponse], batch: list[DecisionResponse]) -> None:
    """Batch and single decisions agree on everything but ids, and on scores to 1e-9."""
    assert len(batch) == len(single)
    for one, many in zip(single, batch, strict=True):
        assert comparable(many) == comparable(one)
        for name in ("p_open", "p_click", "p_convert"):
            expected = getattr(one.scores, name)
            got = getattr(many.scores, name)
            assert (got is None) == (expected is None)
            if expected is not None:
                assert got == pytest.approx(expected, abs=1e-9)


def test_batch_decides_as_single_decisions_do_given_the_same_draws(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models, global_holdout_pct=10)
    single, batch = decided_both_ways(engine, mixed_audience(), chunk_size=7, seed=5)
    assert_same_decisions(single, batch)
    # the audience reaches every branch
    actions = Counter(d.action for d in batch)
    assert actions[Action.SEND] and actions[Action.SUPPRESS] and actions[Action.HOLDOUT]
    reasons = {r for d in batch for r in d.reasons}
    assert {"unsubscribed", "send_window_has_no_whole_hour", "quiet_hours_unavoidable"} <= reasons
    assert {d.variant_id for d in batch} >= {"v0", "v1", "x"}


def test_batch_decides_as_single_decisions_do_without_models(
    settings: Settings, store: DecisionStore
) -> None:
    engine = make_engine(settings, store, ModelSet(settings))
    single, batch = decided_both_ways(engine, mixed_audience(), chunk_size=16, seed=2)
    assert [comparable(d) for d in batch] == [comparable(d) for d in single]
    assert any("send_time_unscored" not in d.reasons and d.send_at for d in batch)


def test_streamed_lines_are_the_stored_decisions(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models)
    audience = mixed_audience()
    body = b"".join(BatchDecider(engine, chunk_size=9).lines(audience))
    lines = body.decode().splitlines()
    assert [json.loads(line)["recipient_id"] for line in lines] == [
        r.recipient_id for r in audience
    ]
    for line, asked in zip(lines, audience, strict=True):
        parsed = DecisionResponse.model_validate_json(line)
        assert parsed.model_dump_json() == line  # the single endpoint's serialization
        stored = store.get_decision(parsed.decision_id)
        assert stored is not None
        assert stored.action is parsed.action
        assert list(stored.reasons) == parsed.reasons
        assert stored.send_at == parsed.send_at
        assert stored.variant_propensity == parsed.variant_propensity
        assert stored.scores == parsed.scores.model_dump(exclude_none=True)
        assert stored.campaign_id == asked.campaign_id
        assert stored.decided_at == asked.now
        assert store.decision_features(parsed.decision_id) == engine.features.get(  # type: ignore[union-attr]
            asked.recipient_id
        )
    # trials were counted for the bandit sends only, as single decisions count them
    sent = Counter(
        (p["variant_id"])
        for p in map(json.loads, lines)
        if p["action"] == "send" and p["variant_id"] in {"v0", "v1", "v2"}
    )
    counted: Counter[str] = Counter()
    for experiment in ("bandit-1", "ctx-1", "ab-1"):
        for stat in store.arm_statistics(experiment):
            counted[stat.variant_id] += stat.trials
    assert counted == sent


def test_sends_of_the_chunk_being_written_count_for_the_next_chunk(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models, max_sends_1d=1)
    # A send counts from its send time: a day later, the first one is within the last 24 h.
    later = (NOW + timedelta(hours=25)).isoformat()
    audience = [request(7), request(7, now=later), request(8), request(7, now=later)]
    # One request per chunk: the second is decided while the first one's write may still
    # be under way.
    lines = b"".join(BatchDecider(engine, chunk_size=1).lines(audience)).splitlines()
    decided = [json.loads(line) for line in lines]
    assert [d["action"] for d in decided] == ["send", "suppress", "send", "suppress"]
    assert decided[1]["reasons"] == ["frequency_cap:1d"]


def test_exploration_propensities_match_how_often_hours_are_chosen(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models, send_time_exploration=0.5)
    outs = BatchDecider(engine, chunk_size=250).decide([request(0) for _ in range(1000)])
    best = Counter(o.send_at for o in outs).most_common(1)[0][0]
    share = sum(o.send_at == best for o in outs) / len(outs)
    p_best = next(o.send_time_propensity for o in outs if o.send_at == best)
    assert p_best == pytest.approx(share, abs=0.05)
    others = {o.send_time_propensity or 0.0 for o in outs if o.send_at != best}
    assert len(others) == 1 and 0 < others.pop() < (p_best or 0.0)  # 0.5 / allowed hours


def test_a_batch_with_a_bad_request_is_refused_before_any_line(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    decider = BatchDecider(make_engine(settings, store, models))
    with pytest.raises(NotFoundError, match="nope"):
        decider.check([request(0), request(1, experiment_id="nope")])
    with pytest.raises(InvalidInputError, match="variants"):
        decider.check([request(0, experiment_id="ab-1", variants=["v0", "zz"])])


def test_variant_history_of_each_send_reaches_the_engagement_model(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    # The same recipient twice in a chunk with different variants: each send is scored
    # with its own variant's history (as two single decisions would be).
    engine = make_engine(settings, store, models)
    audience = [request(4, variants=["v1"]), request(4, variants=["v0"])]
    single = [engine.decide(r) for r in audience]
    batch = BatchDecider(engine).decide(audience)
    assert [d.scores.p_click for d in batch] == pytest.approx(
        [d.scores.p_click for d in single], abs=1e-12
    )
    assert len(VARIANT_FEATURES) > 0
