"""One small simulated world shared by the simulator tests (built once per session)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.simulator import SimulationConfig, SimulationResult, simulate

#: Small but with enough randomized-hour campaigns for the hour-profile checks.
SMALL = SimulationConfig(recipients=4_000, days=56, seed=11, randomized_hour_share=0.4)


@pytest.fixture(scope="session")
def small_sim() -> SimulationResult:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def small_events(small_sim: SimulationResult) -> pd.DataFrame:
    events: pd.DataFrame = small_sim.events.to_pandas()
    return events


@pytest.fixture(scope="session")
def small_recipients(small_sim: SimulationResult) -> pd.DataFrame:
    table: pd.DataFrame = small_sim.truth.recipients_table().to_pandas()
    return table.set_index("recipient_id")
