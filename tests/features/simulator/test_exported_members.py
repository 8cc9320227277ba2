from __future__ import annotations

import features.simulator as simulator


def test_public_names_are_exported_and_sorted() -> None:
    assert sorted(simulator.__all__) == simulator.__all__
    for name in simulator.__all__:
        assert hasattr(simulator, name)
    assert {"SimulationConfig", "simulate", "GroundTruth", "EmailEnvironment"} <= set(
        simulator.__all__
    )
