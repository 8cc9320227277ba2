"""Group commit of decisions: a queue that one writer thread drains in batches.

The render path hands its decision to :meth:`DecisionWriter.submit` and answers at once; the
writer thread commits whatever has queued in one transaction (one multi-row insert and one
counter update per bandit arm and day, :meth:`DecisionStore.record_decisions`). Under load the
batches grow by themselves; at a low rate every decision is committed alone, without waiting
for company.

Durability window
-----------------
An answered decision is committed once the writer has waited ``linger`` (default 5 ms) for
company and the transaction ahead of it has ended: typically within a few milliseconds, at
most ``linger`` plus the duration of one batch transaction later. The wait is what makes
batches form at moderate rates: a commit costs far more than a row, so one per decision
would spend most of the writer's time in commits. Decisions still in
the queue when the process is killed with ``SIGKILL`` (or the machine loses power) are lost;
a normal shutdown (``SIGTERM``, the app's lifespan) calls :meth:`DecisionWriter.close`, which
commits everything queued first. Outcomes are not queued: ``/v1/outcomes`` and erasure call
:meth:`DecisionWriter.flush` before they read decisions, so a reward always finds its
decision, and their own writes stay synchronous and durable.

Within one process, queued but uncommitted sends still count for frequency caps and fatigue
(:meth:`DecisionWriter.pending_sends`); another worker process sees them once committed.

A batch that fails is retried decision by decision, so one bad row (a duplicate id) cannot
take its neighbours with it; a row that still fails is logged with its decision id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from inboxlab.records import Action, DecisionRecord
from serving.store.decisions import DecisionStore

__all__ = ["DecisionWriter"]

logger = logging.getLogger(__name__)

Item = tuple[DecisionRecord, Mapping[str, Any] | None]


class DecisionWriter:
    """Commits submitted decisions in batches on a background thread.

    Parameters
    ----------
    store : DecisionStore
        Where decisions are written.
    max_batch : int, optional
        Most decisions in one transaction.
    max_queued : int, optional
        Bound of the queue; :meth:`submit` waits for room beyond it (back-pressure rather
        than unbounded memory when the store is slower than the arrivals).
    linger : float, optional
        Seconds the writer waits, once a decision is queued, for more to share its commit
        (``0``: commit at once). A full batch is written without waiting.

    Examples
    --------
    >>> import tempfile
    >>> store = DecisionStore(f"sqlite:///{tempfile.mkdtemp()}/d.db")
    >>> store.create_schema()
    >>> writer = DecisionWriter(store)
    >>> writer.flush()
    >>> writer.close()
    >>> store.close()
    """

    def __init__(
        self,
        store: DecisionStore,
        *,
        max_batch: int = 2_000,
        max_queued: int = 100_000,
        linger: float = 0.005,
    ) -> None:
        if max_batch < 1 or max_queued < max_batch:
            raise ValueError(
                f"need 1 <= max_batch <= max_queued, got max_batch={max_batch}, "
                f"max_queued={max_queued}"
            )
        if linger < 0:
            raise ValueError(f"linger must be >= 0, got {linger}")
        self._linger = linger
        self._store = store
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        # recipient -> {decision_id: send time} of queued sends, for the eligibility rules.
        self._sends: dict[str, dict[str, datetime]] = {}
        self._submitted = 0
        self._done = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Decisions submitted and not yet written."""
        with self._cond:
            return self._submitted - self._done

    def submit(self, items: Iterable[Item]) -> None:
        """Queue decisions for the next commit."""
        batch = list(items)
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the decision writer is closed")
            while self._submitted - self._done + len(batch) > self._max_queued and self._queue:
                self._cond.wait()
            self._queue.extend(batch)
            self._submitted += len(batch)
            for record, _ in batch:
                if record.action is Action.SEND:
                    at = record.send_at or record.decided_at
                    self._sends.setdefault(record.recipient_id, {})[record.decision_id] = at
            self._cond.notify_all()

    def pending_sends(self, recipient_ids: Iterable[str]) -> dict[str, dict[str, datetime]]:
        """``{recipient: {decision_id: send time}}`` of queued sends not yet committed."""
        with self._cond:
            if not self._sends:
                return {}
            return {rid: dict(s) for rid in recipient_ids if (s := self._sends.get(rid))}

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is written.

        Raises
        ------
        TimeoutError
            When ``timeout`` seconds pass first.
        """
        with self._cond:
            target = self._submitted
            if not self._cond.wait_for(lambda: self._done >= target, timeout):
                raise TimeoutError(
                    f"{target - self._done} decisions still queued after {timeout} s"
                )

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return
                wait = self._linger and not self._closed and len(self._queue) < self._max_batch
            if wait:
                # Sleeping rather than waiting on the condition: submits arriving meanwhile
                # do not wake the thread one by one.
                time.sleep(self._linger)
            with self._cond:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._write(batch)
            with self._cond:
                self._done += len(batch)
                for record, _ in batch:
                    sends = self._sends.get(record.recipient_id)
                    if sends is not None:
                        sends.pop(record.decision_id, None)
                        if not sends:
                            del self._sends[record.recipient_id]
                self._cond.notify_all()

    def _write(self, batch: Sequence[Item]) -> None:
        try:
            self._store.record_decisions(batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                logger.error("decision %s not stored: %s", batch[0][0].decision_id, exc)
                return
            logger.warning("batch of %d decisions failed (%s); writing one by one", len(batch), exc)
        for item in batch:
            try:
                self._store.record_decisions([item])
            except Exception as exc:  # the answer is out; log what could not be kept
                logger.error("decision %s not stored: %s", item[0].decision_id, exc)
