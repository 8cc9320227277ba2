"""The immutable, validated configuration of a simulated email world.

Every modelling constant lives here so that a run is fully described by its config (which the
ground truth stores as JSON) and nothing random hides in library code: the only source of
randomness is ``seed``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inboxlab.errors import InvalidInputError

__all__ = ["DEFAULT_TIMEZONES", "SimulationConfig"]

#: Where the default audience lives, with its share of recipients. Seven zones spread over
#: 18 hours so that one fixed UTC send hour is good for some recipients and bad for others.
DEFAULT_TIMEZONES: tuple[tuple[str, float], ...] = (
    ("America/Los_Angeles", 0.15),
    ("America/New_York", 0.25),
    ("Europe/London", 0.15),
    ("Europe/Berlin", 0.15),
    ("Asia/Kolkata", 0.10),
    ("Asia/Tokyo", 0.10),
    ("Australia/Sydney", 0.10),
)


def _fail(name: str, rule: str, value: object) -> InvalidInputError:
    return InvalidInputError(f"SimulationConfig.{name} must be {rule}, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What the simulated world looks like and how it was mailed.

    Parameters are grouped by the part of the model they drive; probabilities are per email
    unless stated otherwise. Invalid values raise
    :class:`~inboxlab.errors.InvalidInputError` whose ``field`` names the parameter.

    Examples
    --------
    >>> cfg = SimulationConfig(recipients=1_000, days=30, seed=7)
    >>> cfg.end.isoformat()
    '2026-02-04'
    >>> SimulationConfig(recipients=0, days=30, seed=7)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    inboxlab.errors.InvalidInputError: SimulationConfig.recipients must be an integer in [1, ...
    """

    recipients: int
    days: int
    seed: int
    #: First simulated day (UTC midnight). A Monday, so weeks line up in plots.
    start: date = date(2026, 1, 5)

    # --- audience -------------------------------------------------------------------------
    timezones: tuple[tuple[str, float], ...] = DEFAULT_TIMEZONES
    #: Content-affinity segments; segment ``s`` likes variant ``s % variants_per_campaign`` best.
    segments: int = 4
    #: Share of recipients whose mail client prefetches every email (Apple MPP style).
    mpp_share: float = 0.35
    #: Share of machine opens that the sending platform manages to flag; the rest are null.
    machine_open_flag_rate: float = 0.4
    #: Share of addresses that never worked: they hard-bounce on their first send.
    bad_address_share: float = 0.01

    # --- engagement -----------------------------------------------------------------------
    #: Logit-normal base open propensity at an average hour: mean and sd on the logit scale.
    engagement_logit_mean: float = -1.5
    engagement_logit_sd: float = 1.0
    #: Random-walk drift of the engagement logit, sd per sqrt(day).
    engagement_drift_sd: float = 0.03
    #: Logit penalty per unit of fatigue (one recently delivered email = one unit).
    fatigue_strength: float = 0.15
    #: Fatigue halves every this many days without mail.
    fatigue_half_life_days: float = 4.0
    #: Weekend curves are this fraction as peaked as weekday ones (people are less routine).
    weekend_flattening: float = 0.6

    # --- funnel ---------------------------------------------------------------------------
    #: Click given a human open, for a variant the segment does not favour.
    click_rate: float = 0.10
    #: Multiplier of the click rate for the segment's favourite variant.
    favourite_click_lift: float = 1.8
    #: Conversion given a click, and the lift for the favourite variant.
    convert_rate: float = 0.06
    favourite_convert_lift: float = 1.3
    #: Lognormal order value: log-scale mean (ln 60 ≈ 4.09) and sd.
    order_value_log_mean: float = 4.09
    order_value_log_sd: float = 0.7

    # --- attrition ------------------------------------------------------------------------
    #: Unsubscribe / complaint logit = intercept + slope * (fatigue including this email).
    unsubscribe_logit: float = -7.5
    complaint_logit: float = -9.5
    frequency_slope: float = 0.5
    #: Per-send chance that a working address dies (then it hard-bounces for ever).
    hard_bounce_rate: float = 0.0002
    #: Per-send transient failure; retried later with ``soft_bounce_retry_rate``.
    soft_bounce_rate: float = 0.01
    soft_bounce_retry_rate: float = 0.8

    # --- sending history ------------------------------------------------------------------
    campaigns_per_week: float = 2.5
    variants_per_campaign: int = 3
    #: Share of mailable recipients each campaign goes to.
    audience_share: float = 0.9
    #: Share of campaigns sent at a uniformly random hour per recipient (exploration).
    randomized_hour_share: float = 0.2
    #: The hour most campaigns go out at, in UTC or in each recipient's local time.
    fixed_send_hour: int = 15
    fixed_hour_basis: Literal["utc", "local"] = "utc"

    def __post_init__(self) -> None:
        self._check_int("recipients", 1, 50_000_000)
        self._check_int("days", 1, 3_650)
        self._check_int("seed", 0, 2**63 - 1)
        if not isinstance(self.start, date) or isinstance(self.start, datetime):
            raise _fail("start", "a datetime.date (a day, not a datetime)", self.start)
        self._check_timezones()
        self._check_int("segments", 1, 26)
        self._check_int("variants_per_campaign", 1, 26)
        self._check_int("fixed_send_hour", 0, 23)
        if self.fixed_hour_basis not in ("utc", "local"):
            raise _fail("fixed_hour_basis", "'utc' or 'local'", self.fixed_hour_basis)
        for name in (
            "mpp_share",
            "machine_open_flag_rate",
            "bad_address_share",
            "click_rate",
            "convert_rate",
            "hard_bounce_rate",
            "soft_bounce_rate",
            "soft_bounce_retry_rate",
            "audience_share",
            "randomized_hour_share",
        ):
            self._check_float(name, 0.0, 1.0)
        for name in ("engagement_logit_mean", "unsubscribe_logit", "complaint_logit"):
            self._check_float(name, -30.0, 30.0)
        for name in (
            "engagement_logit_sd",
            "engagement_drift_sd",
            "fatigue_strength",
            "frequency_slope",
            "order_value_log_sd",
        ):
            self._check_float(name, 0.0, 10.0)
        self._check_float("order_value_log_mean", -10.0, 20.0)
        self._check_float("weekend_flattening", 0.0, 2.0)
        self._check_float("fatigue_half_life_days", 1e-3, 365.0, open_low=True)
        self._check_float("campaigns_per_week", 1e-3, 70.0, open_low=True)
        for name, rate in (
            ("favourite_click_lift", self.click_rate),
            ("favourite_convert_lift", self.convert_rate),
        ):
            self._check_float(name, 1.0, 100.0)
            if rate * float(getattr(self, name)) > 1.0:
                raise _fail(name, "such that rate * lift <= 1", getattr(self, name))

    # --- validation helpers ---------------------------------------------------------------
    def _check_int(self, name: str, low: int, high: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(
                name,
                f"an integer >= {low}" if high > 10**9 else f"an integer in [{low}, {high}]",
                value,
            )

    def _check_float(self, name: str, low: float, high: float, *, open_low: bool = False) -> None:
        value = getattr(self, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and low <= value <= high
        if not ok:
            rule = f"a number in [{low}, {high}]" if not open_low else f"a number > 0 and <= {high}"
            raise _fail(name, rule, value)

    def _check_timezones(self) -> None:
        zones = self.timezones
        if not zones:
            raise _fail("timezones", "a non-empty sequence of (IANA name, weight)", zones)
        seen: set[str] = set()
        for entry in zones:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise _fail("timezones", "a sequence of (IANA name, weight) pairs", entry)
            name, weight = entry
            try:
                ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                raise _fail("timezones", "IANA time zone names", name) from None
            if name in seen:
                raise _fail("timezones", "distinct time zone names", name)
            seen.add(name)
            ok = isinstance(weight, int | float) and math.isfinite(weight) and weight > 0
            if not ok:
                raise _fail("timezones", "weights > 0", weight)

    # --- derived values -------------------------------------------------------------------
    @property
    def end(self) -> date:
        """The first day after the simulated window."""
        return date.fromordinal(self.start.toordinal() + self.days)

    @property
    def timezone_names(self) -> tuple[str, ...]:
        """IANA names, in the order used by the recipients' ``timezone`` codes."""
        return tuple(name for name, _ in self.timezones)

    @property
    def variant_ids(self) -> tuple[str, ...]:
        """Variant ids of every campaign: ``v0``, ``v1``, ..."""
        return tuple(f"v{k}" for k in range(self.variants_per_campaign))

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Segment labels: ``s0``, ``s1``, ..."""
        return tuple(f"s{k}" for k in range(self.segments))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal config."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif f.name == "timezones":
                value = [[name, weight] for name, weight in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown SimulationConfig field(s): {unknown}", field=unknown[0]
            )
        kwargs = dict(data)
        if isinstance(kwargs.get("start"), str):
            kwargs["start"] = date.fromisoformat(kwargs["start"])
        if "timezones" in kwargs:
            kwargs["timezones"] = tuple((str(n), float(w)) for n, w in kwargs["timezones"])
        return cls(**kwargs)
