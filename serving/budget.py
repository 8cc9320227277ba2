"""The render path's time budget for reads that may be slow (feature store, decision store).

With a budget (``decisions.budget_ms``, 50 ms by default), a read that can stop itself at a
deadline runs inline, on the caller's thread, and is interrupted there once the deadline
passes: statements on SQLite connections it enters with
:class:`inboxlab.sqlite_deadline.watched`, as the SQLite decision store and the SQLite online
store do, and the Redis online store's reads, whose socket waits end at the deadline
(:func:`inboxlab.sqlite_deadline.current_deadline`). Any other read (PostgreSQL) runs on a
small pool of threads and the caller waits at most until the deadline; a read still
running then is abandoned (its thread finishes it and drops the result). Either way the
caller then takes its documented fallback.
Without a budget (``budget_ms = 0``) every read runs inline, unbounded.

Examples
--------
>>> guard = ReadGuard(budget_ms=50)
>>> deadline = guard.deadline()
>>> guard.result(guard.start(lambda: 42), deadline)
42
>>> import time
>>> slow = guard.start(lambda: time.sleep(0.2))
>>> guard.result(slow, guard.deadline())
Traceback (most recent call last):
...
serving.budget.BudgetExceededError: the read took longer than the 50 ms budget
>>> import sqlite3
>>> from inboxlab.sqlite_deadline import watched
>>> conn = sqlite3.connect(":memory:")
>>> endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
>>> def endless_read():
...     with watched(conn):
...         return conn.execute(endless).fetchone()
>>> deadline = guard.deadline()
>>> read = guard.start(endless_read, deadline, interruptible=True)
>>> guard.result(read, deadline)
Traceback (most recent call last):
...
serving.budget.BudgetExceededError: the read took longer than the 50 ms budget
>>> guard.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from inboxlab.sqlite_deadline import statement_deadline

__all__ = ["BudgetExceededError", "Pending", "ReadGuard"]

T = TypeVar("T")


class BudgetExceededError(TimeoutError):
    """A read did not finish within the render budget."""


class Pending(Generic[T]):
    """A read started by :meth:`ReadGuard.start`: a future, or the value when run inline."""

    __slots__ = ("_error", "_future", "_value")

    def __init__(
        self,
        future: Future[T] | None = None,
        value: T | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._future = future
        self._value = value
        self._error = error


class ReadGuard:
    """Runs reads within ``budget_ms`` milliseconds of a deadline (``0``: inline, unbounded).

    Parameters
    ----------
    budget_ms : float
        Time a render-path decision may spend reading before it falls back.
    threads : int, optional
        Reads that may run at once; further reads queue (and count against their budget).
    """

    def __init__(self, budget_ms: float, *, threads: int = 4) -> None:
        if budget_ms < 0:
            raise ValueError(f"budget_ms must be >= 0, got {budget_ms}")
        self.budget = budget_ms / 1e3
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="render-read") if budget_ms else None
        )

    def deadline(self) -> float:
        """The ``time.monotonic()`` by which reads started now must finish."""
        return time.monotonic() + self.budget

    def start(
        self,
        read: Callable[[], T],
        deadline: float | None = None,
        *,
        interruptible: bool = False,
    ) -> Pending[T]:
        """Start ``read``; collect it with :meth:`result`.

        Without a budget ``read`` runs inline. With one it runs on the pool, unless it is
        ``interruptible`` (its statements run on watched SQLite connections) and given
        its ``deadline``: it then runs inline, interrupted at the deadline, and a failure
        once the deadline has passed is reported as :class:`BudgetExceededError`.
        """
        if self._pool is None:
            try:
                return Pending(value=read())
            except Exception as exc:  # re-raised by result(), like a future's
                return Pending(error=exc)
        if interruptible and deadline is not None:
            try:
                with statement_deadline(deadline):
                    return Pending(value=read())
            except Exception as exc:
                if time.monotonic() < deadline:
                    return Pending(error=exc)
                return Pending(error=self._exceeded(exc))
        return Pending(future=self._pool.submit(read))

    def result(self, pending: Pending[T], deadline: float) -> T:
        """The value of a started read, waiting at most until ``deadline``.

        Raises
        ------
        BudgetExceededError
            The read is still running at the deadline.
        Exception
            Whatever the read raised.
        """
        if pending._future is None:
            if pending._error is not None:
                raise pending._error
            return pending._value  # type: ignore[return-value]
        try:
            return pending._future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            pending._future.cancel()
            raise self._exceeded(None) from None

    def _exceeded(self, cause: BaseException | None) -> BudgetExceededError:
        error = BudgetExceededError(
            f"the read took longer than the {self.budget * 1e3:.0f} ms budget"
        )
        error.__cause__ = cause
        return error

    def close(self) -> None:
        """Stop the threads (reads still running finish first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
