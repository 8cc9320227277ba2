"""A SQLite connection per thread, for statements a deadline may stop.

:mod:`inboxlab.sqlite_deadline` may watch a connection only while one thread uses it, so the
stores the render path reads with a deadline (the SQLite decision store, the SQLite online
store) give every thread a connection of its own. :class:`ConnectionPerThread` opens it at the
thread's first use and keeps it for the thread's life. The connection of a thread that has
ended is closed when the next thread opens one, so they never outnumber the live threads.

Examples
--------
>>> conns = ConnectionPerThread(lambda: sqlite3.connect(":memory:", check_same_thread=False))
>>> mine = conns.get()
>>> mine is conns.get()
True
>>> import threading
>>> other = threading.Thread(target=conns.get)
>>> other.start(); other.join()
>>> len(conns.by_thread())
2
>>> conns.close(reopen=False)
>>> conns.get()
Traceback (most recent call last):
...
sqlite3.ProgrammingError: the connections are closed
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

__all__ = ["ConnectionPerThread"]


class ConnectionPerThread:
    """One connection per thread, opened by ``connect`` at the thread's first :meth:`get`.

    ``connect`` must return a connection made with ``check_same_thread=False``: it is used by
    its thread alone, but closed by :meth:`close` or by a later thread once its own has ended.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, sqlite3.Connection] = {}
        self._generation = 0
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation:
            return conn
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the connections are closed")
            for ended in [t for t in self._open if not t.is_alive()]:
                self._open.pop(ended).close()
            conn = self._connect()
            self._open[threading.current_thread()] = conn
            local.conn, local.generation = conn, self._generation
        return conn

    def by_thread(self) -> dict[threading.Thread, sqlite3.Connection]:
        """The connections open now, by the thread that opened each."""
        with self._lock:
            return dict(self._open)

    def close(self, *, reopen: bool = True) -> None:
        """Close every connection; a later :meth:`get` opens a new one, or fails without
        ``reopen``."""
        with self._lock:
            self._generation += 1
            self._closed = not reopen
            opened, self._open = self._open, {}
        for conn in opened.values():
            conn.close()
