"""Bandit and decision-store benchmark: what Thompson sampling costs per request and per update.

Run as a script::

    .venv/bin/python benchmarks/bench_bandit.py [--arms 4] [--draws 20000] [--requests 200000]

Measured in one run, each against a baseline:

* allocation recompute (Monte Carlo over joint Beta draws, floor applied) against the bare
  ``Generator.beta`` call that produces the draws;
* one request's weighted draw with its propensity (:meth:`Allocation.draw`) against one bare
  ``Generator.random()`` call, and against classic per-request Thompson sampling (draw every
  arm's Beta and take the argmax), which cannot log a propensity;
* storing one decision and one outcome in the SQLite decision store (WAL) against a bare
  ``sqlite3`` insert of a row of the same width in WAL mode.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from inboxlab.records import Action, DecisionRecord, EventKind, EventRecord
from serving.bandit import ArmCounts, BanditConfig, ThompsonSampler, best_arm_probabilities
from serving.store import DecisionStore


def per_call(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` batches of ``calls`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def bench_allocation(arms: int, draws: int) -> list[tuple[str, float, str, float]]:
    rng = np.random.default_rng()
    names = tuple(f"v{i}" for i in range(arms))
    config = BanditConfig(arms=names, n_draws=draws, floor=0.01)
    counts = {n: ArmCounts(50 + 5 * i, 1_000) for i, n in enumerate(names)}
    alpha = np.array([1 + c.successes for c in counts.values()])
    beta = np.array([1 + c.trials - c.successes for c in counts.values()])
    sampler = ThompsonSampler(config, rng=rng)
    version = iter(range(10**9))
    recompute = per_call(lambda: sampler.allocation(counts, version=next(version)), 20)
    mc_only = per_call(lambda: best_arm_probabilities(alpha, beta, n_draws=draws, rng=rng), 20)
    bare = per_call(lambda: rng.beta(alpha, beta, size=(draws, arms)), 20)
    return [
        (
            f"allocation recompute ({arms} arms, {draws:,} draws)",
            recompute,
            "Generator.beta draws",
            bare,
        ),
        ("  of which Monte Carlo best-arm probabilities", mc_only, "Generator.beta draws", bare),
    ]


def bench_draw(arms: int, draws: int, requests: int) -> list[tuple[str, float, str, float]]:
    rng = np.random.default_rng()
    names = tuple(f"v{i}" for i in range(arms))
    sampler = ThompsonSampler(BanditConfig(arms=names, n_draws=draws), rng=rng)
    counts = {n: ArmCounts(50 + 5 * i, 1_000) for i, n in enumerate(names)}
    allocation = sampler.allocation(counts)
    alpha = np.array([1 + c.successes for c in counts.values()])
    beta = np.array([1 + c.trials - c.successes for c in counts.values()])
    cached = per_call(lambda: sampler.allocation(counts, version=0) and None, requests // 10)
    draw = per_call(lambda: allocation.draw(rng), requests)
    bare = per_call(rng.random, requests)
    classic = per_call(lambda: int(np.argmax(rng.beta(alpha, beta))), requests)
    return [
        ("per-request draw + propensity", draw, "Generator.random()", bare),
        ("classic per-request Thompson draw (no propensity)", classic, "Generator.random()", bare),
        ("cached allocation lookup (same version)", cached, "Generator.random()", bare),
    ]


def bench_store(rows: int) -> list[tuple[str, float, str, float]]:
    folder = Path(tempfile.mkdtemp())
    store = DecisionStore(f"sqlite:///{folder / 'decisions.db'}")
    store.create_schema()
    now = datetime.now(UTC)
    counter = iter(range(10**9))

    def record() -> None:
        i = next(counter)
        store.record_decision(
            DecisionRecord(
                decision_id=f"d-{i}",
                recipient_id=f"r-{i % 5000}",
                campaign_id="c-1",
                experiment_id="exp-1",
                decided_at=now,
                action=Action.SEND,
                variant_id=f"v{i % 4}",
                variant_propensity=0.25,
                send_at=now + timedelta(hours=3),
                send_time_propensity=0.9,
                scores={"p_open": 0.3, "p_click": 0.05, "p_convert": 0.01},
                model_versions={"engagement": "3", "send_time": "2"},
                policy="bandit",
            ),
            features={"opens_30d": 3, "clicks_30d": 1},
        )

    outcome_ids = iter(range(10**9))

    def outcome() -> None:
        i = next(outcome_ids)
        store.record_outcomes(
            [
                EventRecord(
                    recipient_id=f"r-{i % 5000}",
                    kind=EventKind.CLICK,
                    occurred_at=now + timedelta(minutes=5),
                    decision_id=f"d-{i}",
                )
            ]
        )

    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(
        "CREATE TABLE t (id TEXT PRIMARY KEY, " + ", ".join(f"c{i} TEXT" for i in range(15)) + ")"
    )
    raw_ids = iter(range(10**9))
    values = ["x" * 20] * 15

    def bare() -> None:
        with raw:
            raw.execute("BEGIN")
            raw.execute(f"INSERT INTO t VALUES (?{', ?' * 15})", [str(next(raw_ids)), *values])

    decision = per_call(record, rows, repeats=3)
    outcome_time = per_call(outcome, rows, repeats=3)
    baseline = per_call(bare, rows, repeats=3)
    store.close()
    raw.close()
    return [
        ("store one decision (+ arm trial upsert)", decision, "bare sqlite3 insert", baseline),
        (
            "store one outcome (+ dedup, reward upsert)",
            outcome_time,
            "bare sqlite3 insert",
            baseline,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--store-rows", type=int, default=2_000)
    args = parser.parse_args()
    results = [
        *bench_allocation(args.arms, args.draws),
        *bench_allocation(args.arms, 100_000),
        *bench_draw(args.arms, args.draws, args.requests),
        *bench_store(args.store_rows),
    ]
    print("| operation | time per call | baseline (same run) | baseline time | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, seconds, base_name, base in results:
        print(
            f"| {name} | {seconds * 1e6:,.1f} µs | {base_name} | {base * 1e6:,.2f} µs "
            f"| {seconds / base:,.1f}× |"
        )


if __name__ == "__main__":
    main()
