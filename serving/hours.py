"""Send-time choice for many recipients at once: :func:`~serving.scoring.send_time.choose`
over a padded grid of candidate hours, and the profile fallback without a model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from serving.columns import FeatureBlock
from serving.scoring.send_time import Candidates
from training.context import OPEN_DAYS, OPEN_HOURS

__all__ = ["ChosenHours", "HourGrid", "profile_scores"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChosenHours:
    """The hour chosen for each row of a :class:`HourGrid`, its propensity, and whether the
    whole window was quiet."""

    index: IntArray
    propensity: FloatArray
    quiet: NDArray[np.bool_]


class HourGrid:
    """Candidate hours of many recipients, padded to the longest window.

    ``allowed`` marks the hours that may be chosen: outside quiet hours, or the whole window
    when all of it is quiet (``quiet``).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from serving.scoring.send_time import candidate_hours
    >>> start, end = datetime(2026, 3, 2, 6, tzinfo=UTC), datetime(2026, 3, 2, 10, tzinfo=UTC)
    >>> window = candidate_hours(start, end, "UTC", 21, 8)  # 06:00 and 07:00 are quiet
    >>> grid = HourGrid([window, window])
    >>> grid.allowed.sum(axis=1).tolist()
    [2, 2]
    >>> scores = np.array([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 5.0, 1.0]])
    >>> chosen = grid.choose(scores, np.zeros(2, bool), 0.0, np.random.default_rng(0))
    >>> chosen.index.tolist(), chosen.propensity.tolist()
    ([3, 2], [1.0, 1.0])
    """

    def __init__(self, windows: Sequence[Candidates]) -> None:
        m = len(windows)
        self.sizes = np.fromiter((len(w.utc) for w in windows), dtype=np.int64, count=m)
        width = max(int(self.sizes.max()) if m else 0, 1)
        self.valid = np.arange(width)[None, :] < self.sizes[:, None]
        self.local_hour = np.zeros((m, width), dtype=np.int64)
        self.local_weekday = np.zeros((m, width), dtype=np.int64)
        self.allowed = np.zeros((m, width), dtype=bool)
        by_window: dict[int, list[int]] = defaultdict(list)
        for k, window in enumerate(windows):
            by_window[id(window)].append(k)
        for members in by_window.values():
            window = windows[members[0]]
            n = len(window.utc)
            self.local_hour[members, :n] = window.local_hour
            self.local_weekday[members, :n] = window.local_weekday
            self.allowed[members, :n] = window.allowed
        self.quiet = ~self.allowed.any(axis=1) & (self.sizes > 0)
        # Every hour quiet: the whole window competes (as in the single path).
        self.allowed[self.quiet] = self.valid[self.quiet]

    def choose(
        self,
        scores: FloatArray,
        unscored: NDArray[np.bool_],
        exploration: float,
        rng: np.random.Generator,
    ) -> ChosenHours:
        """:func:`~serving.scoring.send_time.choose` for every row (exploration draws last)."""
        allowed = self.allowed
        ranked = np.where(allowed, scores, -np.inf)
        ranked[unscored] = np.where(allowed[unscored], 0.0, -np.inf)  # the first allowed hour
        best = ranked.argmax(axis=1)
        k = allowed.sum(axis=1)
        chosen = best.copy()
        can = (k > 1) if exploration > 0 else np.zeros(len(k), dtype=bool)
        if can.any():
            explore = np.zeros(len(k), dtype=bool)
            explore[can] = rng.random(int(can.sum())) < exploration
            if explore.any():
                nth = rng.integers(0, k[explore])
                running = allowed[explore].cumsum(axis=1)
                chosen[explore] = (running > nth[:, None]).argmax(axis=1)
        eps = np.where(k > 1, exploration, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            propensity = (1 - eps) * (chosen == best) + eps / np.maximum(k, 1)
        return ChosenHours(chosen, propensity, self.quiet)


def profile_scores(
    hours: HourGrid, block: FeatureBlock, who: IntArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Without a send-time model: the open-time profile ranks hours; flat profiles are unscored."""
    by_hour = block.profile(OPEN_HOURS, who, 1 / 24)
    by_day = block.profile(OPEN_DAYS, who, 1 / 7)
    rows = np.arange(len(who))[:, None]
    scores = by_hour[rows, hours.local_hour] * by_day[rows, hours.local_weekday]
    first = scores[:, :1]
    # np.allclose(scores, scores[0]) of each row, over the hours of its window.
    close = (np.abs(scores - first) <= 1e-8 + 1e-5 * np.abs(first)) | ~hours.valid
    flat = close.all(axis=1) | (hours.sizes == 0)
    return np.where(hours.valid, scores, -np.inf), flat
