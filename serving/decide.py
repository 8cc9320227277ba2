"""The render-time decision: eligibility, variant, send time, scores, stored with propensities.

Never fails the render path: missing features, a model that cannot load or a feature store
that errors each give a documented fallback and a reason in ``reasons``:

``features_unavailable``
    the feature store failed; cold-start defaults were used.
``features_timeout``
    the feature store did not answer within ``decisions.budget_ms`` (the recipient's
    features, or the chosen variant's history, read after the send time); cold-start
    defaults were used.
``recipient_state_unavailable``
    the decision store did not give the recipient's consent and send history within
    ``decisions.budget_ms`` (or failed): the decision is ``suppress``, since consent cannot
    be checked. Retry later.
``model_unavailable:<kind>``
    no ``@champion`` of that model is loaded; its score is ``null`` and, for send time, the
    recipient's stored open-time profile ranks the hours instead.
``send_time_unscored``
    neither model nor profile could rank hours; the first allowed hour is used.
``quiet_hours_unavoidable``
    every hour of the window is quiet for the recipient; the best hour is used anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from features.engineering.tables import (
    DEFAULTS,
    SEND_HOUR_RATES,
    VARIANT_DEFAULTS,
    FeatureValue,
    feature_type,
)
from features.online import (
    VIEW_OF_FEATURE,
    FeatureClient,
    FeatureRow,
    VariantRows,
    with_defaults,
)
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.experiment import ExperimentDefinition
from inboxlab.records import Action, DecisionRecord
from inboxlab.settings import Settings
from serving.budget import BudgetExceededError, Pending, ReadGuard
from serving.columns import values_of
from serving.eligibility import EligibilityConfig, RecipientState, evaluate
from serving.ids import new_decision_id
from serving.policy import VariantPolicy, engagement_tier
from serving.schemas import DecisionRequest, DecisionResponse, Scores
from serving.scoring.models import ModelSet
from serving.scoring.send_time import Candidates, candidate_hours, choose
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from serving.store.writer import DecisionWriter
from training.context import (
    HOUR_CONTEXT,
    LATE_HOURS,
    LIFT_INPUTS,
    OPEN_DAYS,
    OPEN_HOURS,
    PROFILE_COLUMNS,
    context_features,
    engagement_inputs,
)
from training.specs import ModelKind

__all__ = ["DecisionEngine", "variant_columns"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
T = TypeVar("T")


@dataclass(slots=True)
class _Draft:
    request: DecisionRequest
    now: datetime
    decision_id: str
    features: FeatureRow
    timezone: str
    reasons: list[str] = field(default_factory=list)
    action: Action = Action.SEND
    definition: ExperimentDefinition | None = None
    variant_id: str | None = None
    variant_propensity: float | None = None
    policy: Literal["bandit", "ab", "fixed", "none"] = "none"
    segment: str | None = None
    send_at: datetime | None = None
    send_time_propensity: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    # The send-time model's hour-affinity inputs of each candidate hour (name -> values), as
    # the engagement model needs them at the chosen hour; None without the model.
    context: dict[str, FloatArray] | None = None
    context_at: int = -1
    # The local hour and weekday of send_at in the recipient's time zone.
    local: tuple[int, int] = (0, 0)


class DecisionEngine:
    """Makes and stores decisions; shared by the single and the batch endpoint.

    With a ``writer``, single decisions are queued for group commit (see
    :mod:`serving.store.writer` for the durability window); batches, and every decision
    without a writer, are committed before the call returns.
    """

    def __init__(
        self,
        settings: Settings,
        store: DecisionStore,
        experiments: ExperimentStore,
        features: FeatureClient | None,
        models: ModelSet,
        rng: np.random.Generator,
        *,
        writer: DecisionWriter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.experiments = experiments
        self.features = features
        self.models = models
        self.rng = rng
        self.writer = writer
        d = settings.decisions
        self.guard = ReadGuard(d.budget_ms)
        self.eligibility = EligibilityConfig(
            holdout_salt=d.holdout_salt,
            global_holdout_pct=d.global_holdout_pct,
            max_sends_1d=d.max_sends_1d,
            max_sends_7d=d.max_sends_7d,
            fatigue_threshold=d.fatigue_threshold,
        )
        self.policy = VariantPolicy(
            store, refresh_seconds=d.allocation_refresh_seconds, salt=d.holdout_salt
        )
        # Send and engagement history only matter to a frequency cap or the fatigue rule:
        # without one, the recipient state is the consent flags alone (a far smaller read).
        self._history = any(
            rule is not None for rule in (d.max_sends_1d, d.max_sends_7d, d.fatigue_threshold)
        )
        # Reads that stop themselves at a statement deadline run inline with a budget.
        self._interruptible = bool(getattr(features, "interruptible", False))
        self._definitions: dict[str, ExperimentDefinition] = {}
        self._inputs: tuple[tuple[object, ...], frozenset[str]] | None = None

    # -- public ------------------------------------------------------------------------------

    def decide(self, request: DecisionRequest) -> DecisionResponse:
        """One decision on the render path: its reads are bounded by ``decisions.budget_ms``."""
        return self._decide([request])[0]

    def decide_together(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        """Render-path decisions for requests that arrived together (see
        :mod:`serving.coalesce`): like :meth:`decide` for each, in one pass per store and
        model, reads bounded by ``decisions.budget_ms``, writes queued for group commit (or
        committed before this returns, without a writer)."""
        return self._decide(requests)

    def _decide(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        guard = self.guard
        deadline = guard.deadline()
        default_now = datetime.now(UTC)
        ids = list(dict.fromkeys(r.recipient_id for r in requests))
        client = self.features
        # Reads of SQLite stores and of Redis stop themselves at the deadline: they run here,
        # with no thread hand-off (see serving.budget).
        features = (
            guard.start(lambda: client.get_many(ids), deadline, interruptible=self._interruptible)
            if client is not None
            else None
        )
        state = guard.start(
            lambda: self._states(requests, default_now),
            deadline,
            interruptible=self.store.interruptible,
        )
        drafts = self._drafts(requests, default_now, self._feature_read(features, deadline))
        try:
            states = guard.result(state, deadline)
        except Exception as exc:  # a slow or failing store must not fail the render path
            logger.error("recipient state unavailable: %s", exc)
            states = None
        for draft in drafts:
            if states is None:
                draft.action = Action.SUPPRESS
                draft.reasons.append("recipient_state_unavailable")
            else:
                self._eligibility(draft, states[draft.request.recipient_id, draft.now])
        sendable = [d for d in drafts if d.action is Action.SEND]
        for draft in sendable:
            self._variant(draft)
        self._send_times(sendable)
        self._scores(sendable, deadline)
        versions = self.models.versions
        made = [self._record(d, versions) for d in drafts]
        items = [(record, features) for record, features, _ in made]
        if self.writer is not None:
            self.writer.submit(items)
        elif len(items) == 1:
            self.store.record_decision(items[0][0], features=items[0][1])
        else:
            self.store.record_decisions(items)
        return [response for _, _, response in made]

    def check(self, request: DecisionRequest) -> ExperimentDefinition | None:
        """The request's experiment (None without one), refusing an unknown experiment or
        variants that are not its arms.

        Raises
        ------
        NotFoundError
            The experiment does not exist.
        InvalidInputError
            ``variants`` differ from the experiment's arms.
        """
        if request.experiment_id is None:
            return None
        definition = self.definition(request.experiment_id)
        if request.variants is not None:
            arms = {a.id for a in definition.arms}
            if set(request.variants) != arms:
                raise InvalidInputError(
                    f"variants {sorted(request.variants)} differ from the arms of "
                    f"experiment {request.experiment_id!r}: {sorted(arms)}",
                    field="variants",
                )
        return definition

    def close(self) -> None:
        """Stop the read threads and write every queued decision."""
        self.guard.close()
        if self.writer is not None:
            self.writer.close()

    def _states(
        self, requests: Sequence[DecisionRequest], default_now: datetime
    ) -> dict[tuple[str, datetime], RecipientState]:
        """Stored state of every recipient, per distinct request time (one query each)."""
        by_now: dict[datetime, list[str]] = {}
        for r in requests:
            by_now.setdefault(r.now or default_now, []).append(r.recipient_id)
        states: dict[tuple[str, datetime], RecipientState] = {}
        history = self._history
        for now, group in by_now.items():
            pending = None
            if history and self.writer is not None:
                pending = self.writer.pending_sends(group)
            found = self.store.recipient_states(group, now=now, pending=pending, history=history)
            for rid, one in found.items():
                states[rid, now] = one
        return states

    def _feature_read(
        self, read: Pending[dict[str, T]] | None, deadline: float
    ) -> tuple[Mapping[str, T], str | None]:
        """A started read of the feature store (recipients' rows or variant pairs), or none
        and the reason why (the caller then uses defaults)."""
        if read is None:
            return {}, "features_unavailable"
        try:
            return self.guard.result(read, deadline), None
        except BudgetExceededError as exc:
            logger.warning("feature store over budget: %s", exc)
            return {}, "features_timeout"
        except Exception as exc:  # the render path must not fail on the feature store
            logger.error("feature store failed: %s", exc)
            return {}, "features_unavailable"

    def definition(self, experiment_id: str) -> ExperimentDefinition:
        """The experiment's definition (cached; definitions are immutable)."""
        found = self._definitions.get(experiment_id)
        if found is None:
            found = self.experiments.get(experiment_id)
            if found is None:
                raise NotFoundError(f"experiment {experiment_id!r} does not exist")
            self._definitions[experiment_id] = found
        return found

    # -- steps -------------------------------------------------------------------------------

    def _drafts(
        self,
        requests: Sequence[DecisionRequest],
        default_now: datetime,
        read: tuple[Mapping[str, FeatureRow], str | None],
    ) -> list[_Draft]:
        rows, failed = read
        drafts: list[_Draft] = []
        for request in requests:
            features = rows.get(request.recipient_id) or with_defaults(None, VIEW_OF_FEATURE)
            timezone = request.context.timezone or str(features.get("timezone") or "UTC")
            draft = _Draft(
                request=request,
                now=request.now or default_now,
                decision_id=new_decision_id(),
                features=features,
                timezone=timezone,
            )
            if failed is not None:
                draft.reasons.append(failed)
            draft.definition = self.check(request)
            drafts.append(draft)
        return drafts

    def _eligibility(self, draft: _Draft, stored: RecipientState) -> None:
        f = draft.features
        # History imported into the event log reaches the decision through the features.
        state = RecipientState(
            unsubscribed=stored.unsubscribed or bool(f.get("is_unsubscribed")),
            complained=stored.complained or bool(f.get("has_complained")),
            hard_bounced=stored.hard_bounced or bool(f.get("has_bounced")),
            send_times=stored.send_times,
            engagement_times=stored.engagement_times,
        )
        result = evaluate(
            self.eligibility,
            state,
            recipient_id=draft.request.recipient_id,
            now=draft.now,
            experiment_id=draft.request.experiment_id,
            experiment_holdout_pct=draft.definition.holdout_pct if draft.definition else 0.0,
        )
        draft.action = result.action
        draft.reasons.extend(result.reasons)

    def _variant(self, draft: _Draft) -> None:
        if draft.definition is not None:
            choice = self.policy.choose(
                draft.definition,
                draft.request.recipient_id,
                tier=engagement_tier(draft.features),
                today=draft.now.date(),
                rng=self.rng,
            )
            draft.variant_id, draft.variant_propensity = choice.variant_id, choice.propensity
            draft.policy, draft.segment = choice.policy, choice.segment
        elif draft.request.variants:
            # No experiment: the first variant, deterministically (propensity 1).
            draft.variant_id, draft.variant_propensity = draft.request.variants[0], 1.0
            draft.policy = "fixed"

    def _send_times(self, drafts: Sequence[_Draft]) -> None:
        d = self.settings.decisions
        loaded = self.models.models.get(ModelKind.SEND_TIME)
        candidates: list[Candidates] = []
        for draft in drafts:
            window = draft.request.send_window
            start = window.start if window else draft.now
            end = window.end if window else draft.now + timedelta(hours=d.default_window_hours)
            candidates.append(
                candidate_hours(start, end, draft.timezone, d.quiet_start_hour, d.quiet_end_hour)
            )
        scores: list[FloatArray | None]
        if loaded is not None and drafts:
            scores = _score_hours(loaded.model, drafts, candidates)
        else:
            scores = [
                _profile_scores(dr.features, c) for dr, c in zip(drafts, candidates, strict=True)
            ]
            for draft in drafts:
                draft.reasons.append("model_unavailable:send-time")
        for draft, cand, hour_scores in zip(drafts, candidates, scores, strict=True):
            result = choose(
                cand,
                hour_scores,
                exploration=d.send_time_exploration,
                rng=self.rng,
            )
            if result is None:
                draft.action = Action.SUPPRESS
                draft.reasons.append("send_window_has_no_whole_hour")
                continue
            draft.send_at, draft.send_time_propensity = result.send_at, result.propensity
            draft.context_at = result.index
            draft.local = (
                int(cand.local_hour[result.index]),
                int(cand.local_weekday[result.index]),
            )
            draft.reasons.extend(result.reasons)
            if loaded is not None and result.score is not None:
                draft.scores["p_open"] = float(loaded.model.calibrate(np.array([result.score]))[0])

    def _scores(self, drafts: Sequence[_Draft], deadline: float) -> None:
        live = [d for d in drafts if d.send_at is not None]
        if not live:
            return
        # One set of input columns serves both models (each picks the columns it uses): only
        # the stored features they read, plus the profiles when the engagement model has to
        # derive its hour affinities itself (no send-time scoring to take them from).
        context = _chosen_context(live)
        columns = _columns([d.features for d in live], self._stored_inputs(context is None))
        columns["local_hour"] = np.array([d.local[0] for d in live], dtype=float)
        columns["local_weekday"] = np.array([d.local[1] for d in live], dtype=float)
        columns["variant_id"] = [d.variant_id for d in live]
        for kind, key in ((ModelKind.ENGAGEMENT, "p_click"), (ModelKind.PROPENSITY, "p_convert")):
            loaded = self.models.models.get(kind)
            if loaded is None:
                for draft in live:
                    draft.reasons.append(f"model_unavailable:{kind.value}")
                continue
            inputs = (
                self._engagement_inputs(live, columns, context, deadline)
                if key == "p_click"
                else columns
            )
            probs = loaded.model.predict(inputs, len(live))
            for draft, p in zip(live, probs, strict=True):
                draft.scores[key] = float(p)

    def _stored_inputs(self, profiles: bool) -> frozenset[str]:
        """Names of the stored features the engagement and propensity models read."""
        models = self.models.models
        key = (profiles, *(id(m) for m in models.values()))
        if self._inputs is None or self._inputs[0] != key:
            names = set(LIFT_INPUTS)
            for kind in (ModelKind.ENGAGEMENT, ModelKind.PROPENSITY):
                loaded = models.get(kind)
                if loaded is not None:
                    names.update(loaded.model.features)
            if profiles:
                names.update(PROFILE_COLUMNS)
            self._inputs = (key, frozenset(names))
        return self._inputs[1]

    def _engagement_inputs(
        self,
        live: Sequence[_Draft],
        columns: Mapping[str, Any],
        context: Mapping[str, FloatArray] | None,
        deadline: float,
    ) -> dict[str, Any]:
        """The engagement model's columns: the recipient's, the chosen variant's history, and
        the hour affinities at the send hour, built by the function training uses. The
        variant's history is read within the decision's budget (defaults and
        ``features_timeout`` after it)."""
        sends = [(d.request.recipient_id, d.variant_id) for d in live]
        pairs: VariantPairs = {}
        if (client := self.features) is not None:
            read = self.guard.start(
                lambda: _variant_pairs(client, sends), deadline, interruptible=self._interruptible
            )
            pairs, failed = self._feature_read(read, deadline)
            if failed is not None:
                _add_reason([d.reasons for d in live], failed)
        stored = {**columns, **_variant_columns(pairs, sends)}
        return engagement_inputs(
            stored,
            columns["variant_id"],
            columns["local_hour"],
            columns["local_weekday"],
            context=context,
        )

    def _record(
        self, draft: _Draft, versions: dict[str, str]
    ) -> tuple[DecisionRecord, Mapping[str, Any], DecisionResponse]:
        values = {k: v for k, v in draft.scores.items() if v is not None}
        record = DecisionRecord(
            decision_id=draft.decision_id,
            recipient_id=draft.request.recipient_id,
            campaign_id=draft.request.campaign_id,
            experiment_id=draft.request.experiment_id,
            decided_at=draft.now,
            action=draft.action,
            reasons=tuple(draft.reasons),
            variant_id=draft.variant_id if draft.action is Action.SEND else None,
            variant_propensity=draft.variant_propensity if draft.action is Action.SEND else None,
            send_at=draft.send_at,
            send_time_propensity=draft.send_time_propensity,
            scores=values,
            model_versions=versions,
            segment=draft.segment,
            policy=draft.policy,
        )
        # Built from the validated record: constructed, not validated a second time.
        response = DecisionResponse.model_construct(
            decision_id=record.decision_id,
            recipient_id=record.recipient_id,
            action=record.action,
            reasons=list(record.reasons),
            variant_id=record.variant_id,
            variant_propensity=record.variant_propensity,
            send_at=record.send_at,
            send_time_propensity=record.send_time_propensity,
            scores=Scores.model_construct(
                p_open=values.get("p_open"),
                p_click=values.get("p_click"),
                p_convert=values.get("p_convert"),
            ),
            model_versions=versions,
        )
        # The row itself, not a copy: feature rows are read-only, and the store's JSON
        # encoding turns NumPy scalars into plain values.
        return record, draft.features, response


VariantPairs = Mapping[str, VariantRows]


def variant_columns(
    client: FeatureClient | None,
    sends: Sequence[tuple[str, str | None]],
    reasons: Sequence[list[str]],
) -> dict[str, list[FeatureValue]]:
    """The per-variant features of each send's (recipient, variant) pair, as columns.

    A pair the store does not know, a send without a variant, and every send when the store
    fails get :data:`~features.engineering.tables.VARIANT_DEFAULTS`; a failure also adds the
    reason ``features_unavailable`` to each send's ``reasons``. One recipient may appear
    several times, with different variants.
    """
    try:
        pairs = _variant_pairs(client, sends)
    except Exception:
        logger.exception("per-variant features unavailable; using cold-start defaults")
        _add_reason(reasons, "features_unavailable")
        pairs = {}
    return _variant_columns(pairs, sends)


def _variant_pairs(
    client: FeatureClient | None, sends: Sequence[tuple[str, str | None]]
) -> dict[str, VariantRows]:
    """The stored rows of the sends' (recipient, variant) pairs (none without a client)."""
    wanted: dict[str, list[str]] = {}
    for rid, variant in sends:
        if variant:
            wanted.setdefault(rid, []).append(variant)
    if not wanted or client is None:
        return {}
    return client.variant_features_many(wanted)


def _add_reason(reasons: Sequence[list[str]], reason: str) -> None:
    for own in reasons:
        if reason not in own:
            own.append(reason)


def _variant_columns(
    pairs: VariantPairs, sends: Sequence[tuple[str, str | None]]
) -> dict[str, list[FeatureValue]]:
    """The sends' rows of ``pairs`` as columns, the defaults for a pair not there."""
    empty: FeatureRow = {}
    found = [pairs.get(rid, {}).get(variant or "", empty) for rid, variant in sends]
    return {
        name: [row.get(name, default) for row in found]
        for name, default in VARIANT_DEFAULTS.items()
    }


def _chosen_context(live: Sequence[_Draft]) -> dict[str, FloatArray] | None:
    """The hour-affinity inputs at each draft's chosen hour, from the send-time scoring.

    The chosen hour is one of the candidates the send-time model scored, so these are
    exactly what :func:`~training.context.context_features` gives at its local hour and
    weekday; ``None`` (computed again) when a draft has none.
    """
    first = live[0].context
    if first is None or any(d.context is None or d.context_at < 0 for d in live):
        return None
    return {
        name: np.array([d.context[name][d.context_at] for d in live])  # type: ignore[index]
        for name in first
    }


def _columns(rows: Sequence[Mapping[str, Any]], names: frozenset[str]) -> dict[str, Any]:
    """The ``names`` of feature rows as columns: text ones as lists, numeric ones as float
    arrays."""
    if not rows:
        return {}
    text, numbers, take = _stored_split(names)
    try:  # a row from the store holds every feature: one C-level call a row
        values = list(map(take, rows))
    except KeyError:  # a client that serves some features only
        first = rows[0]
        text = tuple(n for n, v in first.items() if n in names and isinstance(v, str))
        numbers = tuple(n for n, v in first.items() if n in names and not isinstance(v, str))
        values = [tuple(r.get(n) for n in numbers) for r in rows]
    # One conversion for every numeric column; each column is a view into it (the rows of
    # the transpose, produced by iteration in C rather than one slice call per name).
    block = np.array(values, dtype=np.float64).reshape(len(rows), len(numbers))
    out: dict[str, Any] = dict(zip(numbers, block.T, strict=True))
    for name in text:
        out[name] = [r.get(name) for r in rows]
    return out


@lru_cache(maxsize=16)
def _stored_split(
    names: frozenset[str],
) -> tuple[tuple[str, ...], tuple[str, ...], Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """The stored features among ``names``: the text ones, the numeric ones and a getter of
    the numeric ones' values."""
    stored = sorted(n for n in names if n in DEFAULTS)
    numbers = tuple(n for n in stored if feature_type(n) is not str)
    text = tuple(n for n in stored if feature_type(n) is str)
    return text, numbers, values_of(numbers)


def _score_hours(
    model: Any, drafts: Sequence[_Draft], candidates: Sequence[Candidates]
) -> list[FloatArray | None]:
    """Raw send-time scores of every candidate hour of every draft, in one model call.

    A recipient's stored features are encoded once and the row repeated for each hour; only
    the hour-dependent columns differ between the repeats.
    """
    sizes = [len(c.utc) for c in candidates]
    total = sum(sizes)
    if total == 0:
        return [None for _ in drafts]
    # The hour-invariant part: one row per recipient, repeated for each of its hours.
    x = np.repeat(model.rows([d.features for d in drafts], _HOURLY), sizes, axis=0)
    hours = np.concatenate([c.local_hour for c in candidates]).astype(int)
    days = np.concatenate([c.local_weekday for c in candidates]).astype(int)
    index = model.index
    if "local_hour" in index:
        x[:, index["local_hour"]] = hours
    if "local_weekday" in index:
        x[:, index["local_weekday"]] = days
    owners = np.repeat(np.arange(len(drafts)), sizes)
    profiles = _profiles([d.features for d in drafts])

    def profile(names: Sequence[str]) -> FloatArray:
        # One row per draft: every hour of a draft reads the same profile.
        return profiles[:, _PROFILE_SLICES[names]]

    context = context_features(profile, hours, days, owners)
    for name, values in context.items():
        if name in index:
            x[:, index[name]] = values
    probs = model.raw_matrix(x)  # ranked raw; calibrated only for the chosen hour
    out: list[FloatArray | None] = []
    start = 0
    for draft, n in zip(drafts, sizes, strict=True):
        out.append(probs[start : start + n] if n else None)
        # The engagement model reads these at the chosen hour (views, no copy).
        draft.context = {name: values[start : start + n] for name, values in context.items()}
        start += n
    return out


#: The send-time model's columns :func:`_score_hours` fills per candidate hour.
_HOURLY = frozenset({"local_hour", "local_weekday", *HOUR_CONTEXT})

#: Where each group of :data:`PROFILE_COLUMNS` sits in the matrix of :func:`_profiles`.
_PROFILE_SLICES: dict[Sequence[str], slice] = {}
for _names in (OPEN_HOURS, OPEN_DAYS, LATE_HOURS, SEND_HOUR_RATES):
    _at = PROFILE_COLUMNS.index(_names[0])
    assert PROFILE_COLUMNS[_at : _at + len(_names)] == _names
    _PROFILE_SLICES[_names] = slice(_at, _at + len(_names))
_profile_values = values_of(PROFILE_COLUMNS)


def _profiles(rows: Sequence[Mapping[str, Any]]) -> FloatArray:
    """The :data:`PROFILE_COLUMNS` of feature rows, one matrix row each, a missing value at
    its default.

    A row from the store holds every feature: its values are taken in one C call. A partial
    one (a client that returns only what it knows) is filled name by name.
    """
    try:
        return np.array([_profile_values(r) for r in rows], dtype=np.float64)
    except (KeyError, TypeError):
        return np.array(
            [[float(r.get(n, DEFAULTS[n])) for n in PROFILE_COLUMNS] for r in rows],
            dtype=np.float64,
        )


def _profile_scores(features: Mapping[str, Any], cand: Candidates) -> FloatArray | None:
    """Without a send-time model: the recipient's smoothed open-time profile ranks hours."""
    if not len(cand.utc):
        return None
    hours = np.array([float(features.get(h, 1 / 24) or 0) for h in OPEN_HOURS])
    days = np.array([float(features.get(d, 1 / 7) or 0) for d in OPEN_DAYS])
    scores = hours[cand.local_hour] * days[cand.local_weekday]
    return None if np.allclose(scores, scores[0]) else scores
