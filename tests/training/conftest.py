from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def synthetic_sends(
    n: int = 60_000, days: int = 60, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Labelled sends whose true click probability is known."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "sent_at": start + pd.to_timedelta(np.sort(rng.integers(0, days * 86400, n)), "s"),
            "recency": rng.exponential(10, n),
            "score": rng.normal(size=n),
            "variant_id": rng.choice(["v0", "v1", "v2"], n),
        }
    )
    logit = (
        -2.5 + 0.9 * frame["score"] - 0.05 * frame["recency"] + 0.6 * (frame["variant_id"] == "v1")
    )
    p = 1 / (1 + np.exp(-logit.to_numpy()))
    frame["clicked"] = (rng.random(n) < p).astype(int)
    return frame, p


@pytest.fixture(scope="session")
def sends() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_sends()
