"""A closed loop: campaigns decided by the API, played out in a simulated world, fed back.

For each campaign :class:`ClosedLoop` asks ``POST /v1/decisions/batch`` about an audience,
sends the ``send`` decisions through an :class:`~features.simulator.EmailEnvironment` at the
hour and with the variant the API chose, and posts what happened back to ``POST
/v1/outcomes`` with each decision's id, so the bandit learns. Simulated time moves on by the
campaign interval and every request carries it as ``now``; an outcome is posted only once the
simulated clock has passed it, as a real send system would see it. Because the environment
knows the true probabilities, each campaign also records the regret of the API's variants
and the open rate of its send times against counterfactual policies (see
:mod:`serving.loop_report`).

The loop speaks HTTP only, through an injected ``httpx.Client`` (a running server, or a
``fastapi.testclient.TestClient`` in process) that already carries the API key.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from features.simulator import EmailEnvironment, GroundTruth
from inboxlab.errors import InvalidInputError
from serving.loop_report import CampaignRow, LoopSummary, summarize
from serving.scoring.send_time import is_quiet, zone

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_POST_KINDS", "ClosedLoop", "LoopConfig", "LoopResult", "historical_send_hour"]

logger = logging.getLogger(__name__)

_REWARD_KIND = {"open": "open", "click": "click", "convert": "convert", "revenue": "convert"}
#: ``send`` and ``deliver`` tell the API nothing its decision log does not already hold.
DEFAULT_POST_KINDS = ("open", "click", "convert", "unsubscribe", "complaint", "bounce")
#: Outcomes per ``POST /v1/outcomes`` call (the API accepts up to 10,000).
_OUTCOME_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """What to run: how many campaigns, to whom, how often.

    Parameters
    ----------
    experiment_id : str
        The bandit (or A/B) experiment every decision is made in.
    campaigns, audience : int
        Number of campaigns, and recipients drawn (without replacement) for each.
    start : datetime, optional
        ``now`` of the first campaign; default: the end of the simulated history.
    interval_hours : float
        Simulated time between campaigns; outcomes are posted as the clock passes them.
    window_hours : int
        Length of each decision's send window, starting at the campaign's ``now``.
    quiet_start_hour, quiet_end_hour : int
        The service's quiet hours (local), which the oracle send time respects too.
    batch_size : int
        Decisions per ``/v1/decisions/batch`` call.
    post_kinds : tuple of str
        Outcome kinds posted back.
    campaign_prefix : str
        Campaign ids are ``{prefix}-{k:03d}``.
    """

    experiment_id: str
    campaigns: int = 10
    audience: int = 1_000
    start: datetime | None = None
    interval_hours: float = 24.0
    window_hours: int = 24
    quiet_start_hour: int = 21
    quiet_end_hour: int = 8
    batch_size: int = 5_000
    post_kinds: tuple[str, ...] = DEFAULT_POST_KINDS
    campaign_prefix: str = "loop"

    def __post_init__(self) -> None:
        for name in ("campaigns", "audience", "window_hours", "batch_size"):
            if getattr(self, name) < 1:
                raise InvalidInputError(
                    f"{name} must be >= 1, got {getattr(self, name)}", field=name
                )
        if not self.interval_hours > 0:
            raise InvalidInputError(
                f"interval_hours must be > 0, got {self.interval_hours}", field="interval_hours"
            )
        if self.start is not None and self.start.utcoffset() is None:
            raise InvalidInputError("start must be timezone-aware", field="start")


@dataclass(frozen=True, slots=True)
class LoopResult:
    """Everything a run measured; ``rows`` has one :class:`CampaignRow` per campaign."""

    experiment_id: str
    arms: tuple[str, ...]
    reward_kind: str
    fixed_hour: int
    fixed_hour_basis: str
    rows: tuple[CampaignRow, ...]
    #: Rewards per arm credited by the loop's own copy of the API's rule, after the last
    #: outcome was posted; their total should equal ``outcomes_counted``.
    rewards: Mapping[str, int]
    #: Outcomes posted, and those the API answered it credited to an arm.
    outcomes_posted: int
    outcomes_counted: int

    @property
    def summary(self) -> LoopSummary:
        """Cumulative regret and open rates over every campaign."""
        return summarize(self.rows)


def historical_send_hour(truth: GroundTruth) -> tuple[int, str]:
    """The most common fixed send hour of the history's campaigns, and its basis.

    The basis is ``"utc"`` or ``"local"`` (the recipient's time zone). Without any
    fixed-hour campaign the configured fixed hour is used.
    """
    table = truth.campaigns
    if table.num_rows:
        fixed = [
            (int(h), str(b))
            for h, b, randomized in zip(
                table.column("fixed_hour").to_pylist(),
                table.column("fixed_hour_basis").to_pylist(),
                table.column("randomized_hours").to_pylist(),
                strict=True,
            )
            if not randomized and h is not None
        ]
        if fixed:
            return Counter(fixed).most_common(1)[0][0]
    return truth.config.fixed_send_hour, truth.config.fixed_hour_basis


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ClosedLoop:
    """Runs campaigns through the API against a simulated world (see the module docstring).

    Parameters
    ----------
    client : httpx.Client
        Talks to the API; carries the ``Authorization`` header (scopes decide and outcomes).
    env : EmailEnvironment
        The simulated world the emails go into; its state moves on with every campaign.
    config : LoopConfig
        Campaigns, audience, cadence.
    rng : numpy.random.Generator
        Draws each campaign's audience.
    """

    def __init__(
        self,
        client: httpx.Client,
        env: EmailEnvironment,
        config: LoopConfig,
        *,
        rng: np.random.Generator,
    ) -> None:
        self.client = client
        self.env = env
        self.config = config
        self.rng = rng
        truth = env.truth
        self._ids = np.asarray(truth.population.recipient_ids, dtype=object)
        names = truth.config.timezone_names
        self._tz_code = truth.population.timezone
        self._tz_names = names
        self.fixed_hour, self.fixed_hour_basis = historical_send_hour(truth)
        self._start = config.start or datetime.combine(truth.config.end, time(), tzinfo=UTC)
        if config.audience > len(self._ids):
            raise InvalidInputError(
                f"audience must be at most the {len(self._ids)} recipients of the world, "
                f"got {config.audience}",
                field="audience",
            )
        definition = self._get(f"/v1/experiments/{config.experiment_id}")
        self.arms = tuple(str(a["id"]) for a in definition["arms"])
        self.reward_kind = _REWARD_KIND[str(definition.get("primary_metric", "click"))]
        self._window = timedelta(hours=int(definition.get("attribution_window_hours", 72)))
        # decision id -> (variant, decided at) of every send decision, to attribute rewards
        self._decisions: dict[str, tuple[str, datetime]] = {}
        self._rewarded: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._trials: Counter[str] = Counter()
        self._successes: Counter[str] = Counter()
        self._posted = 0
        self._counted = 0

    # -- HTTP --------------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _decide(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for lo in range(0, len(requests), self.config.batch_size):
            chunk = requests[lo : lo + self.config.batch_size]
            response = self.client.post("/v1/decisions/batch", json={"decisions": chunk})
            response.raise_for_status()
            out.extend(json.loads(line) for line in response.text.splitlines() if line)
        return out

    def _post_outcomes(self, until: datetime | None) -> None:
        """Post the pending outcomes that happened by ``until`` (all of them for ``None``)."""
        due = [e for e in self._pending if until is None or e["_at"] <= until]
        self._pending = [e for e in self._pending if until is not None and e["_at"] > until]
        due.sort(key=lambda e: e["_at"])
        for event in due:
            self._credit(event)
        payload = [{k: v for k, v in e.items() if k != "_at"} for e in due]
        for lo in range(0, len(payload), _OUTCOME_CHUNK):
            response = self.client.post("/v1/outcomes", json=payload[lo : lo + _OUTCOME_CHUNK])
            response.raise_for_status()
            self._counted += int(response.json()["counted"])
        self._posted += len(payload)

    def _credit(self, event: Mapping[str, Any]) -> None:
        # Mirrors the API's rule, so the posterior means shown need no report call.
        if event["kind"] != self.reward_kind or event.get("is_machine_open"):
            return
        found = self._decisions.get(str(event.get("decision_id")))
        if found is None or event["decision_id"] in self._rewarded:
            return
        variant, decided_at = found
        if timedelta(0) <= event["_at"] - decided_at <= self._window:
            self._rewarded.add(event["decision_id"])
            self._successes[variant] += 1

    # -- one campaign ------------------------------------------------------------------------

    def _requests(
        self, ids: Sequence[str], tz: Sequence[str], campaign_id: str, now: datetime
    ) -> list[dict[str, Any]]:
        window = {
            "start": now.isoformat(),
            "end": (now + timedelta(hours=self.config.window_hours)).isoformat(),
        }
        return [
            {
                "recipient_id": rid,
                "campaign_id": campaign_id,
                "experiment_id": self.config.experiment_id,
                "send_window": window,
                "context": {"timezone": zone_name},
                "now": now.isoformat(),
            }
            for rid, zone_name in zip(ids, tz, strict=True)
        ]

    def _hours(self, now: datetime) -> list[datetime]:
        first = now.replace(minute=0, second=0, microsecond=0)
        if first < now:
            first += timedelta(hours=1)
        return [first + timedelta(hours=k) for k in range(self.config.window_hours)]

    def _open_rates(
        self, ids: list[str], tz_codes: np.ndarray, chosen: np.ndarray, now: datetime
    ) -> tuple[float, float, float]:
        """Mean true open probability at the API's hours, the fixed hour and the oracle hour."""
        env, cfg = self.env, self.config
        hours = self._hours(now)
        # Local hour of every candidate hour in every time zone of the world.
        local = np.array(
            [[h.astimezone(zone(name)).hour for h in hours] for name in self._tz_names]
        )[tz_codes]
        utc_hour = np.array([h.hour for h in hours])[None, :]
        quiet = np.vectorize(lambda h: is_quiet(int(h), cfg.quiet_start_hour, cfg.quiet_end_hour))
        allowed = ~quiet(local).astype(bool)
        scores = np.stack([env.expected_open_rate(ids, h) for h in hours], axis=1)
        oracle = np.where(allowed, scores, -1.0).max(axis=1)
        # Recipients with every hour quiet get the best hour anyway, as the API does.
        oracle = np.where(allowed.any(axis=1), oracle, scores.max(axis=1))
        match = (local if self.fixed_hour_basis == "local" else utc_hour) == self.fixed_hour
        match = np.broadcast_to(match, scores.shape)
        fixed_col = np.where(match.any(axis=1), match.argmax(axis=1), 0)
        fixed = scores[np.arange(len(ids)), fixed_col]
        policy = env.expected_open_rate(ids, chosen)
        return float(policy.mean()), float(fixed.mean()), float(oracle.mean())

    def _campaign(self, k: int, now: datetime) -> CampaignRow:
        cfg, env = self.config, self.env
        campaign_id = f"{cfg.campaign_prefix}-{k:03d}"
        pick = self.rng.choice(len(self._ids), size=cfg.audience, replace=False)
        ids = [str(r) for r in self._ids[pick]]
        tz_codes = self._tz_code[pick]
        decisions = self._decide(
            self._requests(ids, [self._tz_names[c] for c in tz_codes], campaign_id, now)
        )
        actions = Counter(str(d["action"]) for d in decisions)
        sends = [
            (i, d)
            for i, d in enumerate(decisions)
            if d["action"] == "send" and d.get("variant_id") and d.get("send_at")
        ]
        arm_sends = Counter(str(d["variant_id"]) for _, d in sends)
        self._trials.update(arm_sends)
        for _, d in sends:
            self._decisions[str(d["decision_id"])] = (str(d["variant_id"]), now)
        mailable = env.is_mailable([ids[i] for i, _ in sends]) if sends else np.zeros(0, bool)
        live = [s for s, ok in zip(sends, mailable, strict=True) if ok]
        live_idx = np.array([i for i, _ in live], dtype=np.int64)
        row_ids = [ids[i] for i in live_idx]
        variants = [str(d["variant_id"]) for _, d in live]
        send_at = np.array(
            [_parse_time(str(d["send_at"])).replace(tzinfo=None) for _, d in live],
            dtype="datetime64[us]",
        )
        clicks, expected_policy, expected_oracle = 0, 0.0, 0.0
        by_arm = dict.fromkeys(self.arms, 0.0)
        open_rates = (float("nan"),) * 3
        if live:
            # Expected values first: sending moves the world's state (fatigue, attrition).
            rates = np.stack([env.expected_click_rate(row_ids, arm, send_at) for arm in self.arms])
            chosen = np.array([self.arms.index(v) for v in variants])
            expected_policy = float(rates[chosen, np.arange(len(live))].sum())
            expected_oracle = float(rates.max(axis=0).sum())
            by_arm = {arm: float(rates[a].sum()) for a, arm in enumerate(self.arms)}
            open_rates = self._open_rates(row_ids, tz_codes[live_idx], send_at, now)
            outcome = env.send(row_ids, variants, send_at, campaign_id=campaign_id)
            clicks = int(outcome.clicked.sum())
            decision_of = {ids[i]: str(d["decision_id"]) for i, d in live}
            self._queue(outcome.events.to_pylist(), decision_of)
        return CampaignRow(
            campaign_id=campaign_id,
            started_at=now,
            audience=len(ids),
            sent=len(sends),
            suppressed=actions.get("suppress", 0),
            holdout=actions.get("holdout", 0),
            mailable=len(live),
            arm_sends={arm: arm_sends.get(arm, 0) for arm in self.arms},
            trials={},
            successes={},
            clicks=clicks,
            expected_clicks_policy=expected_policy,
            expected_clicks_oracle=expected_oracle,
            expected_clicks_by_arm=by_arm,
            open_rate_policy=open_rates[0],
            open_rate_fixed=open_rates[1],
            open_rate_oracle=open_rates[2],
        )

    def _queue(self, events: list[dict[str, Any]], decision_of: Mapping[str, str]) -> None:
        kinds = set(self.config.post_kinds)
        for event in events:
            if event["kind"] not in kinds:
                continue
            at: datetime = event["occurred_at"]
            record = {k: v for k, v in event.items() if v is not None and k != "occurred_at"}
            record["occurred_at"] = at.isoformat()
            record["decision_id"] = decision_of[event["recipient_id"]]
            record["_at"] = at
            self._pending.append(record)

    # -- the run -----------------------------------------------------------------------------

    def campaigns(self) -> Iterator[CampaignRow]:
        """Run the campaigns one by one, yielding each row once its outcomes are posted."""
        interval = timedelta(hours=self.config.interval_hours)
        for k in range(self.config.campaigns):
            now = self._start + k * interval
            row = self._campaign(k, now)
            self._post_outcomes(now + interval)
            logger.info("campaign %s: %d sent, %d clicks", row.campaign_id, row.sent, row.clicks)
            yield _with_counts(row, self._trials, self._successes, self.arms)
        self._post_outcomes(None)

    def run(
        self, on_campaign: Callable[[CampaignRow, LoopSummary], None] | None = None
    ) -> LoopResult:
        """Run every campaign; ``on_campaign`` sees each row and the totals so far."""
        rows: list[CampaignRow] = []
        for row in self.campaigns():
            rows.append(row)
            if on_campaign is not None:
                on_campaign(row, summarize(rows))
        return LoopResult(
            experiment_id=self.config.experiment_id,
            arms=self.arms,
            reward_kind=self.reward_kind,
            fixed_hour=self.fixed_hour,
            fixed_hour_basis=self.fixed_hour_basis,
            rows=tuple(rows),
            rewards={a: self._successes.get(a, 0) for a in self.arms},
            outcomes_posted=self._posted,
            outcomes_counted=self._counted,
        )


def _with_counts(
    row: CampaignRow, trials: Mapping[str, int], successes: Mapping[str, int], arms: Sequence[str]
) -> CampaignRow:
    return replace(
        row,
        trials={a: trials.get(a, 0) for a in arms},
        successes={a: successes.get(a, 0) for a in arms},
    )
