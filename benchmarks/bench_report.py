"""Benchmark: experiment reports on large unit-level exports.

Targets (issue 6): a report for 10 arms over 10,000,000 rows in under 10 s, and
``inboxlab report --data`` on a 5,000,000-row file in under 15 s. Data is generated into a
temporary directory first (not timed); each timed run is the whole path of the command:
aggregate in DuckDB, analyse, render HTML with plots.

Run::

    /usr/bin/time -v .venv/bin/python benchmarks/bench_report.py
    .venv/bin/python benchmarks/bench_report.py --rows 1000000 --csv-rows 500000 --repeat 3

The baseline is the same sufficient statistics computed with pandas (read + groupby), to show
what the SQL aggregation buys; ``--no-baseline`` skips it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from experiments.exports import analyze_file
from experiments.report import to_html


def make_table(rows: int, arms: int, seed: int) -> pa.Table:
    """Decision rows with outcomes: arm, click, unsubscribe, revenue, tier, pscore, timestamp."""
    rng = np.random.default_rng(seed)
    names = [f"arm-{i:02d}" for i in range(arms)]
    arm = rng.integers(0, arms, rows).astype(np.int32)
    rate = 0.05 + 0.002 * np.arange(arms)
    click = (rng.random(rows) < rate[arm]).astype(np.int8)
    unsub = (rng.random(rows) < 0.002).astype(np.int8)
    buys = rng.random(rows) < 0.01
    revenue = np.zeros(rows)
    revenue[buys] = rng.lognormal(3.0, 1.0, int(buys.sum()))
    tier = rng.integers(0, 4, rows).astype(np.int32)
    start = np.datetime64("2026-03-01T00:00:00", "s").astype(np.int64)
    ts = start + np.sort(rng.integers(0, 14 * 86400, rows))
    return pa.table(
        {
            "arm": pa.DictionaryArray.from_arrays(pa.array(arm), pa.array(names)),
            "click": click,
            "unsubscribe": unsub,
            "revenue": revenue,
            "tier": pa.DictionaryArray.from_arrays(
                pa.array(tier), pa.array(["high", "mid", "low", "new"])
            ),
            "pscore": np.full(rows, 1.0 / arms),
            "timestamp": pa.array(ts, type=pa.timestamp("s", tz="UTC")),
        }
    )


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(path: Path) -> None:
    result = analyze_file(path, control="arm-00", metrics=["click", "revenue"], segments=["tier"])
    to_html(result)


def pandas_baseline(path: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    df["revenue_sq"] = df["revenue"] ** 2
    df.groupby("arm", observed=True).agg(
        n=("click", "size"),
        click=("click", "sum"),
        unsub=("unsubscribe", "sum"),
        revenue=("revenue", "sum"),
        revenue_sq=("revenue_sq", "sum"),
    )
    df.groupby(["tier", "arm"], observed=True)["click"].agg(["size", "sum"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--csv-rows", type=int, default=5_000_000)
    parser.add_argument("--arms", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "units.parquet"
        csv = Path(tmp) / "units.csv"
        t0 = time.perf_counter()
        pq.write_table(make_table(args.rows, args.arms, seed=1), big)
        table = make_table(args.csv_rows, args.arms, seed=2)
        pacsv.write_csv(
            table.cast(
                pa.schema(
                    [
                        pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
                        for f in table.schema
                    ]
                )
            ),
            csv,
        )
        del table
        print(f"generated data in {time.perf_counter() - t0:.1f} s")

        for label, path, budget in (
            (f"report, {args.arms} arms, {args.rows:,} rows (Parquet)", big, 10.0),
            (f"report --data, {args.csv_rows:,} rows (CSV)", csv, 15.0),
        ):
            runs = timed(lambda p=path: report(p), args.repeat)
            med = statistics.median(runs)
            line = (
                f"{label}: median {med:.2f} s over {len(runs)} runs "
                f"(min {min(runs):.2f}, max {max(runs):.2f}); budget {budget:.0f} s, "
                f"ratio to budget {med / budget:.2f}"
            )
            if not args.no_baseline:
                base = statistics.median(timed(lambda p=path: pandas_baseline(p), 1))
                line += f"; pandas aggregation alone {base:.2f} s (ratio {med / base:.2f})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
