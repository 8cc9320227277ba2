"""A closed-loop email environment: "if variant v went to recipient r at time t, what happens?"

It continues the simulated world from the end of its history (drifted engagement, fatigue,
unsubscribes) with the same outcome model as the history, and also answers with the true
probabilities, so a policy's decision quality can be measured without sampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

from features.simulator._arrays import BoolArray, FloatArray, IntArray
from features.simulator.clock import US_PER_HOUR, to_epoch_us
from features.simulator.event_table import build_event_table
from features.simulator.truth import GroundTruth
from features.simulator.world import ACTIVE, EventParts, sample_sends, variant_codes
from inboxlab.errors import InvalidInputError

__all__ = ["EmailEnvironment", "SendOutcome"]

SendAt = datetime | Sequence[datetime] | np.ndarray


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """Sampled outcomes of one :meth:`EmailEnvironment.send` call, aligned with its inputs.

    ``mailable`` is False for recipients who had already unsubscribed, complained or
    hard-bounced: nothing was sent to them and every other flag is False. ``opened`` counts
    any open (machine opens included, as the log would); ``human_opened`` is the engagement.
    """

    recipient_ids: list[str]
    variant_ids: list[str]
    mailable: BoolArray
    delivered: BoolArray
    bounced: BoolArray
    hard_bounced: BoolArray
    opened: BoolArray
    human_opened: BoolArray
    machine_opened: BoolArray
    clicked: BoolArray
    converted: BoolArray
    revenue: FloatArray
    unsubscribed: BoolArray
    complained: BoolArray
    #: True human-open probability each delivered email had (0 when not sent).
    p_open: FloatArray
    events: pa.Table


class EmailEnvironment:
    """Send emails into a simulated world and observe (or compute) what happens.

    Parameters
    ----------
    truth
        The ground truth of a simulation; it is not modified (the environment works on a copy
        of its end state).
    rng
        Source of all sampling noise.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from features.simulator import SimulationConfig, simulate
    >>> truth = simulate(SimulationConfig(recipients=300, days=14, seed=5)).truth
    >>> env = EmailEnvironment(truth, rng=np.random.default_rng(0))
    >>> when = datetime(2026, 1, 20, 15, tzinfo=UTC)
    >>> p = env.expected_open_rate(["r0000001", "r0000002"], when)
    >>> bool(((0 <= p) & (p <= 1)).all())
    True
    >>> out = env.send(["r0000001", "r0000002"], "v0", when, campaign_id="next")
    >>> out.delivered.shape
    (2,)
    """

    def __init__(self, truth: GroundTruth, rng: np.random.Generator) -> None:
        self.truth = truth
        self._rng = rng
        self._world = truth.world
        self._state = truth.state.copy()
        self._campaigns: list[str] = []
        self._id_prefix = f"env-{int(rng.integers(0, 2**32)):08x}-"
        self._next_id = 0

    # --- helpers ----------------------------------------------------------------------------
    def _index(self, recipient_ids: Sequence[str] | str) -> tuple[list[str], IntArray]:
        ids = [recipient_ids] if isinstance(recipient_ids, str) else list(recipient_ids)
        return ids, self.truth.recipient_index(ids)

    def _variants(self, variant_ids: Sequence[str] | str, n: int) -> tuple[list[str], IntArray]:
        ids = [variant_ids] * n if isinstance(variant_ids, str) else list(variant_ids)
        if len(ids) != n:
            raise InvalidInputError(
                f"variant_ids must be one id or {n} of them, got {len(ids)}", field="variant_id"
            )
        return ids, variant_codes(ids, self.truth.config.variant_ids)

    def is_mailable(self, recipient_ids: Sequence[str] | str) -> BoolArray:
        """False for recipients who unsubscribed, complained or hard-bounced."""
        _, idx = self._index(recipient_ids)
        out: BoolArray = self._state.status[idx] == ACTIVE
        return out

    # --- expected values --------------------------------------------------------------------
    def expected_open_rate(
        self,
        recipient_ids: Sequence[str] | str,
        send_at: SendAt,
        *,
        count_machine_opens: bool = False,
    ) -> FloatArray:
        """True probability that an email delivered at ``send_at`` is opened by its recipient.

        Uses the current engagement and fatigue (decayed to ``send_at``). Machine opens are
        left out unless ``count_machine_opens`` (then MPP recipients score 1). Recipients
        who can no longer be mailed score 0.
        """
        _, idx = self._index(recipient_ids)
        t_us = to_epoch_us(send_at, size=idx.shape[0])
        fatigue = self._world.decayed_fatigue(self._state, idx, t_us)
        p = self._world.open_probability(idx, t_us, self._state.engagement_logit[idx], fatigue)
        if count_machine_opens:
            p = np.where(self._world.population.is_mpp[idx], 1.0, p)
        out: FloatArray = np.where(self._state.status[idx] == ACTIVE, p, 0.0)
        return out

    def click_rate(
        self, recipient_ids: Sequence[str] | str, variant_ids: Sequence[str] | str
    ) -> FloatArray:
        """True P(click | human open) of each recipient's segment for the given variant."""
        _, idx = self._index(recipient_ids)
        _, var = self._variants(variant_ids, idx.shape[0])
        out: FloatArray = self._world.rates.click[self._world.population.segment[idx], var]
        return out

    def expected_click_rate(
        self,
        recipient_ids: Sequence[str] | str,
        variant_ids: Sequence[str] | str,
        send_at: SendAt,
    ) -> FloatArray:
        """True P(click) per email: open probability at ``send_at`` times click given open."""
        return self.expected_open_rate(recipient_ids, send_at) * self.click_rate(
            recipient_ids, variant_ids
        )

    def expected_conversion_rate(
        self,
        recipient_ids: Sequence[str] | str,
        variant_ids: Sequence[str] | str,
        send_at: SendAt,
    ) -> FloatArray:
        """True P(conversion) per email."""
        _, idx = self._index(recipient_ids)
        _, var = self._variants(variant_ids, idx.shape[0])
        convert = self._world.rates.convert[self._world.population.segment[idx], var]
        out: FloatArray = self.expected_click_rate(recipient_ids, variant_ids, send_at) * convert
        return out

    def best_variant(self, recipient_ids: Sequence[str] | str) -> list[str]:
        """The variant with the highest true click rate for each recipient's segment."""
        _, idx = self._index(recipient_ids)
        best = self._world.rates.favourite()[self._world.population.segment[idx]]
        names = self.truth.config.variant_ids
        return [names[k] for k in best.tolist()]

    def best_send_time(
        self, recipient_ids: Sequence[str] | str, window_start: datetime, hours: int = 24
    ) -> np.ndarray:
        """The whole hour in ``[window_start, window_start + hours)`` with the highest true open
        probability per recipient, as ``datetime64[us]`` UTC values (scored mid-hour)."""
        if hours < 1:
            raise InvalidInputError(f"hours must be >= 1, got {hours}", field="hours")
        ids, idx = self._index(recipient_ids)
        start = int(to_epoch_us(window_start)[0])
        start -= start % US_PER_HOUR
        candidates = start + np.arange(hours, dtype=np.int64) * US_PER_HOUR
        scores = np.stack(
            [
                self.expected_open_rate(
                    ids, np.full(idx.shape[0], c + US_PER_HOUR // 2).astype("datetime64[us]")
                )
                for c in candidates
            ]
        )
        out: np.ndarray = candidates[np.argmax(scores, axis=0)].astype("datetime64[us]")
        return out

    # --- sampling ---------------------------------------------------------------------------
    def send(
        self,
        recipient_ids: Sequence[str] | str,
        variant_ids: Sequence[str] | str,
        send_at: SendAt,
        *,
        campaign_id: str,
    ) -> SendOutcome:
        """Send one email to each recipient and sample what happens (state moves on).

        ``variant_ids`` and ``send_at`` are one value for everyone or one per recipient.
        Recipient ids must be distinct within a call (one email each).
        """
        ids, idx = self._index(recipient_ids)
        n = idx.shape[0]
        if np.unique(idx).shape[0] != n:
            raise InvalidInputError(
                "recipient_ids must be distinct within one send", field="recipient_id"
            )
        if not campaign_id:
            raise InvalidInputError("campaign_id must be a non-empty string", field="campaign_id")
        variants, var = self._variants(variant_ids, n)
        t_us = to_epoch_us(send_at, size=n)
        if campaign_id not in self._campaigns:
            self._campaigns.append(campaign_id)
        code = self._campaigns.index(campaign_id)
        mailable = self._state.status[idx] == ACTIVE
        sel = np.flatnonzero(mailable)
        parts = EventParts()
        batch = sample_sends(
            self._world, self._state, self._rng, idx[sel], t_us[sel], var[sel], code, parts
        )
        events = build_event_table(
            parts,
            self.truth.population.recipient_ids,
            self._campaigns,
            self.truth.config.variant_ids,
            id_prefix=self._id_prefix,
            terminal_at_us=self._state.terminal_at_us,
            first_id=self._next_id,
        )
        self._next_id += events.num_rows

        def spread(values: np.ndarray, fill: float | bool) -> np.ndarray:
            out = np.full(n, fill, dtype=values.dtype)
            out[sel] = values
            return out

        return SendOutcome(
            recipient_ids=ids,
            variant_ids=variants,
            mailable=mailable,
            delivered=spread(batch.delivered, False),
            bounced=spread(batch.bounced, False),
            hard_bounced=spread(batch.hard_bounced, False),
            opened=spread(batch.human_opened | batch.machine_opened, False),
            human_opened=spread(batch.human_opened, False),
            machine_opened=spread(batch.machine_opened, False),
            clicked=spread(batch.clicked, False),
            converted=spread(batch.converted, False),
            revenue=spread(batch.revenue, 0.0),
            unsubscribed=spread(batch.unsubscribed, False),
            complained=spread(batch.complained, False),
            p_open=spread(np.where(batch.delivered, batch.p_open, 0.0), 0.0),
            events=events,
        )
