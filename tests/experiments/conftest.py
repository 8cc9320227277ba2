"""Unit-level experiment tables written to temporary Parquet/CSV files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def make_units(
    rates: Mapping[str, float],
    n: int,
    *,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    guardrail_rate: float = 0.002,
) -> pd.DataFrame:
    """A fixed-weight A/B table: arm, click, unsubscribe, revenue, tier and a timestamp."""
    rng = np.random.default_rng(seed)
    arms = list(rates)
    w = np.array([(weights or {}).get(a, 1.0) for a in arms])
    arm = rng.choice(arms, size=n, p=w / w.sum())
    p = pd.Series(arm).map(rates).to_numpy()
    click = (rng.random(n) < p).astype(np.int8)
    revenue = np.where(rng.random(n) < 0.02, rng.lognormal(3.0, 1.0, n), 0.0)
    return pd.DataFrame(
        {
            "arm": arm,
            "click": click,
            "unsubscribe": (rng.random(n) < guardrail_rate).astype(np.int8),
            "revenue": revenue,
            "tier": rng.choice(["high", "mid", "low"], size=n, p=[0.2, 0.3, 0.5]),
            "timestamp": pd.Timestamp("2026-03-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
        }
    )


@pytest.fixture
def write_table(tmp_path: Path) -> Callable[..., Path]:
    """Write a DataFrame to ``tmp_path`` as Parquet (default) or CSV and return the path."""

    def write(df: pd.DataFrame, name: str = "units.parquet") -> Path:
        path = tmp_path / name
        if name.endswith(".csv"):
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        return path

    return write


@pytest.fixture
def units() -> Callable[..., pd.DataFrame]:
    """The :func:`make_units` factory."""
    return make_units
