"""Group commit of render-path decisions on SQLite: random (v4) against time-ordered (v7) ids.

Run from the project root::

    .venv/bin/python benchmarks/bench_decision_ids.py                  # 20,000 rows stored first
    .venv/bin/python benchmarks/bench_decision_ids.py --stored 500000

Two stores are filled alike (``--stored`` decisions with 109 features each, random recipients
out of a million), one with ``uuid4`` ids and one with :func:`serving.ids.new_decision_ids`.
Then each round writes ``--groups`` groups of ``--group`` decisions per store through
:meth:`DecisionStore.record_decisions`, the call the render path's writer thread makes, with
ids of the store's kind; the stores alternate within each round. Reported: the median CPU and
wall microseconds per decision over the rounds, and their ratio.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from inboxlab.records import Action, DecisionRecord
from serving.ids import new_decision_ids
from serving.store import DecisionStore

FEATURES = [f"feature_{i:03d}" for i in range(109)]
KINDS: dict[str, Callable[[int], list[str]]] = {
    "v4": lambda n: [uuid.uuid4().hex for _ in range(n)],
    "v7": new_decision_ids,
}


def _group(ids: list[str], rng: random.Random) -> list[tuple[DecisionRecord, dict[str, Any]]]:
    now = datetime.now(UTC)
    return [
        (
            DecisionRecord(
                decision_id=decision_id,
                recipient_id=f"r{rng.randrange(1_000_000):07d}",
                campaign_id="bench",
                experiment_id="bench-4arm",
                decided_at=now,
                action=Action.SEND,
                variant_id=rng.choice("abcd"),
                variant_propensity=0.25,
                send_at=now + timedelta(hours=3),
                send_time_propensity=0.9,
                scores={"p_open": 0.2, "p_click": 0.03, "p_convert": 0.01},
                model_versions={"engagement": "3", "send-time": "2", "propensity": "1"},
                policy="bandit",
            ),
            {name: round(rng.random(), 6) for name in FEATURES},
        )
        for decision_id in ids
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=20_000)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ids-"))
    rng = random.Random(0)
    try:
        stores = {kind: DecisionStore(f"sqlite:///{scratch / kind}.db") for kind in KINDS}
        for kind, store in stores.items():
            store.create_schema()
            for start in range(0, args.stored, 5_000):
                n = min(5_000, args.stored - start)
                store.record_decisions(_group(KINDS[kind](n), rng))
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for kind, store in stores.items():
                groups = [
                    _group(KINDS[kind](args.group), rng) for _ in range(args.groups)
                ]  # built before the clocks start
                c, w = time.process_time(), time.perf_counter()
                for group in groups:
                    store.record_decisions(group)
                n = args.groups * args.group
                cpu[kind].append((time.process_time() - c) / n * 1e6)
                wall[kind].append((time.perf_counter() - w) / n * 1e6)
        for store in stores.values():
            store.engine.dispose()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.stored:,} decisions stored first, groups of {args.group}, {args.rounds} rounds")
    print("| ids | CPU µs per decision (median) | wall µs per decision (median) |")
    print("|---|---:|---:|")
    for kind in KINDS:
        print(
            f"| {kind} | {statistics.median(cpu[kind]):.1f} | {statistics.median(wall[kind]):.1f} |"
        )
    print(
        f"| v7 / v4 | {statistics.median(cpu['v7']) / statistics.median(cpu['v4']):.2f} | "
        f"{statistics.median(wall['v7']) / statistics.median(wall['v4']):.2f} |"
    )


if __name__ == "__main__":
    main()
