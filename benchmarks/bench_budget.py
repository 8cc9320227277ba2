"""What bounding a render-path read costs: inline, inline with a deadline, or on a thread pool.

A decision reads two stores (online features, recipient state). With ``decisions.budget_ms``
set, each read must stop or be abandoned at the deadline. ``serving.budget.ReadGuard`` does
this in one of two ways: a SQLite read runs on the caller's thread and SQLite interrupts it
(``inboxlab.sqlite_deadline``), any other read runs on a pool thread that the caller waits for
with a timeout. This script times two indexed point reads of a SQLite file per "decision",
as the render path makes them, each way, back to back and at a steady pace (a sleep between
decisions, as at 200 requests/s: the pool's threads are then asleep when a read arrives).

    .venv/bin/python benchmarks/bench_budget.py [--reads 3000] [--pace-ms 5]
        [--redis redis://127.0.0.1:6379/15]

With ``--redis``, the same for the Redis online store's client, whose reads end their socket
waits at the deadline on the caller's thread (``features.online_redis``).

Prints medians in microseconds and the ratio of each way to the unbounded inline read.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from inboxlab.sqlite_deadline import watched
from serving.budget import ReadGuard

ROWS = 100_000
#: The way every other is compared with.
BASE = "inline, unbounded (budget 0)"


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


def _ways(
    bounded: ReadGuard,
    unbounded: ReadGuard,
    inline: Callable[[int], object],
    pooled: Callable[[int], object],
    stops: str,
) -> dict[str, Callable[[int], object]]:
    """A decision of two reads each way: ``inline`` reads on the caller's thread, ``pooled``
    on a pool thread; ``stops`` says how the inline read ends at the deadline."""

    def way(guard: ReadGuard, on_caller: bool) -> Callable[[int], object]:
        one = inline if on_caller else pooled

        def decide(i: int) -> object:
            deadline = guard.deadline()
            first = guard.start(lambda: one(i), deadline, interruptible=on_caller)
            second = guard.start(lambda: one(i + 1), deadline, interruptible=on_caller)
            return guard.result(first, deadline), guard.result(second, deadline)

        return decide

    return {
        BASE: way(unbounded, True),
        f"inline, {stops}": way(bounded, True),
        "thread pool, caller waits with a timeout": way(bounded, False),
    }


def _report(
    title: str, ways: dict[str, Callable[[int], object]], reads: int, pace_ms: float
) -> None:
    print(f"{title}, {reads} decisions, median µs (ratio)")
    for pace in (0.0, pace_ms / 1e3):
        label = f"{pace_ms:g} ms apart" if pace else "back to back"
        medians = {name: _time(decide, reads, pace) for name, decide in ways.items()}
        for name, median in medians.items():
            print(f"  {label:>14}  {name:<48} {median:8.1f}  ({median / medians[BASE]:.2f}×)")


def _redis_ways(
    url: str, bounded: ReadGuard, unbounded: ReadGuard
) -> tuple[dict[str, Callable[[int], object]], Callable[[], None]]:
    """The ways over the Redis online store's client: one recipient's ``HMGET`` per read (a
    project nothing was materialized under, a new recipient each read: never cached)."""
    from features.online_redis import RedisFeatureClient
    from inboxlab.settings import Settings, StoreSettings

    settings = Settings(stores=StoreSettings(online="redis", redis_url=url))
    client = RedisFeatureClient(settings, project=f"bench-{uuid.uuid4().hex[:8]}")
    count = itertools.count()

    def read(_: int) -> object:
        return client.get_many([f"r{next(count)}"])

    ways = _ways(bounded, unbounded, read, read, "socket waits end at the deadline")
    return ways, client.close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--pace-ms", type=float, default=5.0)
    parser.add_argument("--redis", default=None, help="also the Redis online store at this URL")
    args = parser.parse_args()
    unbounded, bounded = ReadGuard(0), ReadGuard(500)
    with tempfile.TemporaryDirectory() as folder:
        path = _database(Path(folder))
        # The inline ways read on a connection of this thread's own, entered with
        # ``watched`` per read as the decision store does; the pool's threads share one
        # connection, never watched (see inboxlab.sqlite_deadline).
        own = sqlite3.connect(path)
        shared = sqlite3.connect(path, check_same_thread=False)

        def read(conn: sqlite3.Connection, i: int) -> object:
            return conn.execute("SELECT v FROM t WHERE k = ?", ((i * 7919) % ROWS,)).fetchone()

        def read_watched(i: int) -> object:
            with watched(own):
                return read(own, i)

        ways = _ways(
            bounded,
            unbounded,
            read_watched,
            lambda i: read(shared, i),
            "SQLite stops it at the deadline",
        )
        _report("two SQLite point reads per decision", ways, args.reads, args.pace_ms)
        own.close()
        shared.close()
    if args.redis:
        ways, close = _redis_ways(args.redis, bounded, unbounded)
        _report("two Redis online-store reads per decision", ways, args.reads, args.pace_ms)
        close()
    bounded.close()


if __name__ == "__main__":
    main()
