"""The sending history: campaigns over the window, mailed to the whole list at once.

Most campaigns go out at one fixed hour (UTC or local), as most senders do: the send-time
signal in the log is therefore thin and confounded with time zone. A minority go out at a
uniformly random hour per recipient, the exploration data a send-time model can learn from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from features.simulator._arrays import IntArray
from features.simulator.clock import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    day_start_us,
    utc_offset_us,
)
from features.simulator.config import SimulationConfig
from features.simulator.event_table import build_event_table
from features.simulator.population import draw_population, draw_variant_rates
from features.simulator.truth import GroundTruth
from features.simulator.world import ACTIVE, EventParts, RecipientState, World, sample_sends

__all__ = ["Campaign", "ProgressCallback", "SimulationResult", "plan_campaigns", "simulate"]

#: ``progress(done_days, total_days)``, called as the simulation advances.
ProgressCallback = Callable[[int, int], None]

_THROTTLE_US = 20 * US_PER_MINUTE  # a fixed-hour blast takes the platform ~20 minutes


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign of the history."""

    campaign_id: str
    day: int  # days after ``config.start``
    hour: float  # fixed send hour (UTC or local per config); unused when randomized
    randomized_hours: bool


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`simulate` returns: the observable log and the truth behind it."""

    events: pa.Table
    truth: GroundTruth


def plan_campaigns(cfg: SimulationConfig, rng: np.random.Generator) -> list[Campaign]:
    """Campaigns evenly spaced at ``campaigns_per_week``; a random ``randomized_hour_share``
    of them (rounded) go out at random hours.

    Examples
    --------
    >>> cfg = SimulationConfig(recipients=10, days=14, seed=1)
    >>> [c.day for c in plan_campaigns(cfg, np.random.default_rng(1))]
    [1, 4, 7, 9, 12]
    """
    spacing = 7.0 / cfg.campaigns_per_week
    days = [int((k + 0.5) * spacing) for k in range(int(cfg.days / spacing + 0.5))]
    days = [d for d in days if d < cfg.days]
    randomized = np.zeros(len(days), dtype=bool)
    n_random = round(cfg.randomized_hour_share * len(days))
    randomized[rng.choice(len(days), size=n_random, replace=False)] = True
    campaigns = []
    for k, day in enumerate(days):
        # Several campaigns on one day (high frequencies) are spread over the day.
        slot = days[:k].count(day)
        per_day = days.count(day)
        hour = (cfg.fixed_send_hour + slot * 24.0 / per_day) % 24.0
        campaigns.append(Campaign(f"c{k:04d}", day, hour, bool(randomized[k])))
    return campaigns


def _send_times(
    cfg: SimulationConfig,
    campaign: Campaign,
    timezone: IntArray,
    rng: np.random.Generator,
) -> IntArray:
    n: int = timezone.shape[0]
    day_us = day_start_us(cfg.start) + campaign.day * US_PER_DAY
    if campaign.randomized_hours:
        return day_us + rng.integers(0, US_PER_DAY, size=n, dtype=np.int64)
    nominal = np.full(n, day_us + int(campaign.hour * US_PER_HOUR), dtype=np.int64)
    if cfg.fixed_hour_basis == "local":
        nominal -= utc_offset_us(nominal, timezone, cfg.timezone_names)
    out: IntArray = nominal + rng.integers(0, _THROTTLE_US, size=n, dtype=np.int64)
    return out


def _config_digest(cfg: SimulationConfig) -> str:
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def simulate(cfg: SimulationConfig, progress: ProgressCallback | None = None) -> SimulationResult:
    """Simulate the whole history of an email list and keep the truth behind it.

    Events come back sorted by ``occurred_at`` with ``EVENT_SCHEMA``; ``event_id`` is
    ``sim-<config digest>-<sequence>``, so rerunning a config yields the same ids (an import
    deduplicates) and different configs never collide. ``decision_id`` is null: this history
    predates any decision service.

    Examples
    --------
    >>> sim = simulate(SimulationConfig(recipients=300, days=14, seed=5))
    >>> sim.events.schema.names[:4]
    ['event_id', 'recipient_id', 'kind', 'occurred_at']
    >>> sim.truth.campaigns.num_rows
    5
    """
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    pop_rng, rates_rng, plan_rng, send_rng = (np.random.default_rng(s) for s in seeds)
    population = draw_population(cfg, pop_rng)
    world = World(cfg, population, draw_variant_rates(cfg, rates_rng))
    campaigns = plan_campaigns(cfg, plan_rng)
    start_us = day_start_us(cfg.start)
    end_us = day_start_us(cfg.end)
    state = RecipientState.initial(population, start_us)
    parts = EventParts()
    rows: list[dict[str, Any]] = []
    for code, campaign in enumerate(campaigns):
        active = np.flatnonzero(state.status == ACTIVE)
        idx = active[send_rng.random(active.shape[0]) < cfg.audience_share]
        send_us = _send_times(cfg, campaign, population.timezone[idx], send_rng)
        # A local-hour campaign can fall outside the window for far-off zones; keep it inside.
        send_us = np.where(send_us < start_us, send_us + US_PER_DAY, send_us)
        inside = send_us < end_us
        idx, send_us = idx[inside], send_us[inside]
        n_sends: int = idx.shape[0]
        variant = send_rng.integers(0, cfg.variants_per_campaign, size=n_sends)
        batch = sample_sends(world, state, send_rng, idx, send_us, variant, code, parts)
        rows.append(
            {
                "campaign_id": campaign.campaign_id,
                "started_at": int(send_us.min()) if idx.shape[0] else start_us,
                "randomized_hours": campaign.randomized_hours,
                "fixed_hour": None if campaign.randomized_hours else campaign.hour,
                "fixed_hour_basis": None if campaign.randomized_hours else cfg.fixed_hour_basis,
                "sent": int(idx.shape[0]),
                "delivered": int(batch.delivered.sum()),
                "hard_bounces": int(batch.hard_bounced.sum()),
                "soft_bounces": int((batch.bounced & ~batch.hard_bounced).sum()),
                "expected_human_opens": float(batch.p_open[batch.delivered].sum()),
                "human_opens": int(batch.human_opened.sum()),
                "machine_opens": int(batch.machine_opened.sum()),
                "clicks": int(batch.clicked.sum()),
                "conversions": int(batch.converted.sum()),
                "revenue": float(batch.revenue.sum()),
                "unsubscribes": int(batch.unsubscribed.sum()),
                "complaints": int(batch.complained.sum()),
            }
        )
        if progress is not None:
            progress(campaign.day + 1, cfg.days)
    events = build_event_table(
        parts,
        population.recipient_ids,
        [c.campaign_id for c in campaigns],
        cfg.variant_ids,
        id_prefix=f"sim-{_config_digest(cfg)}-",
        terminal_at_us=state.terminal_at_us,
        end_us=end_us,
    )
    if progress is not None:
        progress(cfg.days, cfg.days)
    campaigns_table = _campaigns_table(rows)
    truth = GroundTruth(cfg, population, world.rates, state, campaigns_table)
    return SimulationResult(events=events, truth=truth)


def _campaigns_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema(
        [
            ("campaign_id", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("randomized_hours", pa.bool_()),
            ("fixed_hour", pa.float64()),
            ("fixed_hour_basis", pa.string()),
            ("sent", pa.int64()),
            ("delivered", pa.int64()),
            ("hard_bounces", pa.int64()),
            ("soft_bounces", pa.int64()),
            ("expected_human_opens", pa.float64()),
            ("human_opens", pa.int64()),
            ("machine_opens", pa.int64()),
            ("clicks", pa.int64()),
            ("conversions", pa.int64()),
            ("revenue", pa.float64()),
            ("unsubscribes", pa.int64()),
            ("complaints", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)
