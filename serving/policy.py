"""Which variant: Thompson sampling for bandits, the salted hash for A/B tests.

Allocations are recomputed from the stored arm statistics at most every
``allocation_refresh_seconds`` per experiment (and segment), not per request; each request
then makes one weighted draw and logs its probability.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np

from inboxlab.experiment import ExperimentDefinition
from inboxlab.records import EventKind
from serving.assignment import FixedSplit
from serving.bandit import (
    Allocation,
    ArmCounts,
    BanditConfig,
    ThompsonSampler,
    discounted_counts,
)
from serving.store import DecisionStore, RewardRule

__all__ = ["Choice", "VariantPolicy", "engagement_tier", "reward_rule"]

_REWARD_KIND = {
    "open": EventKind.OPEN,
    "click": EventKind.CLICK,
    "convert": EventKind.CONVERT,
    "revenue": EventKind.CONVERT,
}


def reward_rule(definition: ExperimentDefinition) -> RewardRule:
    """The outcome that rewards an arm of ``definition`` and its attribution window."""
    return RewardRule(
        kind=_REWARD_KIND[definition.primary_metric],
        attribution_window=timedelta(hours=definition.attribution_window_hours),
    )


def engagement_tier(features: Mapping[str, object]) -> str:
    """The contextual segment of a recipient: ``dormant``, ``casual`` or ``engaged``.

    >>> engagement_tier({"opens_90d": 0, "clicks_90d": 0})
    'dormant'
    >>> engagement_tier({"opens_90d": 9, "clicks_90d": 2, "open_rate_30d": 0.4})
    'engaged'
    """
    opens = float(features.get("opens_90d", 0) or 0)  # type: ignore[arg-type]
    clicks = float(features.get("clicks_90d", 0) or 0)  # type: ignore[arg-type]
    if opens + clicks == 0:
        return "dormant"
    rate = float(features.get("open_rate_30d", 0) or 0)  # type: ignore[arg-type]
    return "engaged" if rate >= 0.25 else "casual"


@dataclass(frozen=True, slots=True)
class Choice:
    """A variant and the probability it had of being chosen."""

    variant_id: str
    propensity: float
    policy: Literal["bandit", "ab"]
    segment: str | None


class VariantPolicy:
    """Chooses variants for experiments, caching bandit allocations between refreshes."""

    def __init__(self, store: DecisionStore, *, refresh_seconds: float, salt: str) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._salt = salt
        self._lock = threading.Lock()
        self._samplers: dict[str, ThompsonSampler] = {}
        # experiment -> (fetched at, per-segment counts, version)
        self._counts: dict[str, tuple[float, dict[str, dict[str, ArmCounts]], int]] = {}
        # (experiment, segment) -> (version, allocation): the pooled counts and posteriors of
        # a version are computed once, not on every request.
        self._allocations: dict[tuple[str, str | None], tuple[int, Allocation]] = {}

    def choose(
        self,
        definition: ExperimentDefinition,
        recipient_id: str,
        *,
        tier: str,
        today: date,
        rng: np.random.Generator,
    ) -> Choice:
        """One variant for one recipient."""
        if definition.type == "ab":
            split = FixedSplit(definition.weights)
            variant, weight = split.assign(self._salt, definition.id, recipient_id)
            return Choice(variant, weight, "ab", None)
        allocation = self.allocation(definition, tier=tier, today=today)
        variant, propensity = allocation.draw(rng)
        # The tier is recorded for per-segment reports even when not contextual.
        return Choice(variant, propensity, "bandit", tier)

    def allocation(self, definition: ExperimentDefinition, *, tier: str, today: date) -> Allocation:
        """The arm probabilities a bandit request of ``tier`` draws from (cached; see above).

        Many requests of one tier and day share it: a batch draws all of theirs at once.
        """
        by_segment, version = self._segment_counts(definition, today)
        segment = tier if definition.bandit.contextual else None
        key = (definition.id, segment)
        cached = self._allocations.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        sampler = self._sampler(definition)
        if segment is not None:
            own = by_segment.get(segment, {})
            others = _pool(s for name, s in by_segment.items() if name != segment)
            found = sampler.allocation(own, segment=segment, others=others, version=version)
        else:
            found = sampler.allocation(_pool(by_segment.values()), segment=None, version=version)
        self._allocations[key] = (version, found)
        return found

    def _sampler(self, definition: ExperimentDefinition) -> ThompsonSampler:
        sampler = self._samplers.get(definition.id)
        if sampler is None:
            with self._lock:
                sampler = self._samplers.get(definition.id)
                if sampler is None:
                    config = BanditConfig(
                        arms=tuple(a.id for a in definition.arms),
                        floor=definition.bandit.weight_floor,
                        discount=definition.bandit.discount_per_day,
                    )
                    # Fresh OS entropy per process: replicas must not draw in lockstep.
                    sampler = ThompsonSampler(config, np.random.default_rng())
                    self._samplers[definition.id] = sampler
        return sampler

    def _segment_counts(
        self, definition: ExperimentDefinition, today: date
    ) -> tuple[dict[str, dict[str, ArmCounts]], int]:
        now = time.monotonic()
        cached = self._counts.get(definition.id)
        if cached is not None and now - cached[0] < self._refresh:
            return cached[1], cached[2]
        rows: dict[str, list[tuple[str, date, float, float]]] = defaultdict(list)
        for stat in self._store.arm_statistics(definition.id):
            rows[stat.segment].append(
                (stat.variant_id, stat.day, float(stat.successes), float(stat.trials))
            )
        counts = {
            segment: discounted_counts(
                seg_rows, today=today, discount=definition.bandit.discount_per_day
            )
            for segment, seg_rows in rows.items()
        }
        version = (cached[2] + 1) if cached is not None else 0
        self._counts[definition.id] = (now, counts, version)
        return counts, version


def _pool(segments: Iterable[Mapping[str, ArmCounts]]) -> dict[str, ArmCounts]:
    total: dict[str, ArmCounts] = {}
    for counts in segments:
        for arm, c in counts.items():
            total[arm] = total.get(arm, ArmCounts(0.0, 0.0)) + c
    return total
