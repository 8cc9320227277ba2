"""Training throughput: a point-in-time training set of ~1,000,000 labelled sends plus LightGBM.

Setup (not timed): simulate a history with about a million sends, import it, build the
feature tables. Timed, ``--rounds`` times each, in one process:

* ``training set``: :func:`training.dataset.build_training_set` for the engagement model
  (labelling in DuckDB + the point-in-time feature join);
* ``LightGBM``: fitting :func:`training.estimator.make_lightgbm` on every row;
* baselines measured in the same run, so the ratio holds on a loaded machine too: reading the
  same training set back from Parquet with pyarrow, and fitting the logistic baseline.

::

    .venv/bin/python benchmarks/bench_training.py                     # ~1M sends, 3 rounds
    .venv/bin/python benchmarks/bench_training.py --recipients 10000 --rounds 1

Prints medians and exits non-zero when training set + LightGBM misses the 3-minute budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.simulator import SimulationConfig
from inboxlab.settings import Settings
from training.dataset import TrainingSet, build_training_set
from training.estimator import make_baseline, make_lightgbm
from training.evaluation import prepare_world
from training.specs import ModelKind, spec_for

BUDGET_SECONDS = 180.0


def _timed(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _xy(data: TrainingSet, label: str) -> tuple[pd.DataFrame, np.ndarray]:
    x = data.frame[[*data.categorical, *data.numeric]].copy()
    x[list(data.numeric)] = x[list(data.numeric)].astype("float64")
    for c in data.categorical:
        x[c] = x[c].astype("string").fillna("missing").astype(object)
    return x, data.frame[label].to_numpy(dtype=int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 100,000 recipients × 35 days ≈ 12 campaigns × 90% audience, less the censored last one:
    # about 1.0M labelled sends.
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    spec = spec_for(ModelKind.ENGAGEMENT)
    with tempfile.TemporaryDirectory(prefix="inboxlab-bench-training-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        start = time.perf_counter()
        prepare_world(
            settings, SimulationConfig(recipients=args.recipients, days=args.days, seed=7)
        )
        print(f"setup (simulate, import, features): {time.perf_counter() - start:.1f} s")

        t_set, data = _timed(lambda: build_training_set(settings, spec), args.rounds)
        x, y = _xy(data, spec.label)
        cols = [*data.categorical, *data.numeric]
        t_lgbm, _ = _timed(
            lambda: make_lightgbm(data.numeric, data.categorical).fit(x, y), args.rounds
        )
        t_base, _ = _timed(lambda: make_baseline(data.numeric, data.categorical).fit(x, y), 1)
        path = Path(tmp) / "training_set.parquet"
        data.frame[[*cols, spec.label]].to_parquet(path)
        t_read, _ = _timed(lambda: pq.read_table(path), args.rounds)

    total = t_set + t_lgbm
    print(f"labelled sends:            {len(x):,} ({int(y.sum()):,} clicks, {len(cols)} features)")
    print(f"training set (median):     {t_set:7.2f} s")
    print(f"LightGBM fit (median):     {t_lgbm:7.2f} s")
    print(f"total:                     {total:7.2f} s (budget {BUDGET_SECONDS:.0f} s)")
    print(
        f"logistic baseline fit:     {t_base:7.2f} s (LightGBM / logistic = {t_lgbm / t_base:.2f})"
    )
    print(
        f"pyarrow read of the set:   {t_read:7.2f} s (training set / read = {t_set / t_read:.0f})"
    )
    return 0 if total < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
