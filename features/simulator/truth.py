"""The ground truth of a simulated world, and its files.

Files written by :meth:`GroundTruth.save` (all readable without inboxlab):

``params.json``
    The :class:`SimulationConfig`, the chronotype constants and the model formulas.
``recipients.parquet``
    One row per recipient: ``timezone`` (IANA), ``segment``, ``chronotype``, ``is_mpp``,
    ``bad_address``, ``base_engagement_logit`` / ``base_open_rate`` (at an average hour, rested),
    the hour-curve parameters, and the state at the end of the window (``engagement_logit_end``,
    ``fatigue``, ``fatigue_at``, ``status``, ``status_at``).
``variant_rates.parquet``
    True ``click_rate`` (given a human open) and ``convert_rate`` (given a click) per segment and
    variant, the segment's lognormal order value, and which variant is the segment's best.
``campaigns.parquet``
    Each campaign of the history: when, fixed or randomized hours, counts of every outcome and
    ``expected_human_opens`` (the sum of true open probabilities over delivered emails).
``open_probability_by_hour_of_week.npy`` (only with ``include_hour_matrix=True``)
    ``float32`` matrix, recipients × 168, of :meth:`GroundTruth.open_probability_by_hour_of_week`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from features.events.recipients import RECIPIENT_SCHEMA
from features.simulator._arrays import IntArray
from features.simulator.clock import HOURS_PER_WEEK
from features.simulator.config import SimulationConfig
from features.simulator.population import (
    CHRONOTYPES,
    Population,
    VariantRates,
    hour_effect,
    sigmoid,
)
from features.simulator.world import NEVER, STATUS_NAMES, RecipientState, World
from inboxlab.errors import InvalidInputError, NotFoundError

__all__ = ["GroundTruth"]

_FORMAT_VERSION = 1
_TS = pa.timestamp("us", tz="UTC")


def _codes(values: pa.ChunkedArray, names: Sequence[str]) -> IntArray:
    lookup = {name: code for code, name in enumerate(names)}
    return np.fromiter((lookup[v] for v in values.to_pylist()), np.int64, len(values))


@dataclass(frozen=True)
class GroundTruth:
    """Everything that generated a simulated history, including what no event log can show.

    Examples
    --------
    >>> from features.simulator import SimulationConfig, simulate
    >>> truth = simulate(SimulationConfig(recipients=200, days=7, seed=3)).truth
    >>> truth.open_probability_by_hour_of_week(["r0000000"]).shape
    (1, 168)
    """

    config: SimulationConfig
    population: Population
    rates: VariantRates
    #: State at the end of the simulated window (the environment continues from it).
    state: RecipientState
    campaigns: pa.Table

    @cached_property
    def world(self) -> World:
        """The fixed part of the world, as the outcome model uses it."""
        return World(self.config, self.population, self.rates)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {rid: i for i, rid in enumerate(self.population.recipient_ids)}

    def recipient_index(self, recipient_ids: Sequence[str]) -> IntArray:
        """Positions of ``recipient_ids``; unknown ids raise :class:`NotFoundError`."""
        try:
            return np.fromiter(
                (self._index[r] for r in recipient_ids), np.int64, len(recipient_ids)
            )
        except KeyError as exc:
            raise NotFoundError(f"recipient_id {exc.args[0]!r} is not in this world") from None

    def open_probability_by_hour_of_week(
        self,
        recipient_ids: Sequence[str] | None = None,
        *,
        engagement: Literal["base", "end"] = "base",
    ) -> npt.NDArray[np.float32]:
        """True human-open probability of a rested recipient per local hour of week.

        Column ``h`` is Monday 00:00 local time plus ``h`` hours. ``engagement="end"`` uses
        the drifted engagement at the end of the window instead of the base value.
        """
        pop, cfg = self.population, self.config
        idx = np.arange(pop.size) if recipient_ids is None else self.recipient_index(recipient_ids)
        if engagement not in ("base", "end"):
            raise InvalidInputError("engagement must be 'base' or 'end'", field="engagement")
        logit = (pop.engagement_logit if engagement == "base" else self.state.engagement_logit)[idx]
        out = np.empty((idx.shape[0], HOURS_PER_WEEK), dtype=np.float32)
        hours = np.arange(HOURS_PER_WEEK, dtype=np.float64) + 0.5  # middle of each hour
        for lo in range(0, idx.shape[0], 16_384):  # bounded temporaries for 100k recipients
            i = idx[lo : lo + 16_384]
            col = (slice(None), None)
            effect = hour_effect(
                hours[None, :],
                pop.peak_weekday[i][col],
                pop.peak_weekend[i][col],
                pop.width[i][col],
                pop.amplitude[i][col],
                cfg.weekend_flattening,
            )
            out[lo : lo + i.shape[0]] = sigmoid(logit[lo : lo + i.shape[0]][:, None] + effect)
        return out

    # --- tables -----------------------------------------------------------------------------
    def recipients_table(self) -> pa.Table:
        """One row per recipient (see the module docstring for the columns)."""
        pop, st, cfg = self.population, self.state, self.config
        terminal = st.terminal_at_us

        def ts(values: IntArray, mask: npt.NDArray[np.bool_]) -> pa.Array:
            return pa.array(values, mask=mask, type=pa.int64()).cast(_TS)

        return pa.table(
            {
                "recipient_id": pa.array(pop.recipient_ids, type=pa.string()),
                "timezone": pa.array(cfg.timezone_names).take(pa.array(pop.timezone)),
                "segment": pa.array(cfg.segment_names).take(pa.array(pop.segment)),
                "chronotype": pa.array(CHRONOTYPES).take(pa.array(pop.chronotype)),
                "is_mpp": pop.is_mpp,
                "bad_address": pop.bad_address,
                "base_engagement_logit": pop.engagement_logit,
                "base_open_rate": sigmoid(pop.engagement_logit),
                "peak_hour_weekday": pop.peak_weekday,
                "peak_hour_weekend": pop.peak_weekend,
                "hour_width": pop.width,
                "hour_amplitude": pop.amplitude,
                "engagement_logit_end": st.engagement_logit,
                "engagement_at": ts(st.engagement_at_us, np.zeros(pop.size, dtype=bool)),
                "fatigue": st.fatigue,
                "fatigue_at": ts(st.fatigue_at_us, np.zeros(pop.size, dtype=bool)),
                "status": pa.array(STATUS_NAMES).take(pa.array(st.status)),
                "status_at": ts(np.where(terminal == NEVER, 0, terminal), terminal == NEVER),
            }
        )

    def recipient_directory(self) -> pa.Table:
        """What a sender knows of its recipients (``RECIPIENT_SCHEMA``): the time zone.

        The joined date is unknown to the simulated sender, so ``created_at`` is null.
        """
        pop, cfg = self.population, self.config
        return pa.table(
            {
                "recipient_id": pa.array(pop.recipient_ids, type=pa.string()),
                "timezone": pa.array(cfg.timezone_names).take(pa.array(pop.timezone)),
                "created_at": pa.nulls(pop.size, pa.timestamp("us", tz="UTC")),
            },
            schema=RECIPIENT_SCHEMA,
        )

    def variant_rates_table(self) -> pa.Table:
        """True funnel rates, one row per segment × variant."""
        cfg, rates = self.config, self.rates
        s, v = rates.click.shape
        seg = np.repeat(np.arange(s), v)
        var = np.tile(np.arange(v), s)
        log_mean = rates.order_value_log_mean[seg]
        return pa.table(
            {
                "segment": pa.array(cfg.segment_names).take(pa.array(seg)),
                "variant_id": pa.array(cfg.variant_ids).take(pa.array(var)),
                "click_rate": rates.click.ravel(),
                "convert_rate": rates.convert.ravel(),
                "order_value_log_mean": log_mean,
                "mean_order_value": np.exp(log_mean + cfg.order_value_log_sd**2 / 2),
                "is_best": rates.favourite()[seg] == var,
            }
        )

    def params(self) -> dict[str, Any]:
        """The JSON document written as ``params.json``."""
        return {
            "format_version": _FORMAT_VERSION,
            "config": self.config.to_dict(),
            "chronotypes": list(CHRONOTYPES),
            "hour_of_week": "0 = Monday 00:00 local time; weekend = hours 120-167",
            "open_probability": (
                "sigmoid(engagement_logit + hour_effect(h) - fatigue_strength * fatigue); "
                "hour_effect(h) = a * (exp(-d^2 / (2 w^2)) - w * sqrt(2 pi) / 24), d = circular "
                "distance of the local hour of day to the peak (weekday or weekend), "
                "a = hour_amplitude (times weekend_flattening at weekends), w = hour_width"
            ),
            "fatigue": "+1 per delivered email, halves every fatigue_half_life_days",
            "attrition": "sigmoid(unsubscribe_logit | complaint_logit + frequency_slope * "
            "(fatigue + 1)) per delivered email",
            "bounces": "a hard bounce is a bounce event followed by no further event for that "
            "recipient; a soft bounce is a bounce usually followed by a retried send of the "
            "same campaign 1-6 hours later, and by later campaigns",
        }

    # --- files ------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, include_hour_matrix: bool = False) -> Path:
        """Write the truth files into ``directory`` (created if needed) and return it."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "params.json").write_text(json.dumps(self.params(), indent=2) + "\n")
        pq.write_table(self.recipients_table(), out / "recipients.parquet")
        pq.write_table(self.variant_rates_table(), out / "variant_rates.parquet")
        pq.write_table(self.campaigns, out / "campaigns.parquet")
        if include_hour_matrix:
            np.save(
                out / "open_probability_by_hour_of_week.npy",
                self.open_probability_by_hour_of_week(),
            )
        return out

    @classmethod
    def load(cls, directory: str | Path) -> GroundTruth:
        """Read what :meth:`save` wrote."""
        src = Path(directory)
        params_path = src / "params.json"
        if not params_path.is_file():
            raise NotFoundError(f"no ground truth in {src}: params.json is missing")
        params = json.loads(params_path.read_text())
        cfg = SimulationConfig.from_dict(params["config"])
        rec = pq.read_table(src / "recipients.parquet")
        rates_t = pq.read_table(src / "variant_rates.parquet")

        def col(name: str) -> Any:
            return rec.column(name).to_numpy()

        def us(name: str) -> IntArray:
            values = rec.column(name).cast(pa.int64()).fill_null(NEVER)
            out: IntArray = values.to_numpy().astype(np.int64)
            return out

        population = Population(
            recipient_ids=rec.column("recipient_id").to_pylist(),
            timezone=_codes(rec.column("timezone"), cfg.timezone_names),
            segment=_codes(rec.column("segment"), cfg.segment_names),
            chronotype=_codes(rec.column("chronotype"), CHRONOTYPES),
            engagement_logit=col("base_engagement_logit"),
            peak_weekday=col("peak_hour_weekday"),
            peak_weekend=col("peak_hour_weekend"),
            width=col("hour_width"),
            amplitude=col("hour_amplitude"),
            is_mpp=col("is_mpp"),
            bad_address=col("bad_address"),
        )
        shape = (cfg.segments, cfg.variants_per_campaign)
        seg_first = rates_t.column("order_value_log_mean").to_numpy()[:: cfg.variants_per_campaign]
        rates = VariantRates(
            click=rates_t.column("click_rate").to_numpy().reshape(shape),
            convert=rates_t.column("convert_rate").to_numpy().reshape(shape),
            order_value_log_mean=seg_first.copy(),
        )
        state = RecipientState(
            engagement_logit=col("engagement_logit_end"),
            engagement_at_us=us("engagement_at"),
            fatigue=col("fatigue"),
            fatigue_at_us=us("fatigue_at"),
            status=_codes(rec.column("status"), STATUS_NAMES),
            terminal_at_us=us("status_at"),
        )
        return cls(cfg, population, rates, state, pq.read_table(src / "campaigns.parquet"))
