"""What happens when one email reaches one recipient: the outcome model of the simulator.

The history generator and the closed-loop :class:`~features.simulator.EmailEnvironment` both
call :func:`sample_sends`, so decisions evaluated in the environment face exactly the world that
produced the training data.

Per send, in order: random-walk drift of engagement since the last look; hard bounce (bad
address or a working address dying) or soft bounce (transient, usually retried hours later);
delivery; a human open with probability ``p_open`` at the local hour of delivery, lowered by
fatigue; a machine open for MPP recipients a few minutes after delivery; click given a human
open and conversion given a click, at the segment × variant rates; complaint or unsubscribe,
more likely the more mail the person got recently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.simulator._arrays import BoolArray, FloatArray, IntArray
from features.simulator.clock import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, local_hour_of_week
from features.simulator.config import SimulationConfig
from features.simulator.population import Population, VariantRates, hour_effect, sigmoid
from inboxlab.errors import InvalidInputError
from inboxlab.records import EventKind

__all__ = [
    "ACTIVE",
    "COMPLAINED",
    "HARD_BOUNCED",
    "KINDS",
    "NEVER",
    "STATUS_NAMES",
    "UNSUBSCRIBED",
    "EventParts",
    "RecipientState",
    "SendBatch",
    "World",
    "sample_sends",
    "variant_codes",
]

ACTIVE, UNSUBSCRIBED, COMPLAINED, HARD_BOUNCED = 0, 1, 2, 3
STATUS_NAMES: tuple[str, ...] = ("active", "unsubscribed", "complained", "hard_bounced")
#: Event kinds by code, in the order of :class:`~inboxlab.records.EventKind`.
KINDS: tuple[EventKind, ...] = tuple(EventKind)
_K = {kind: code for code, kind in enumerate(KINDS)}
#: "Not yet" for terminal times: later than any instant the simulator produces.
NEVER = np.iinfo(np.int64).max

# Share of human opens that happen soon after delivery (the person is at the inbox); the rest
# wait for the person's next preferred hour, which is what makes open *times* informative.
_QUICK_OPEN_SHARE = 0.45
_QUICK_OPEN_MEAN_H = 0.67
_NEXT_DAY_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class World:
    """The fixed part of the world: configuration, recipients and funnel rates."""

    config: SimulationConfig
    population: Population
    rates: VariantRates

    def hour_effect(self, idx: IntArray, t_us: IntArray) -> FloatArray:
        """The open-logit shift of delivering at ``t_us`` to recipients ``idx`` (their hour
        curves at the local hour of the week)."""
        pop, cfg = self.population, self.config
        how = local_hour_of_week(t_us, pop.timezone[idx], cfg.timezone_names)
        effect: FloatArray = hour_effect(
            how,
            pop.peak_weekday[idx],
            pop.peak_weekend[idx],
            pop.width[idx],
            pop.amplitude[idx],
            cfg.weekend_flattening,
        )
        return effect

    def open_probability(
        self, idx: IntArray, t_us: IntArray, engagement: FloatArray, fatigue: FloatArray
    ) -> FloatArray:
        """True human-open probability of emails delivered at ``t_us`` to recipients ``idx``."""
        effect = self.hour_effect(idx, t_us)
        return sigmoid(engagement + effect - self.config.fatigue_strength * fatigue)

    def decayed_fatigue(self, state: RecipientState, idx: IntArray, t_us: IntArray) -> FloatArray:
        """Fatigue of recipients ``idx`` at ``t_us``: halves every ``fatigue_half_life_days``."""
        elapsed = np.maximum(t_us - state.fatigue_at_us[idx], 0) / US_PER_DAY
        out: FloatArray = state.fatigue[idx] * 0.5 ** (elapsed / self.config.fatigue_half_life_days)
        return out


@dataclass(slots=True)
class RecipientState:
    """What changes while mail goes out; mutated in place by :func:`sample_sends`."""

    engagement_logit: FloatArray
    engagement_at_us: IntArray
    fatigue: FloatArray
    fatigue_at_us: IntArray
    status: IntArray
    terminal_at_us: IntArray

    @classmethod
    def initial(cls, population: Population, start_us: int) -> RecipientState:
        """Everyone active and rested, engagement at its base value."""
        n = population.size
        return cls(
            engagement_logit=population.engagement_logit.copy(),
            engagement_at_us=np.full(n, start_us, dtype=np.int64),
            fatigue=np.zeros(n),
            fatigue_at_us=np.full(n, start_us, dtype=np.int64),
            status=np.zeros(n, dtype=np.int64),
            terminal_at_us=np.full(n, NEVER, dtype=np.int64),
        )

    def copy(self) -> RecipientState:
        """An independent copy (environments must not change the stored truth)."""
        return RecipientState(
            self.engagement_logit.copy(),
            self.engagement_at_us.copy(),
            self.fatigue.copy(),
            self.fatigue_at_us.copy(),
            self.status.copy(),
            self.terminal_at_us.copy(),
        )


@dataclass(slots=True)
class EventParts:
    """Column chunks of events, appended per send batch and concatenated once at the end."""

    recipient: list[IntArray] = field(default_factory=list)
    kind: list[IntArray] = field(default_factory=list)
    time: list[IntArray] = field(default_factory=list)
    campaign: list[IntArray] = field(default_factory=list)
    variant: list[IntArray] = field(default_factory=list)
    value: list[FloatArray] = field(default_factory=list)
    machine_flag: list[npt.NDArray[np.int8]] = field(default_factory=list)  # 1 True, -1 null

    def add(
        self,
        kind: EventKind,
        recipient: IntArray,
        time: IntArray,
        campaign: int,
        variant: IntArray,
        value: FloatArray | None = None,
        machine_flag: npt.NDArray[np.int8] | None = None,
    ) -> None:
        """Append events of one kind (all arrays aligned)."""
        n = recipient.shape[0]
        if n == 0:
            return
        # Compact dtypes: a 100k x 90-day history holds ~8M events before the Arrow table.
        self.recipient.append(recipient.astype(np.int32))
        self.kind.append(np.full(n, _K[kind], dtype=np.int8))
        self.time.append(time.astype(np.int64))
        self.campaign.append(np.full(n, campaign, dtype=np.int32))
        self.variant.append(variant.astype(np.int16))
        self.value.append(np.full(n, np.nan) if value is None else value)
        flag = np.full(n, -1, dtype=np.int8) if machine_flag is None else machine_flag
        self.machine_flag.append(flag.astype(np.int8))

    def __len__(self) -> int:
        return sum(chunk.shape[0] for chunk in self.time)


@dataclass(frozen=True, slots=True)
class SendBatch:
    """Per-send outcomes of one batch (aligned with the recipients passed in)."""

    bounced: BoolArray
    hard_bounced: BoolArray
    delivered: BoolArray
    p_open: FloatArray
    human_opened: BoolArray
    machine_opened: BoolArray
    clicked: BoolArray
    converted: BoolArray
    revenue: FloatArray
    unsubscribed: BoolArray
    complained: BoolArray


def _times(rng: np.random.Generator, low_us: int, high_us: int, n: int) -> IntArray:
    return rng.integers(low_us, high_us, size=n, dtype=np.int64)


def sample_sends(
    world: World,
    state: RecipientState,
    rng: np.random.Generator,
    idx: IntArray,
    send_us: IntArray,
    variant: IntArray,
    campaign: int,
    parts: EventParts,
) -> SendBatch:
    """Send one email to each (active, distinct) recipient in ``idx``; record events in ``parts``.

    ``state`` is updated in place: engagement drift, fatigue, and the terminal status of
    recipients who hard-bounce, complain or unsubscribe.
    """
    cfg, pop = world.config, world.population
    n: int = idx.shape[0]
    # Drift is sampled lazily at each send: a Gaussian random walk observed at these times
    # has exactly this distribution, and it costs nothing for recipients not mailed.
    elapsed_days = np.maximum(send_us - state.engagement_at_us[idx], 0) / US_PER_DAY
    engagement = state.engagement_logit[idx] + rng.standard_normal(n) * (
        cfg.engagement_drift_sd * np.sqrt(elapsed_days)
    )
    state.engagement_logit[idx] = engagement
    state.engagement_at_us[idx] = np.maximum(send_us, state.engagement_at_us[idx])

    hard = pop.bad_address[idx] | (rng.random(n) < cfg.hard_bounce_rate)
    soft = ~hard & (rng.random(n) < cfg.soft_bounce_rate)
    retried = soft & (rng.random(n) < cfg.soft_bounce_retry_rate)
    effective = send_us + np.where(retried, _times(rng, US_PER_HOUR, 6 * US_PER_HOUR, n), 0)
    delivered = ~hard & (~soft | retried)
    bounce_at = send_us + _times(rng, 1_000_000, 30_000_000, n)
    deliver_at = effective + _times(rng, 1_000_000, 30_000_000, n)

    fatigue = world.decayed_fatigue(state, idx, effective)
    p_open = world.open_probability(idx, effective, engagement, fatigue)
    state.fatigue[idx] = np.where(delivered, fatigue + 1.0, state.fatigue[idx])
    state.fatigue_at_us[idx] = np.where(delivered, effective, state.fatigue_at_us[idx])

    human = delivered & (rng.random(n) < p_open)
    how = local_hour_of_week(deliver_at, pop.timezone[idx], cfg.timezone_names)
    hour_of_day = np.mod(how, 24.0)
    peak = np.where(how >= 120, pop.peak_weekend[idx], pop.peak_weekday[idx])
    wait_h = np.mod(peak - hour_of_day, 24.0) + rng.normal(0.0, 1.0, n)
    wait_h = np.maximum(wait_h, 0.1) + 24.0 * (rng.random(n) < _NEXT_DAY_SHARE)
    quick_h = rng.exponential(_QUICK_OPEN_MEAN_H, n) + 1.0 / 60.0
    delay_h = np.where(rng.random(n) < _QUICK_OPEN_SHARE, quick_h, wait_h)
    open_at = deliver_at + (delay_h * US_PER_HOUR).astype(np.int64)

    machine = delivered & pop.is_mpp[idx]
    machine_at = deliver_at + _times(rng, US_PER_MINUTE, 8 * US_PER_MINUTE, n)
    flagged = np.where(rng.random(n) < cfg.machine_open_flag_rate, 1, -1).astype(np.int8)

    segment = pop.segment[idx]
    clicked = human & (rng.random(n) < world.rates.click[segment, variant])
    click_at = open_at + 10_000_000 + (rng.exponential(3.0, n) * US_PER_MINUTE).astype(np.int64)
    converted = clicked & (rng.random(n) < world.rates.convert[segment, variant])
    # Orders follow clicks by minutes to hours (median 40 min), revenue is lognormal per segment.
    convert_at = click_at + (rng.lognormal(np.log(40.0), 1.0, n) * US_PER_MINUTE).astype(np.int64)
    revenue = np.round(
        rng.lognormal(world.rates.order_value_log_mean[segment], cfg.order_value_log_sd), 2
    )
    revenue = np.where(converted, revenue, 0.0)

    # Attrition depends on how much mail arrived lately, this email included: the frequency
    # effect that a fatigue rule in the decision service is meant to control.
    load = fatigue + 1.0
    complained = delivered & (
        rng.random(n) < sigmoid(cfg.complaint_logit + cfg.frequency_slope * load)
    )
    unsub_p = sigmoid(cfg.unsubscribe_logit + cfg.frequency_slope * load)
    unsubscribed = delivered & ~complained & (rng.random(n) < unsub_p)
    # They act while looking at the email (after their own open, click or order) or, without
    # opening, from the inbox list; never before an automatic prefetch.
    seen_at = np.where(human, np.maximum(open_at, np.where(clicked, click_at, 0)), open_at)
    seen_at = np.maximum(seen_at, np.where(converted, convert_at, 0))
    seen_at = np.maximum(seen_at, np.where(machine, machine_at, 0))
    leave_at = seen_at + 1_000_000 + (rng.exponential(10.0, n) * US_PER_MINUTE).astype(np.int64)

    parts.add(EventKind.SEND, idx, send_us, campaign, variant)
    bounced = hard | soft
    parts.add(EventKind.BOUNCE, idx[bounced], bounce_at[bounced], campaign, variant[bounced])
    parts.add(EventKind.SEND, idx[retried], effective[retried], campaign, variant[retried])
    parts.add(
        EventKind.DELIVER, idx[delivered], deliver_at[delivered], campaign, variant[delivered]
    )
    parts.add(
        EventKind.OPEN,
        idx[machine],
        machine_at[machine],
        campaign,
        variant[machine],
        machine_flag=flagged[machine],
    )
    parts.add(EventKind.OPEN, idx[human], open_at[human], campaign, variant[human])
    parts.add(EventKind.CLICK, idx[clicked], click_at[clicked], campaign, variant[clicked])
    parts.add(
        EventKind.CONVERT,
        idx[converted],
        convert_at[converted],
        campaign,
        variant[converted],
        value=revenue[converted],
    )
    parts.add(
        EventKind.COMPLAINT, idx[complained], leave_at[complained], campaign, variant[complained]
    )
    parts.add(
        EventKind.UNSUBSCRIBE,
        idx[unsubscribed],
        leave_at[unsubscribed],
        campaign,
        variant[unsubscribed],
    )

    for mask, status, at in (
        (hard, HARD_BOUNCED, bounce_at),
        (complained, COMPLAINED, leave_at),
        (unsubscribed, UNSUBSCRIBED, leave_at),
    ):
        state.status[idx[mask]] = status
        state.terminal_at_us[idx[mask]] = at[mask]

    return SendBatch(
        bounced=bounced,
        hard_bounced=hard,
        delivered=delivered,
        p_open=p_open,
        human_opened=human,
        machine_opened=machine,
        clicked=clicked,
        converted=converted,
        revenue=revenue,
        unsubscribed=unsubscribed,
        complained=complained,
    )


def variant_codes(variant_ids: Sequence[str], known: Sequence[str]) -> IntArray:
    """Codes of ``variant_ids`` in ``known``; unknown ids raise ``InvalidInputError``."""
    lookup = {v: k for k, v in enumerate(known)}
    try:
        return np.fromiter((lookup[v] for v in variant_ids), np.int64, len(variant_ids))
    except KeyError as exc:
        raise InvalidInputError(
            f"variant_id {exc.args[0]!r} is not one of {list(known)}", field="variant_id"
        ) from None
