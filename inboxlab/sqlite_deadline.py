"""Deadlines for SQLite statements, enforced by SQLite on the thread that runs them.

Inside :class:`statement_deadline`, a connection entered with :class:`watched` calls back
every :data:`CHECK_EVERY` steps of SQLite's virtual machine, and once the deadline has passed
SQLite stops the statement: the call raises ``sqlite3.OperationalError: interrupted``. With a
time budget, the render path bounds its reads of a SQLite decision store and a SQLite online
store this way, on its own thread: handing the read to a pool thread and waiting for it, the
other way to bound a read, costs a thread wake-up each way (0.13-0.34 ms a decision on a
2-core machine, ``benchmarks/bench_budget.py``).

The check runs Python: it takes the GIL while SQLite holds the connection's mutex. So it is
installed only while a thread with a deadline uses the connection, never for the decision
writer's or a batch's long writes (each check would wait for the GIL behind the deciding
thread), and only a connection that one thread uses at a time may be watched: a second
thread calling into the same connection with the GIL held would wait for that mutex forever.
So the SQLite decision store and the SQLite online store read on a connection per thread
(:mod:`inboxlab.sqlite_threads`).
SQLite counts its own work only: a statement blocked in a system call (a disk that does not
answer) is stopped when the call returns.

Examples
--------
>>> import sqlite3, time
>>> conn = sqlite3.connect(":memory:")
>>> endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
>>> with statement_deadline(time.monotonic() + 0.05), watched(conn):
...     conn.execute(endless).fetchone()
Traceback (most recent call last):
...
sqlite3.OperationalError: interrupted
>>> with watched(conn):  # no deadline on this thread: nothing installed, unbounded
...     conn.execute("SELECT 1").fetchone()
(1,)
"""

from __future__ import annotations

import sqlite3
import threading
import time

__all__ = ["CHECK_EVERY", "current_deadline", "deadline_active", "statement_deadline", "watched"]

#: Virtual-machine steps between two checks: tens of microseconds of SQLite's work, so a
#: statement overruns its deadline by about that much; each check costs ~0.2 µs.
CHECK_EVERY = 1000

_local = threading.local()


def current_deadline() -> float | None:
    """The ``time.monotonic()`` deadline of the :class:`statement_deadline` this thread is
    inside, if any.

    Stores other than SQLite read it to bound their own waits the same way (the Redis online
    store sets its socket reads' timeouts from it).
    """
    at: float | None = getattr(_local, "deadline", None)
    return at


def deadline_active() -> bool:
    """Whether this thread is inside a :class:`statement_deadline`."""
    return current_deadline() is not None


def _expired() -> bool:
    at: float | None = getattr(_local, "deadline", None)
    return at is not None and time.monotonic() >= at


class watched:  # noqa: N801 - used as a function: ``with watched(conn):``
    """While this thread is inside a :class:`statement_deadline`, let SQLite stop ``conn``'s
    statements there; outside one, nothing is installed. ``conn`` must be used by this thread
    alone while entered (see the module)."""

    __slots__ = ("_conn", "_on")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._on = False

    def __enter__(self) -> sqlite3.Connection:
        if deadline_active():
            self._conn.set_progress_handler(_expired, CHECK_EVERY)
            self._on = True
        return self._conn

    def __exit__(self, *_: object) -> None:
        if self._on:
            self._conn.set_progress_handler(None, CHECK_EVERY)
            self._on = False


class statement_deadline:  # noqa: N801 - used as a function: ``with statement_deadline(at):``
    """Stop this thread's statements on watched connections at ``time.monotonic() >= at``
    (the earlier deadline wins when nested). A class rather than a generator: entered for
    each read of every decision, it costs a fraction of ``contextlib.contextmanager``'s
    set-up."""

    __slots__ = ("_at", "_previous")

    def __init__(self, at: float) -> None:
        self._at = at
        self._previous: float | None = None

    def __enter__(self) -> None:
        previous: float | None = getattr(_local, "deadline", None)
        self._previous = previous
        _local.deadline = self._at if previous is None else min(self._at, previous)

    def __exit__(self, *_: object) -> None:
        _local.deadline = self._previous
