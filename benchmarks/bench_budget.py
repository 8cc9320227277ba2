"""What bounding a render-path read costs: inline, inline with a deadline, or on a thread pool.

A decision reads two stores (online features, recipient state). With ``decisions.budget_ms``
set, each read must stop or be abandoned at the deadline. ``serving.budget.ReadGuard`` does
this in one of two ways: a SQLite read runs on the caller's thread and SQLite interrupts it
(``inboxlab.sqlite_deadline``), any other read runs on a pool thread that the caller waits for
with a timeout. This script times two indexed point reads of a SQLite file per "decision",
as the render path makes them, each way, back to back and at a steady pace (a sleep between
decisions, as at 200 requests/s: the pool's threads are then asleep when a read arrives).

    .venv/bin/python benchmarks/bench_budget.py [--reads 3000] [--pace-ms 5]

Prints medians in microseconds and the ratio of each way to the unbounded inline read.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from inboxlab.sqlite_deadline import watched
from serving.budget import ReadGuard

ROWS = 100_000


def _database(folder: Path) -> Path:
    path = folder / "reads.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, b"x" * 200) for i in range(ROWS)))
    return path


def _time(decide: Callable[[int], object], reads: int, pace: float) -> float:
    """Median microseconds of ``decide`` over ``reads`` calls, ``pace`` seconds apart."""
    took = []
    for i in range(reads):
        started = time.perf_counter()
        decide(i)
        took.append(time.perf_counter() - started)
        if pace:
            time.sleep(pace)
    return statistics.median(took) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--pace-ms", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = _database(Path(folder))
        # The inline ways read on a connection of this thread's own, entered with
        # ``watched`` per read as the decision store does; the pool's threads share one
        # connection, never watched (see inboxlab.sqlite_deadline).
        own = sqlite3.connect(path)
        shared = sqlite3.connect(path, check_same_thread=False)
        unbounded, bounded = ReadGuard(0), ReadGuard(500)

        def read(conn: sqlite3.Connection, i: int) -> object:
            return conn.execute("SELECT v FROM t WHERE k = ?", ((i * 7919) % ROWS,)).fetchone()

        def read_watched(i: int) -> object:
            with watched(own):
                return read(own, i)

        def way(guard: ReadGuard, inline: bool) -> Callable[[int], object]:
            def one(i: int) -> object:
                return read_watched(i) if inline else read(shared, i)

            def decide(i: int) -> object:
                deadline = guard.deadline()
                first = guard.start(lambda: one(i), deadline, interruptible=inline)
                second = guard.start(lambda: one(i + 1), deadline, interruptible=inline)
                return guard.result(first, deadline), guard.result(second, deadline)

            return decide

        ways = {
            "inline, unbounded (budget 0)": way(unbounded, True),
            "inline, SQLite stops it at the deadline": way(bounded, True),
            "thread pool, caller waits with a timeout": way(bounded, False),
        }
        print(f"two point reads per decision, {args.reads} decisions, median µs (ratio)")
        for pace in (0.0, args.pace_ms / 1e3):
            label = f"{args.pace_ms:g} ms apart" if pace else "back to back"
            medians = {name: _time(decide, args.reads, pace) for name, decide in ways.items()}
            base = medians["inline, unbounded (budget 0)"]
            for name, median in medians.items():
                print(f"  {label:>14}  {name:<42} {median:8.1f}  ({median / base:.2f}×)")
        bounded.close()
        own.close()
        shared.close()


if __name__ == "__main__":
    main()
