from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from features.online import InMemoryFeatureClient
from inboxlab.experiment import parse_definition
from inboxlab.records import Action
from inboxlab.settings import Settings
from serving.decide import DecisionEngine
from serving.schemas import DecisionRequest
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from tests.conftest import TEST_BUDGET_MS
from tests.serving.models import planted_models
from training.specs import ModelKind

NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # a Monday


class BrokenFeatures:
    features: tuple[str, ...] = ()

    def get(self, recipient_id: str) -> dict[str, Any]:
        raise OSError("online store down")

    def get_many(self, recipient_ids: Any) -> dict[str, Any]:
        raise OSError("online store down")


@pytest.fixture
def store(sqlite_store: DecisionStore) -> DecisionStore:
    return sqlite_store


def make_engine(
    settings: Settings,
    store: DecisionStore,
    models: ModelSet,
    *,
    features: Any = None,
    **decisions: Any,
) -> DecisionEngine:
    s = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(
                update={"send_time_exploration": 0.0, **decisions}
            )
        }
    )
    rows: dict[str, dict[str, Any]] = {
        "r-tokyo": {"timezone": "Asia/Tokyo", "opens_90d": 5, "open_rate_30d": 0.4},
        "r-gone": {"is_unsubscribed": 1},
    }
    client = InMemoryFeatureClient(rows) if features is None else features
    return DecisionEngine(
        s, store, ExperimentStore(store.engine), client, models, np.random.default_rng(1)
    )


def request(**kw: Any) -> DecisionRequest:
    return DecisionRequest.model_validate(
        {"recipient_id": "r-tokyo", "campaign_id": "c1", "now": NOW.isoformat(), **kw}
    )


def test_send_time_is_the_hour_the_model_prefers_in_local_time(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    out = make_engine(settings, store, models).decide(request())
    assert out.action is Action.SEND
    assert out.send_at is not None
    assert out.send_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 10
    assert out.send_time_propensity == 1.0
    assert out.scores.p_open is not None and out.scores.p_click is not None
    assert out.scores.p_convert is not None
    assert set(out.model_versions) == {
        "inboxlab-engagement",
        "inboxlab-send-time",
        "inboxlab-propensity",
    }
    stored = store.get_decision(out.decision_id)
    assert stored is not None and stored.send_at == out.send_at
    assert uuid.UUID(hex=out.decision_id).version == 7  # time-ordered: appends to the index


def test_quiet_hours_are_never_chosen(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    # the model's favourite local hour (10) is inside these quiet hours
    engine = make_engine(settings, store, models, quiet_start_hour=9, quiet_end_hour=12)
    out = engine.decide(request())
    assert out.send_at is not None
    assert not 9 <= out.send_at.astimezone(ZoneInfo("Asia/Tokyo")).hour < 12


def test_exploration_propensities_match_how_often_hours_are_chosen(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models, send_time_exploration=0.5)
    outs = engine.decide_together([request() for _ in range(600)])
    best = Counter(o.send_at for o in outs).most_common(1)[0][0]
    share = sum(o.send_at == best for o in outs) / len(outs)
    p_best = next(o.send_time_propensity for o in outs if o.send_at == best)
    assert p_best == pytest.approx(share, abs=0.06)
    assert all(o.send_time_propensity is not None and o.send_time_propensity > 0 for o in outs)


def test_unsubscribed_recipient_is_suppressed_with_the_reason(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    out = make_engine(settings, store, models).decide(request(recipient_id="r-gone"))
    assert out.action is Action.SUPPRESS
    assert "unsubscribed" in out.reasons
    assert out.variant_id is None and out.send_at is None


def test_bandit_logs_the_probability_of_the_arm_it_drew(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models)
    definition = parse_definition(
        {
            "id": "bandit-1",
            "type": "bandit",
            "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
        }
    )
    engine.experiments.create(definition)
    outs = engine.decide_together([request(experiment_id="bandit-1") for _ in range(300)])
    assert {o.variant_id for o in outs} == {"v0", "v1", "v2"}
    for o in outs:
        # no data yet: every arm is equally likely to be best
        assert o.variant_propensity == pytest.approx(1 / 3, abs=0.03)


def test_ab_split_logs_its_weight(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    engine = make_engine(settings, store, models)
    engine.experiments.create(
        parse_definition(
            {
                "id": "ab-1",
                "type": "ab",
                "arms": [{"id": "a", "control": True, "weight": 3}, {"id": "b", "weight": 1}],
            }
        )
    )
    out = engine.decide(request(experiment_id="ab-1"))
    assert out.variant_propensity == {"a": 0.75, "b": 0.25}[out.variant_id or ""]


def test_variants_that_differ_from_the_experiment_are_refused(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    from inboxlab.errors import InvalidInputError, NotFoundError

    engine = make_engine(settings, store, models)
    with pytest.raises(NotFoundError, match="nope"):
        engine.decide(request(experiment_id="nope"))
    engine.experiments.create(
        parse_definition(
            {"id": "ab-2", "type": "ab", "arms": [{"id": "a", "control": True}, {"id": "b"}]}
        )
    )
    with pytest.raises(InvalidInputError, match="variants"):
        engine.decide(request(experiment_id="ab-2", variants=["a", "z"]))


def test_without_models_or_features_the_decision_still_comes_with_reasons(
    settings: Settings, store: DecisionStore
) -> None:
    engine = make_engine(settings, store, ModelSet(settings), features=BrokenFeatures())
    out = engine.decide(
        request(
            send_window={
                "start": (NOW + timedelta(hours=2)).isoformat(),
                "end": (NOW + timedelta(hours=30)).isoformat(),
            },
            context={"timezone": "Europe/Berlin"},
        )
    )
    assert out.action is Action.SEND
    assert "features_unavailable" in out.reasons
    assert {"model_unavailable:send-time", "model_unavailable:engagement"} <= set(out.reasons)
    assert out.scores.p_open is None and out.scores.p_click is None
    assert out.send_at is not None
    local = out.send_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert 8 <= local.hour < 21  # the first hour outside quiet hours


class VariantsDown(InMemoryFeatureClient):
    """Serves recipients; its per-variant reads fail."""

    def variant_features_many(self, requests: Any) -> Any:
        raise OSError("per-variant table down")


@pytest.mark.parametrize("budget_ms", [0.0, TEST_BUDGET_MS])
def test_a_failed_variant_read_scores_on_the_variant_defaults(
    settings: Settings, store: DecisionStore, models: ModelSet, budget_ms: float
) -> None:
    rows = {"r-tokyo": {"timezone": "Asia/Tokyo", "opens_90d": 5}}
    engine = make_engine(settings, store, models, features=VariantsDown(rows), budget_ms=budget_ms)
    out = engine.decide(request(variants=["v0", "v1"]))
    assert out.action is Action.SEND and out.variant_id == "v0"
    assert out.reasons == ["features_unavailable"]
    healthy = make_engine(settings, store, models, features=InMemoryFeatureClient(rows))
    expected = healthy.decide(request(variants=["v0", "v1"]))  # an unknown pair: the defaults
    assert expected.reasons == [] and expected.send_at == out.send_at
    assert out.scores.p_click == expected.scores.p_click is not None
    engine.close()
    healthy.close()


def test_a_window_without_a_whole_hour_is_suppressed(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    start = NOW + timedelta(minutes=5)
    out = make_engine(settings, store, models).decide(
        request(
            send_window={
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=20)).isoformat(),
            }
        )
    )
    assert out.action is Action.SUPPRESS
    assert "send_window_has_no_whole_hour" in out.reasons


def test_hours_are_ranked_before_calibration_flattens_them(
    settings: Settings, store: DecisionStore
) -> None:
    models = planted_models(Settings())
    send_time = models.models[ModelKind.SEND_TIME].model
    # An isotonic calibrator is a step function: here every hour gets the same probability.
    send_time._calibrate = lambda raw: np.full_like(raw, 0.2)
    out = make_engine(settings, store, models).decide(request())
    assert out.send_at is not None
    assert out.send_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 10
    assert out.scores.p_open == pytest.approx(0.2)


class _Echo:
    """A model whose raw score is one of its inputs, to see what serving feeds it."""

    def __init__(self, column: str) -> None:
        self.index = {"local_hour": 0, column: 1}

    def matrix(self, features: dict[str, Any], n: int) -> np.ndarray:
        return np.zeros((n, 2))

    def rows(
        self, records: list[dict[str, Any]], later: frozenset[str] = frozenset()
    ) -> np.ndarray:
        return np.zeros((len(records), 2))

    def raw_matrix(self, x: np.ndarray) -> np.ndarray:
        return x[:, 1].copy()


class _Draft:
    def __init__(self, features: dict[str, float]) -> None:
        self.features = features


def test_each_candidate_hour_is_scored_with_the_send_hour_rate_of_its_bucket() -> None:
    from serving.decide import _score_hours
    from serving.scoring.send_time import candidate_hours

    draft = _Draft({f"send_hour_rate_{h:02d}": h / 100 for h in range(0, 24, 3)})
    cand = candidate_hours(NOW, NOW + timedelta(hours=24), "UTC", 0, 0)
    (scores,) = _score_hours(_Echo("send_hour_rate"), [draft], [cand])  # type: ignore[list-item]
    assert scores is not None
    np.testing.assert_allclose(scores, (cand.local_hour // 3) * 3 / 100)


def test_late_hour_affinity_sums_the_late_profile_over_neighbouring_hours() -> None:
    from serving.decide import _score_hours
    from serving.scoring.send_time import candidate_hours

    draft = _Draft({f"late_open_hour_{h:02d}": float(h == 19) for h in range(24)})
    cand = candidate_hours(NOW, NOW + timedelta(hours=24), "UTC", 0, 0)
    (scores,) = _score_hours(_Echo("late_hour_affinity"), [draft], [cand])  # type: ignore[list-item]
    assert scores is not None
    np.testing.assert_allclose(scores, np.isin(cand.local_hour, [18, 19, 20]).astype(float))


class RecordingModel:
    """Passes predictions through and keeps the input columns the engine handed over."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.columns: list[dict[str, Any]] = []

    def predict(self, columns: dict[str, Any], n: int) -> Any:
        self.columns.append(dict(columns))
        return self.inner.predict(columns, n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def spied_engagement(settings: Settings, models: ModelSet) -> tuple[ModelSet, RecordingModel]:
    """``models`` with the engagement model recording the columns it is given."""
    loaded = models.models[ModelKind.ENGAGEMENT]
    recording = RecordingModel(loaded.model)
    spy = ModelSet(settings)
    spy.models = {**models.models, ModelKind.ENGAGEMENT: replace(loaded, model=recording)}
    return spy, recording


def test_engagement_model_sees_the_chosen_variants_history(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    spy, recording = spied_engagement(settings, models)
    features = InMemoryFeatureClient(
        {"r-tokyo": {"timezone": "Asia/Tokyo", "click_rate_90d": 0.1}},
        variants={("r-tokyo", "v1"): {"variant_click_rate_90d": 0.3, "variant_deliveries_90d": 5}},
    )
    engine = make_engine(settings, store, spy, features=features)
    out = engine.decide(request(variants=["v1"]))
    assert out.variant_id == "v1" and out.scores.p_click is not None
    seen = recording.columns[-1]
    assert seen["variant_id"] == ["v1"]
    assert seen["variant_click_rate_90d"] == [0.3] and seen["variant_deliveries_90d"] == [5]
    assert seen["variant_click_lift"].tolist() == pytest.approx([3.0])
    # the hour affinities at the chosen send hour, as in training
    assert {"hour_affinity", "late_hour_affinity", "send_hour_rate"} <= set(seen)


def test_a_recipient_twice_in_one_batch_gets_each_variants_own_history(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    spy, recording = spied_engagement(settings, models)
    features = InMemoryFeatureClient(
        {"r-tokyo": {"timezone": "Asia/Tokyo", "click_rate_90d": 0.1}},
        variants={
            ("r-tokyo", "v1"): {"variant_click_rate_90d": 0.3, "variant_deliveries_90d": 5},
            ("r-tokyo", "v2"): {"variant_click_rate_90d": 0.05, "variant_deliveries_90d": 9},
        },
    )
    engine = make_engine(settings, store, spy, features=features)
    engine.decide_together([request(variants=["v1"]), request(variants=["v2"])])
    seen = recording.columns[-1]
    assert seen["variant_id"] == ["v1", "v2"]
    assert seen["variant_click_rate_90d"] == [0.3, 0.05]
    assert seen["variant_deliveries_90d"] == [5, 9]


@pytest.mark.parametrize("queued", [False, True], ids=["committed", "group-commit"])
def test_frequency_cap_counts_earlier_decisions_of_the_render_path(
    settings: Settings, store: DecisionStore, models: ModelSet, queued: bool
) -> None:
    # With a cap the engine reads the send history (committed, or still queued in the
    # writer); without any frequency rule it reads consent alone and never suppresses.
    from serving.store.writer import DecisionWriter

    capped = make_engine(settings, store, models, max_sends_1d=1)
    if queued:
        capped.writer = DecisionWriter(store)
    first = capped.decide(request())
    assert first.action is Action.SEND and first.send_at is not None
    later = (first.send_at + timedelta(minutes=1)).isoformat()  # the first email has gone
    second = capped.decide(request(now=later))
    assert second.action is Action.SUPPRESS and second.reasons == ["frequency_cap:1d"]
    uncapped = make_engine(settings, store, models)
    assert uncapped.decide(request(now=later)).action is Action.SEND
    capped.close()


def test_consent_is_read_without_a_frequency_rule(
    settings: Settings, store: DecisionStore, models: ModelSet
) -> None:
    from inboxlab.records import EventKind, EventRecord

    store.record_outcomes(
        [EventRecord(recipient_id="r-tokyo", kind=EventKind.COMPLAINT, occurred_at=NOW)]
    )
    out = make_engine(settings, store, models).decide(request())
    assert out.action is Action.SUPPRESS and out.reasons == ["complained"]


def test_store_rows_and_partial_rows_give_the_same_columns_and_profiles() -> None:
    from features.engineering.tables import DEFAULTS
    from serving.decide import _columns, _profiles
    from training.context import PROFILE_COLUMNS

    rng = np.random.default_rng(3)
    full = [
        {n: v if isinstance(v, str) else float(rng.random()) for n, v in DEFAULTS.items()}
        for _ in range(3)
    ]
    partial = [dict(list(r.items())[::2]) for r in full]  # a client serving some features
    names = frozenset([*list(DEFAULTS)[::3], "timezone", "derived_at_send_time"])
    for rows in (full, partial):
        columns = _columns(rows, names)
        assert set(columns) == {n for n in names if n in rows[0]}
        for name, values in columns.items():
            assert list(values) == [r[name] for r in rows], name
        expected = [[float(r.get(n, DEFAULTS[n])) for n in PROFILE_COLUMNS] for r in rows]
        np.testing.assert_array_equal(_profiles(rows), expected)
