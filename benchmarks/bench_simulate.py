"""Benchmark of ``features.simulator.simulate``: 100,000 recipients × 90 days against 10,000 × 90.

Two ways to run it::

    .venv/bin/python -m pytest benchmarks/bench_simulate.py --benchmark-only
    /usr/bin/time -v .venv/bin/python benchmarks/bench_simulate.py

The script form runs each size in a fresh child process so that every size reports its own
peak resident memory, prints medians and the large/small ratio, and exits non-zero when the
large run misses its 60-second budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from features.simulator import SimulationConfig, simulate

BASELINE = SimulationConfig(recipients=10_000, days=90, seed=7)
TARGET = SimulationConfig(recipients=100_000, days=90, seed=7)
BUDGET_SECONDS = 60.0


def test_simulate_10k_recipients_90_days(benchmark: Any) -> None:
    result = benchmark.pedantic(simulate, args=(BASELINE,), rounds=5, iterations=1)
    assert result.events.num_rows > 0


def test_simulate_100k_recipients_90_days(benchmark: Any) -> None:
    result = benchmark.pedantic(simulate, args=(TARGET,), rounds=3, iterations=1)
    assert result.events.num_rows > 0
    assert benchmark.stats.stats.median < BUDGET_SECONDS


def _one(recipients: int, rounds: int) -> dict[str, Any]:
    cfg = SimulationConfig(recipients=recipients, days=90, seed=7)
    seconds = []
    rows = 0
    for _ in range(rounds):
        began = time.perf_counter()
        rows = simulate(cfg).events.num_rows
        seconds.append(time.perf_counter() - began)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "recipients": recipients,
        "rounds": rounds,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "events": rows,
        "peak_rss_mib": peak_kib / 1024,
    }


def _child(recipients: int, rounds: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", str(recipients), str(rounds)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, type=int, metavar=("RECIPIENTS", "ROUNDS"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (default 3)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one)))
        return 0
    small = _child(BASELINE.recipients, args.rounds + 2)
    large = _child(TARGET.recipients, args.rounds)
    for r in (small, large):
        print(
            f"{r['recipients']:>7,} recipients x 90 days: median {r['median_s']:.2f} s "
            f"(min {r['min_s']:.2f} s, {r['rounds']} rounds), {r['events']:,} events, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB"
        )
    within = large["median_s"] < BUDGET_SECONDS
    print(
        f"ratio 100k/10k: time {large['median_s'] / small['median_s']:.1f}x, "
        f"memory {large['peak_rss_mib'] / small['peak_rss_mib']:.1f}x; "
        f"budget {BUDGET_SECONDS:.0f} s -> {'ok' if within else 'MISSED'}"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
