"""Decisions for a chunk of an audience, computed column by column.

The same steps as :class:`~serving.decide.DecisionEngine` — eligibility, variant, send time,
scores — with the same rules, models and reasons, but every step works on the whole chunk:
one state query, the bandit draws of each (experiment, tier, day) in one call, the
hour-expanded send-time matrix of every recipient in one model call, one call per scoring
model, and the decisions kept as columns rather than validated records. Given the same
inputs and random generator state, a decision equals the one ``DecisionEngine.decide`` makes
(a test compares both on a small audience), with one documented difference: with send-time
exploration on, the exploration draws of a chunk are taken together, after its bandit
draws, rather than interleaved per recipient, so the same seed explores other recipients.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pydantic_core
from numpy.typing import NDArray

from features.online import VIEW_OF_FEATURE, FeatureRow, with_defaults
from inboxlab.records import Action
from serving.assignment import FixedSplit
from serving.bandit import Allocation
from serving.columns import FeatureBlock
from serving.decide import DecisionEngine, variant_columns
from serving.eligibility import RecipientState, evaluate
from serving.hours import HourGrid, profile_scores
from serving.ids import new_decision_ids
from serving.policy import engagement_tier
from serving.schemas import DecisionRequest, DecisionResponse, Scores
from serving.scoring.send_time import Candidates, candidate_hours
from serving.store.bulk import DecisionColumns
from serving.store.engine import json_compact
from serving.store.feature_codec import Layout, distinct_layouts, encode_features
from serving.store.stats import StatKey
from training.context import context_features, engagement_inputs
from training.specs import ModelKind

__all__ = ["AudienceDecisions", "AudienceScorer"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Pending = Mapping[str, Mapping[str, datetime]]

_SCORE_KEYS = ("p_open", "p_click", "p_convert")


@dataclass(slots=True)
class AudienceDecisions:
    """The decisions of one chunk, as columns (one entry per request, in request order)."""

    requests: Sequence[DecisionRequest]
    decision_ids: list[str]
    now: list[datetime]
    features: list[FeatureRow]
    versions: dict[str, str]
    actions: list[Action]
    reasons: list[list[str]]
    variant_id: list[str | None]
    variant_propensity: list[float | None]
    policy: list[str]
    segment: list[str | None]
    send_at: list[datetime | None]
    send_time_propensity: list[float | None]
    scores: dict[str, list[float | None]]
    #: Local (hour, weekday) of each chosen send time, by request position.
    local: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)
    #: The feature layouts that the chunk's stored features name.
    layouts: tuple[Layout, ...] = ()

    def __len__(self) -> int:
        return len(self.requests)

    def _shown(self, i: int) -> tuple[str | None, float | None]:
        # A variant is only reported (and logged) for a decision that sends.
        if self.actions[i] is Action.SEND:
            return self.variant_id[i], self.variant_propensity[i]
        return None, None

    def _scores(self, i: int) -> dict[str, float | None]:
        return {k: self.scores[k][i] for k in _SCORE_KEYS}

    def responses(self) -> list[DecisionResponse]:
        """The decisions as the single endpoint's response models."""
        out = []
        for i, request in enumerate(self.requests):
            variant, propensity = self._shown(i)
            out.append(
                DecisionResponse.model_construct(
                    decision_id=self.decision_ids[i],
                    recipient_id=request.recipient_id,
                    action=self.actions[i],
                    reasons=list(self.reasons[i]),
                    variant_id=variant,
                    variant_propensity=propensity,
                    send_at=self.send_at[i],
                    send_time_propensity=self.send_time_propensity[i],
                    scores=Scores.model_construct(None, **self._scores(i)),
                    model_versions=self.versions,
                )
            )
        return out

    def ndjson(self) -> bytes:
        """One JSON line per decision, as ``DecisionResponse.model_dump_json`` writes it."""
        lines = []
        for i, request in enumerate(self.requests):
            variant, propensity = self._shown(i)
            lines.append(
                {
                    "decision_id": self.decision_ids[i],
                    "recipient_id": request.recipient_id,
                    "action": self.actions[i].value,
                    "reasons": self.reasons[i],
                    "variant_id": variant,
                    "variant_propensity": propensity,
                    "send_at": self.send_at[i],
                    "send_time_propensity": self.send_time_propensity[i],
                    "scores": self._scores(i),
                    "model_versions": self.versions,
                }
            )
        if not lines:
            return b""
        # One serializer call for the chunk; its top-level separators become the newlines.
        body = pydantic_core.to_json(lines)
        return body[1:-1].replace(b'},{"decision_id"', b'}\n{"decision_id"') + b"\n"

    def columns(self, feature_json: Sequence[str]) -> tuple[DecisionColumns, Counter[StatKey]]:
        """The decisions as store columns, and the bandit trials they add per arm and day.

        ``feature_json`` holds each request's features already encoded (shared between
        repeats of a recipient).
        """
        n = len(self)
        send = Action.SEND
        shown = [a is send for a in self.actions]
        variant = [v if s else None for v, s in zip(self.variant_id, shown, strict=True)]
        encoded: dict[tuple[str, ...], str] = {}
        reasons = []
        for r in self.reasons:
            key = tuple(r)
            text = encoded.get(key)
            if text is None:
                text = encoded[key] = json_compact(r)
            reasons.append(text)
        # Scores hold only floats: one serializer call for the chunk, split between objects.
        scores = [
            {k: v for k, v in zip(_SCORE_KEYS, values, strict=True) if v is not None}
            for values in zip(*(self.scores[k] for k in _SCORE_KEYS), strict=True)
        ]
        packed = pydantic_core.to_json(scores).decode()[2:-2]
        score_json = ["{" + part + "}" for part in packed.split("},{")] if n else []
        requests = self.requests
        columns = DecisionColumns(
            decision_id=self.decision_ids,
            recipient_id=[r.recipient_id for r in requests],
            campaign_id=[r.campaign_id for r in requests],
            experiment_id=[r.experiment_id for r in requests],
            decided_at=self.now,
            action=[a.value for a in self.actions],
            reasons=reasons,
            variant_id=variant,
            variant_propensity=[
                p if s else None for p, s in zip(self.variant_propensity, shown, strict=True)
            ],
            send_at=self.send_at,
            send_time_propensity=self.send_time_propensity,
            scores=score_json,
            model_versions=[json_compact(self.versions)] * n,
            features=list(feature_json),
            segment=self.segment,
            policy=self.policy,
            layouts=self.layouts,
        )
        trials: Counter[StatKey] = Counter()
        for i in range(n):
            experiment, arm = columns.experiment_id[i], variant[i]
            if experiment is not None and arm is not None:  # a send with a variant
                day = self.now[i].astimezone(UTC).date()
                trials[experiment, arm, self.segment[i] or "", day] += 1
        return columns, trials

    def sends(self) -> dict[str, dict[str, datetime]]:
        """``{recipient: {decision_id: send time}}`` of the chunk's sends (pending writes)."""
        out: dict[str, dict[str, datetime]] = defaultdict(dict)
        for i, request in enumerate(self.requests):
            if self.actions[i] is Action.SEND:
                at = self.send_at[i] or self.now[i]
                out[request.recipient_id][self.decision_ids[i]] = at
        return dict(out)


class AudienceScorer:
    """Decides chunks of an audience column-wise with a :class:`DecisionEngine`'s parts.

    Parameters
    ----------
    engine
        Supplies the settings, stores, feature client, models, bandit policy and the random
        generator (the same one single decisions draw from).
    send_time_threads
        LightGBM threads for the hour-expanded send-time matrix (the largest model call).
    """

    def __init__(self, engine: DecisionEngine, *, send_time_threads: int = 1) -> None:
        self.engine = engine
        self.send_time_threads = send_time_threads
        d = engine.settings.decisions
        self._frequency_rules = (
            d.max_sends_1d is not None
            or d.max_sends_7d is not None
            or d.fatigue_threshold is not None
        )
        self._default_row = with_defaults(None, VIEW_OF_FEATURE)
        self._splits: dict[str, FixedSplit] = {}
        self._candidates: dict[tuple[datetime, datetime, str], Candidates] = {}

    # -- the chunk ---------------------------------------------------------------------------

    def decide(
        self, requests: Sequence[DecisionRequest], *, pending: Pending | None = None
    ) -> tuple[AudienceDecisions, list[str]]:
        """The decisions of ``requests`` (not stored), and each request's features as JSON.

        ``pending`` holds sends decided but not yet committed (the previous chunk of a
        pipelined batch); they count for frequency caps and fatigue.
        """
        default_now = datetime.now(UTC)
        n = len(requests)
        ids = [r.recipient_id for r in requests]
        unique = list(dict.fromkeys(ids))
        where = {rid: j for j, rid in enumerate(unique)}
        owner = np.fromiter((where[rid] for rid in ids), dtype=np.int64, count=n)
        found, failed = self._read_features(unique)
        unique_rows = [found.get(rid) or self._default_row for rid in unique]
        rows = [unique_rows[j] for j in owner.tolist()]
        now = [r.now or default_now for r in requests]
        out = AudienceDecisions(
            requests=requests,
            decision_ids=new_decision_ids(n),
            now=now,
            features=rows,
            versions=self.engine.models.versions,
            actions=[Action.SEND] * n,
            reasons=[[failed] if failed else [] for _ in range(n)],
            variant_id=[None] * n,
            variant_propensity=[None] * n,
            policy=["none"] * n,
            segment=[None] * n,
            send_at=[None] * n,
            send_time_propensity=[None] * n,
            scores={k: [None] * n for k in _SCORE_KEYS},
        )
        block = FeatureBlock(unique_rows)
        self._eligibility(out, unique, pending)
        sendable = [i for i in range(n) if out.actions[i] is Action.SEND]
        self._variants(out, sendable)
        self._send_times(out, sendable, block, owner)
        self._scores(out, block, owner)
        encoded = [encode_features(row) for row in unique_rows]
        out.layouts = distinct_layouts(layout for _, layout in encoded)
        return out, [encoded[j][0] for j in owner.tolist()]

    def _read_features(self, unique: list[str]) -> tuple[Mapping[str, FeatureRow], str | None]:
        client = self.engine.features
        if client is None:
            return {}, "features_unavailable"
        try:
            return client.get_many(unique), None
        except Exception as exc:  # the batch, like the render path, falls back to defaults
            logger.error("feature store failed: %s", exc)
            return {}, "features_unavailable"

    # -- eligibility -------------------------------------------------------------------------

    def _states(
        self, out: AudienceDecisions, unique: list[str], pending: Pending | None
    ) -> dict[tuple[str, datetime], RecipientState] | None:
        engine = self.engine
        try:
            if not self._frequency_rules:
                # Only consent matters: one query, whatever the recipients' send history.
                flags = engine.store.recipient_states(
                    unique, now=out.now[0] if out.now else datetime.now(UTC), history=False
                )
                return {(rid, at): flags[rid] for rid, at in zip(_ids(out), out.now, strict=True)}
            by_now: dict[datetime, list[str]] = {}
            for rid, at in zip(_ids(out), out.now, strict=True):
                by_now.setdefault(at, []).append(rid)
            states: dict[tuple[str, datetime], RecipientState] = {}
            for at, group in by_now.items():
                queued: dict[str, dict[str, datetime]] = defaultdict(dict)
                sources = [pending or {}]
                if engine.writer is not None:
                    sources.append(engine.writer.pending_sends(group))
                for source in sources:
                    for rid, sends in source.items():
                        queued[rid].update(sends)
                found = engine.store.recipient_states(group, now=at, pending=queued)
                for rid, state in found.items():
                    states[rid, at] = state
            return states
        except Exception as exc:  # a failing store must not fail the batch
            logger.error("recipient state unavailable: %s", exc)
            return None

    def _eligibility(
        self, out: AudienceDecisions, unique: list[str], pending: Pending | None
    ) -> None:
        engine = self.engine
        config = engine.eligibility
        states = self._states(out, unique, pending)
        for i, request in enumerate(out.requests):
            if states is None:
                out.actions[i] = Action.SUPPRESS
                out.reasons[i].append("recipient_state_unavailable")
                continue
            stored = states[request.recipient_id, out.now[i]]
            f = out.features[i]
            # History imported into the event log reaches the decision through the features.
            unsubscribed = stored.unsubscribed or bool(f.get("is_unsubscribed"))
            complained = stored.complained or bool(f.get("has_complained"))
            bounced = stored.hard_bounced or bool(f.get("has_bounced"))
            pct = 0.0
            if request.experiment_id is not None:
                pct = engine.definition(request.experiment_id).holdout_pct
            if not (
                unsubscribed
                or complained
                or bounced
                or pct > 0
                or config.global_holdout_pct > 0
                or self._frequency_rules
            ):
                continue  # no rule can fire: send, no reasons
            state = RecipientState(
                unsubscribed=unsubscribed,
                complained=complained,
                hard_bounced=bounced,
                send_times=stored.send_times,
                engagement_times=stored.engagement_times,
            )
            result = evaluate(
                config,
                state,
                recipient_id=request.recipient_id,
                now=out.now[i],
                experiment_id=request.experiment_id,
                experiment_holdout_pct=pct,
            )
            out.actions[i] = result.action
            out.reasons[i].extend(result.reasons)

    # -- variants ----------------------------------------------------------------------------

    def _variants(self, out: AudienceDecisions, sendable: list[int]) -> None:
        engine = self.engine
        salt = engine.settings.decisions.holdout_salt
        # Bandit draws are taken in request order, one uniform each, as single decisions do.
        groups: dict[tuple[str, str, date], list[int]] = defaultdict(list)
        order: list[int] = []
        for i in sendable:
            request = out.requests[i]
            if request.experiment_id is not None:
                definition = engine.definition(request.experiment_id)
                if definition.type == "ab":
                    split = self._splits.get(definition.id)
                    if split is None:
                        split = self._splits[definition.id] = FixedSplit(definition.weights)
                    variant, weight = split.assign(salt, definition.id, request.recipient_id)
                    out.variant_id[i], out.variant_propensity[i] = variant, weight
                    out.policy[i] = "ab"
                    continue
                tier = engagement_tier(out.features[i])
                groups[definition.id, tier, out.now[i].date()].append(len(order))
                order.append(i)
                out.policy[i], out.segment[i] = "bandit", tier
            elif request.variants:
                # No experiment: the first variant, deterministically (propensity 1).
                out.variant_id[i], out.variant_propensity[i] = request.variants[0], 1.0
                out.policy[i] = "fixed"
        if not order:
            return
        draws = engine.rng.random(len(order))
        for (experiment_id, tier, today), members in groups.items():
            allocation = engine.policy.allocation(
                engine.definition(experiment_id), tier=tier, today=today
            )
            arms, probabilities = _draw(allocation, draws[members])
            for k, arm, p in zip(members, arms, probabilities, strict=True):
                out.variant_id[order[k]], out.variant_propensity[order[k]] = arm, p

    # -- send time ---------------------------------------------------------------------------

    def _window(self, out: AudienceDecisions, i: int) -> Candidates:
        d = self.engine.settings.decisions
        request = out.requests[i]
        window = request.send_window
        start = window.start if window else out.now[i]
        end = window.end if window else out.now[i] + timedelta(hours=d.default_window_hours)
        timezone = request.context.timezone or str(out.features[i].get("timezone") or "UTC")
        key = (start, end, timezone)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) > 10_000:  # distinct windows are few; bound them anyway
                self._candidates.clear()
            found = candidate_hours(start, end, timezone, d.quiet_start_hour, d.quiet_end_hour)
            self._candidates[key] = found
        return found

    def _send_times(
        self, out: AudienceDecisions, sendable: list[int], block: FeatureBlock, owner: IntArray
    ) -> None:
        if not sendable:
            return
        d = self.engine.settings.decisions
        loaded = self.engine.models.models.get(ModelKind.SEND_TIME)
        windows = [self._window(out, i) for i in sendable]
        hours = HourGrid(windows)
        who = owner[sendable]
        if loaded is not None:
            scores = self._score_hours(loaded.model, hours, block, who)
            unscored = np.zeros(len(sendable), dtype=bool)
        else:
            for i in sendable:
                out.reasons[i].append("model_unavailable:send-time")
            scores, unscored = profile_scores(hours, block, who)
        chosen = hours.choose(scores, unscored, d.send_time_exploration, self.engine.rng)
        raw = scores[np.arange(len(sendable)), chosen.index]
        raw = np.where(np.isfinite(raw), raw, 0.0)  # an empty window has no score
        p_open = loaded.model.calibrate(raw).tolist() if loaded is not None else None
        for k, i in enumerate(sendable):
            window = windows[k]
            if not len(window.utc):
                out.actions[i] = Action.SUPPRESS
                out.reasons[i].append("send_window_has_no_whole_hour")
                continue
            at = int(chosen.index[k])
            out.send_at[i] = window.utc[at]
            out.local[i] = (int(window.local_hour[at]), int(window.local_weekday[at]))
            out.send_time_propensity[i] = float(chosen.propensity[k])
            if chosen.quiet[k]:
                out.reasons[i].append("quiet_hours_unavoidable")
            if unscored[k]:
                out.reasons[i].append("send_time_unscored")
            if p_open is not None:
                out.scores["p_open"][i] = p_open[k]

    def _score_hours(
        self, model: Any, hours: HourGrid, block: FeatureBlock, who: IntArray
    ) -> FloatArray:
        """Raw send-time scores, (recipients × longest window), ``-inf`` where not a candidate.

        Only the hours that can be chosen are scored: a quiet hour never is (unless the whole
        window is quiet), so scoring it would only cost time. Each distinct recipient is
        encoded once and its row repeated for each of its hours; only the hour-dependent
        columns differ between the repeats.
        """
        scores = np.full(hours.valid.shape, -np.inf)
        scored = hours.allowed
        if not scored.any():
            return scores
        distinct, back = np.unique(who, return_inverse=True)
        base = model.matrix(block.columns(distinct), len(distinct))
        owners = np.repeat(back, scored.sum(axis=1))
        x = base[owners]
        flat_hours = hours.local_hour[scored]
        flat_days = hours.local_weekday[scored]
        index = model.index
        if "local_hour" in index:
            x[:, index["local_hour"]] = flat_hours
        if "local_weekday" in index:
            x[:, index["local_weekday"]] = flat_days
        # One profile row per distinct recipient, read by each of its hours through ``owners``.
        for name, values in context_features(
            lambda names: block.profile(names, distinct, None), flat_hours, flat_days, owners
        ).items():
            if name in index:
                x[:, index[name]] = values
        scores[scored] = model.raw_matrix(x, threads=self.send_time_threads)
        return scores

    # -- scores ------------------------------------------------------------------------------

    def _scores(self, out: AudienceDecisions, block: FeatureBlock, owner: IntArray) -> None:
        live = [i for i in range(len(out)) if out.send_at[i] is not None]
        if not live:
            return
        models = self.engine.models.models
        columns = block.columns(owner[live])
        local = [out.local[i] for i in live]
        columns["local_hour"] = np.array([h for h, _ in local], dtype=float)
        columns["local_weekday"] = np.array([w for _, w in local], dtype=float)
        columns["variant_id"] = [out.variant_id[i] for i in live]
        for kind, key in ((ModelKind.ENGAGEMENT, "p_click"), (ModelKind.PROPENSITY, "p_convert")):
            loaded = models.get(kind)
            if loaded is None:
                for i in live:
                    out.reasons[i].append(f"model_unavailable:{kind.value}")
                continue
            inputs = self._engagement_inputs(out, live, columns) if key == "p_click" else columns
            probs = loaded.model.predict(inputs, len(live)).tolist()
            target = out.scores[key]
            for i, p in zip(live, probs, strict=True):
                target[i] = p

    def _engagement_inputs(
        self, out: AudienceDecisions, live: list[int], columns: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The engagement model's columns, with each send's own variant history."""
        sends = [(out.requests[i].recipient_id, out.variant_id[i]) for i in live]
        reasons = [out.reasons[i] for i in live]
        stored = {**columns, **variant_columns(self.engine.features, sends, reasons)}
        return engagement_inputs(
            stored, columns["variant_id"], columns["local_hour"], columns["local_weekday"]
        )


def _ids(out: AudienceDecisions) -> list[str]:
    return [r.recipient_id for r in out.requests]


def _draw(allocation: Allocation, uniforms: FloatArray) -> tuple[list[str], list[float]]:
    """:meth:`Allocation.draw` for many uniforms at once (the same arm for the same one)."""
    cumulative = np.cumsum(allocation.probabilities)
    cumulative = cumulative / cumulative[-1]
    index = np.searchsorted(cumulative, uniforms, side="right").tolist()
    return [allocation.arms[k] for k in index], [allocation.probabilities[k] for k in index]
