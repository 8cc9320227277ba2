from __future__ import annotations

from pathlib import Path

import numpy as np

from features.simulator import (
    EmailEnvironment,
    GroundTruth,
    SimulationConfig,
    SimulationResult,
    simulate,
)

TINY = SimulationConfig(recipients=600, days=21, seed=3)


def test_same_seed_gives_identical_events_and_truth() -> None:
    first, second = simulate(TINY), simulate(TINY)
    assert first.events.equals(second.events)
    assert first.truth.recipients_table().equals(second.truth.recipients_table())
    assert first.truth.variant_rates_table().equals(second.truth.variant_rates_table())
    assert first.truth.campaigns.equals(second.truth.campaigns)


def test_different_seed_gives_different_world() -> None:
    other = SimulationConfig(recipients=600, days=21, seed=4)
    first, second = simulate(TINY), simulate(other)
    assert not first.events.equals(second.events)
    assert not first.truth.recipients_table().equals(second.truth.recipients_table())
    # Ids carry a digest of the config, so two worlds can share one event log.
    ids = set(first.events.column("event_id").to_pylist())
    assert ids.isdisjoint(second.events.column("event_id").to_pylist())


def test_progress_reports_days_up_to_the_total() -> None:
    seen: list[tuple[int, int]] = []
    simulate(TINY, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (21, 21)
    assert all(total == 21 for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_truth_round_trips_through_files(small_sim: SimulationResult, tmp_path: Path) -> None:
    truth = small_sim.truth
    truth.save(tmp_path, include_hour_matrix=True)
    assert {p.name for p in tmp_path.iterdir()} == {
        "params.json",
        "recipients.parquet",
        "variant_rates.parquet",
        "campaigns.parquet",
        "open_probability_by_hour_of_week.npy",
    }
    loaded = GroundTruth.load(tmp_path)
    assert loaded.config == truth.config
    assert loaded.recipients_table().equals(truth.recipients_table())
    assert loaded.variant_rates_table().equals(truth.variant_rates_table())
    assert loaded.campaigns.equals(truth.campaigns)
    matrix = np.load(tmp_path / "open_probability_by_hour_of_week.npy")
    np.testing.assert_array_equal(matrix, loaded.open_probability_by_hour_of_week())
    ids = ["r0000001", "r0000002"]
    when = np.array(["2026-03-10T09:00"], dtype="datetime64[us]").repeat(2)
    np.testing.assert_allclose(
        EmailEnvironment(loaded, np.random.default_rng(0)).expected_open_rate(ids, when),
        EmailEnvironment(truth, np.random.default_rng(0)).expected_open_rate(ids, when),
    )
