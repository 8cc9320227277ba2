from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from serving.hours import HourGrid
from serving.scoring.send_time import candidate_hours

START = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize("exploration", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("hours", "quiet"), [(24, (21, 8)), (3, (0, 24)), (1, (21, 8))])
def test_one_row_is_chosen_as_the_rows_path_chooses_it(
    exploration: float, hours: int, quiet: tuple[int, int]
) -> None:
    window = candidate_hours(START, START + timedelta(hours=hours), "Europe/Berlin", *quiet)
    grid = HourGrid([window])
    width = grid.valid.shape[1]
    for seed in range(200):
        scores = np.random.default_rng(seed).normal(size=(1, width))
        for unscored in (False, True):
            flags = np.array([unscored])
            one, many = np.random.default_rng(seed), np.random.default_rng(seed)
            got = grid.choose(scores, flags, exploration, one)
            want = grid._choose_rows(scores, flags, exploration, many)
            assert got.index.tolist() == want.index.tolist()
            assert got.propensity.tolist() == want.propensity.tolist()
            assert got.quiet.tolist() == want.quiet.tolist()
            assert one.random() == many.random()  # the same draws were taken
