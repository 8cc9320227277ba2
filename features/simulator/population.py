"""Who the recipients are: time zone, segment, chronotype, engagement, mail client.

The open propensity of recipient ``r`` for an email delivered at local hour of week ``h`` is

    p_open(r, h) = sigmoid(engagement_r + hour_effect_r(h) - fatigue_strength * fatigue_r)

``hour_effect`` is a circular Gaussian bump around the person's preferred hour, centred so that
``engagement_r`` is the logit at an *average* hour. Weekends use a later, flatter bump because
routines loosen (the ``weekend_flattening`` parameter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from features.simulator._arrays import BoolArray, FloatArray, IntArray
from features.simulator.config import SimulationConfig

__all__ = [
    "CHRONOTYPES",
    "Population",
    "VariantRates",
    "draw_population",
    "draw_variant_rates",
    "hour_effect",
    "recipient_id_strings",
    "sigmoid",
]

#: Chronotypes and their typical weekday peak hour, spread of personal peaks, weekend shift and
#: share of the audience. Morning people sleep in at weekends the most (1.5 h later).
CHRONOTYPES: tuple[str, ...] = ("morning", "lunch", "evening", "night")
_PEAK = np.array([7.5, 12.5, 19.5, 22.5])
_PEAK_SD = np.array([0.8, 0.6, 1.0, 0.8])
_WEEKEND_SHIFT = np.array([1.5, 0.5, 0.0, 0.5])
_SHARE = np.array([0.3, 0.2, 0.35, 0.15])
_WEEKEND_START_HOUR = 120  # Saturday 00:00 local in a Monday-based hour of week
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def sigmoid(x: FloatArray) -> FloatArray:
    """The logistic function, elementwise.

    >>> sigmoid(np.array([0.0])).tolist()
    [0.5]
    """
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass(frozen=True, slots=True)
class Population:
    """Latent traits of every recipient, aligned by position (index = recipient code)."""

    recipient_ids: list[str]
    timezone: IntArray
    segment: IntArray
    chronotype: IntArray
    engagement_logit: FloatArray
    peak_weekday: FloatArray
    peak_weekend: FloatArray
    width: FloatArray
    amplitude: FloatArray
    is_mpp: BoolArray
    bad_address: BoolArray

    @property
    def size(self) -> int:
        """Number of recipients."""
        return len(self.recipient_ids)


@dataclass(frozen=True, slots=True)
class VariantRates:
    """True funnel rates per segment (rows) and variant (columns)."""

    click: FloatArray  # P(click | human open)
    convert: FloatArray  # P(convert | click)
    order_value_log_mean: FloatArray  # per segment

    def favourite(self) -> IntArray:
        """Index of each segment's best variant by clicks per open."""
        out: IntArray = np.argmax(self.click, axis=1).astype(np.int64)
        return out


def recipient_id_strings(n: int) -> list[str]:
    """Opaque recipient ids ``r0000000``, ``r0000001``, ... (at least seven digits).

    >>> recipient_id_strings(2)
    ['r0000000', 'r0000001']
    """
    width = max(7, len(str(n - 1)))
    return [f"r{i:0{width}d}" for i in range(n)]


def hour_effect(
    hour_of_week: FloatArray,
    peak_weekday: FloatArray,
    peak_weekend: FloatArray,
    width: FloatArray,
    amplitude: FloatArray,
    weekend_flattening: float,
) -> FloatArray:
    """Logit shift of the open propensity at a local hour of week (arrays broadcast).

    Examples
    --------
    >>> one = np.array([1.0])
    >>> at = lambda h: hour_effect(np.array([h]), 8 * one, 9 * one, 2 * one, one, 0.5)[0]
    >>> bool(at(8.0) > at(14.0)), bool(at(5 * 24 + 9.0) < at(8.0))
    (True, True)
    """
    hour_of_day = np.mod(hour_of_week, 24.0)
    weekend = hour_of_week >= _WEEKEND_START_HOUR
    peak = np.where(weekend, peak_weekend, peak_weekday)
    amp = np.where(weekend, amplitude * weekend_flattening, amplitude)
    distance = np.mod(hour_of_day - peak + 12.0, 24.0) - 12.0
    bump = np.exp(-0.5 * (distance / width) ** 2)
    # Subtract the bump's mean over the day (width * sqrt(2 pi) / 24 for widths well below 12 h)
    # so that the engagement logit is the propensity at an average hour, not at the peak.
    out: FloatArray = amp * (bump - width * _SQRT_2PI / 24.0)
    return out


def draw_population(cfg: SimulationConfig, rng: np.random.Generator) -> Population:
    """Draw every recipient's latent traits.

    Examples
    --------
    >>> cfg = SimulationConfig(recipients=500, days=7, seed=1)
    >>> pop = draw_population(cfg, np.random.default_rng(cfg.seed))
    >>> pop.size, pop.recipient_ids[0], set(pop.chronotype.tolist()) <= {0, 1, 2, 3}
    (500, 'r0000000', True)
    """
    n = cfg.recipients
    weights = np.array([w for _, w in cfg.timezones], dtype=np.float64)
    timezone = rng.choice(len(weights), size=n, p=weights / weights.sum()).astype(np.int64)
    segment = rng.integers(0, cfg.segments, size=n).astype(np.int64)
    chronotype = rng.choice(len(CHRONOTYPES), size=n, p=_SHARE).astype(np.int64)
    engagement = rng.normal(cfg.engagement_logit_mean, cfg.engagement_logit_sd, size=n)
    peak_weekday = np.mod(_PEAK[chronotype] + rng.normal(0.0, 1.0, n) * _PEAK_SD[chronotype], 24)
    peak_weekend = np.mod(peak_weekday + _WEEKEND_SHIFT[chronotype] + rng.normal(0.0, 0.5, n), 24)
    # Narrow widths make a sharp daily routine; 1-4 h keeps the centring formula accurate.
    width = np.clip(rng.normal(2.0, 0.4, n), 1.0, 4.0)
    # Lognormal amplitude around 1.5 logits: the peak hour roughly triples the odds of an open
    # compared with the trough for a typical person, some people barely care about timing.
    amplitude = rng.lognormal(math.log(1.5), 0.3, n)
    is_mpp = rng.random(n) < cfg.mpp_share
    bad_address = rng.random(n) < cfg.bad_address_share
    return Population(
        recipient_ids=recipient_id_strings(n),
        timezone=timezone,
        segment=segment,
        chronotype=chronotype,
        engagement_logit=engagement,
        peak_weekday=peak_weekday,
        peak_weekend=peak_weekend,
        width=width,
        amplitude=amplitude,
        is_mpp=is_mpp,
        bad_address=bad_address,
    )


def draw_variant_rates(cfg: SimulationConfig, rng: np.random.Generator) -> VariantRates:
    """Draw the true click and conversion rates per segment and variant.

    Segment ``s`` favours variant ``s % variants``: its rates there are the base rate times the
    favourite lift, elsewhere a random 70-100 % of the base rate. So with two or more segments
    and variants the best variant differs between segments and contextual choice pays off.

    Examples
    --------
    >>> cfg = SimulationConfig(recipients=10, days=7, seed=1)
    >>> draw_variant_rates(cfg, np.random.default_rng(1)).favourite().tolist()
    [0, 1, 2, 0]
    """
    s, v = cfg.segments, cfg.variants_per_campaign
    favourite = np.zeros((s, v), dtype=bool)
    favourite[np.arange(s), np.arange(s) % v] = True
    click = np.where(
        favourite,
        cfg.click_rate * cfg.favourite_click_lift,
        cfg.click_rate * rng.uniform(0.7, 1.0, (s, v)),
    )
    convert = np.where(
        favourite,
        cfg.convert_rate * cfg.favourite_convert_lift,
        cfg.convert_rate * rng.uniform(0.7, 1.0, (s, v)),
    )
    # Segments also spend differently: +-20 % on the log scale around the configured mean.
    order_mean = cfg.order_value_log_mean + rng.normal(0.0, 0.2, s)
    return VariantRates(click=click, convert=convert, order_value_log_mean=order_mean)
