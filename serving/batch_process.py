"""Batch decisions in processes of their own, away from the event loop of single decisions.

A batch is Python work from its parse to its last line: deciding 100,000 requests holds the
GIL for seconds, in slices the event loop of the same worker has to wait for. So single
decisions answered by that worker waited 20-50 ms (p90-p99) while a batch streamed, and two
batches handed to the same worker shared one core.

With ``decisions.batch_processes`` above 0, a batch body of at least
``decisions.batch_process_min_bytes`` is decided by a batch process. The process is forked
from a server process that has already imported the serving modules (multiprocessing's
``forkserver``), so it starts without importing them again. It:

1. lowers its scheduling priority (``decisions.batch_process_nice``), so that single
   decisions get the cores first;
2. for each batch it is given, parses and checks the body
   (:func:`~serving.batch.parse_batch_held`, :meth:`~serving.batch.BatchDecider.check`);
3. opens its decision store, online features and champion models from the settings for its
   first batch, and keeps them for the next ones (loading champions whose alias moved);
4. decides and stores the batch chunk by chunk (:meth:`~serving.batch.BatchDecider.lines`),
   sending each chunk's NDJSON back through a pipe once its chunk is committed.

The worker relays the bytes and holds nothing of the batch but the body it received. The
errors are the in-process path's: a 422 naming the field, a 404 for an unknown experiment and
a 422 for variants that are not its arms, all before the first line.

A worker keeps at most ``decisions.batch_processes`` batch processes, each deciding one batch
at a time; later batches wait for one. A process idle for
``decisions.batch_process_idle_seconds`` exits. A client that leaves stops its batch after the
chunk being written (which stays stored, as in process); a process that does not stop, or
fails, is ended and replaced by a new one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from anyio import CancelScope, to_thread
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from inboxlab.errors import InvalidInputError, NotFoundError, StoreError

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext

    from inboxlab.settings import Settings
    from serving.decide import DecisionEngine
    from serving.schemas import DecisionRequest

__all__ = ["IDLE_SECONDS", "BatchProcesses", "EngineFactory", "engine_from_settings"]

logger = logging.getLogger(__name__)

#: Builds the engine a batch process decides with, in that process (a module-level function:
#: it is pickled by name).
EngineFactory = Callable[["Settings"], "DecisionEngine"]

#: By default, a batch process waits this long for its next batch, then exits (and frees its
#: memory); ``decisions.batch_process_idle_seconds`` sets it for the API.
IDLE_SECONDS = 600.0
#: What the worker sends before a batch's body, and to stop a batch whose client left.
_BATCH = ("batch",)
_STOP = ("stop",)
#: Longest wait for a stopped batch to finish the chunk it is writing.
_STOP_SECONDS = 60.0

#: Imported once by the fork server, so that each batch process starts with them loaded.
_PRELOAD = [
    "serving.batch_process",
    "serving.app",
    "serving.batch",
    "features.store",
    "mlflow.sklearn",
]
_context: ForkServerContext | None = None
_context_lock = threading.Lock()


def _fork_context() -> ForkServerContext:
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            _context = ctx
        return _context


def engine_from_settings(settings: Settings) -> DecisionEngine:
    """The engine ``inboxlab serve`` decides with: stores, features and champions of
    ``settings`` (no group-commit writer: a batch writes its chunks itself)."""
    import numpy as np

    from serving.app import open_features
    from serving.decide import DecisionEngine
    from serving.scoring.models import ModelSet
    from serving.store import DecisionStore
    from serving.store.experiments import ExperimentStore

    store = DecisionStore(settings.decision_store_url)
    models = ModelSet(settings)
    models.refresh()
    return DecisionEngine(
        settings,
        store,
        ExperimentStore(store.engine),
        open_features(settings),
        models,
        np.random.default_rng(),
    )


def _serve_batches(
    factory: EngineFactory, settings: Settings, conn: Connection, idle_seconds: float
) -> None:
    """A batch process: decide the batches it is sent, one at a time, until idle too long."""
    # Behind the workers for the cores: a batch can wait a few milliseconds, a render cannot.
    os.nice(settings.decisions.batch_process_nice)
    engine: DecisionEngine | None = None
    try:
        while conn.poll(idle_seconds):
            if conn.recv() != _BATCH:  # a stop that came after its batch had ended
                continue
            engine = _serve_one(factory, settings, conn, engine)
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the worker is gone
        pass
    finally:
        if engine is not None:
            engine.close()
            engine.store.close()
        conn.close()


def _serve_one(
    factory: EngineFactory, settings: Settings, conn: Connection, engine: DecisionEngine | None
) -> DecisionEngine | None:
    """Receive one batch, answer its verdict and stream its lines; the engine to keep."""
    from serving.batch import BATCH_CHUNK, BatchDecider, parse_batch_held

    raw = conn.recv_bytes()
    try:
        body, release = parse_batch_held(raw)
    except ValidationError as exc:  # refused before the stores and models are opened
        errors = [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False)
        ]
        conn.send(("invalid", errors))
        return engine
    del raw
    try:
        if engine is None:
            engine = factory(settings)
        else:
            engine.models.refresh()  # a champion's alias may have moved since the last batch
        decider = BatchDecider(engine, chunk_size=BATCH_CHUNK)
        verdict = _check(decider, body.decisions)
        conn.send(verdict)
        if verdict[0] == "ok":
            _stream(decider.lines(body.decisions), conn)
    finally:
        release()
    return engine


def _check(decider: Any, requests: Sequence[DecisionRequest]) -> tuple[Any, ...]:
    try:
        decider.check(requests)
    except NotFoundError as exc:
        return ("not_found", str(exc), None)
    except InvalidInputError as exc:
        return ("invalid_input", str(exc), exc.field)
    return ("ok",)


def _stream(lines: Any, conn: Connection) -> None:
    """Send each chunk's lines, then an empty message; stop early when the worker asks."""
    try:
        for chunk in lines:
            if conn.poll() and conn.recv() == _STOP:
                break
            conn.send_bytes(chunk)
    finally:
        lines.close()  # finishes the write under way
    conn.send_bytes(b"")


@dataclass(slots=True)
class _Process:
    """A batch process, from the worker's side."""

    process: Any  # multiprocessing.Process of the fork-server context
    conn: Connection
    idle_since: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        pid: int = self.process.pid
        return pid

    def reusable(self, idle_seconds: float) -> bool:
        # Well before its own idle limit, so that it cannot exit while a batch is on its way.
        idle = time.monotonic() - self.idle_since
        return self.process.is_alive() and idle < idle_seconds / 2


class BatchProcesses:
    """Decides batches in processes of their own (see the module docstring).

    Parameters
    ----------
    settings
        What each process opens (decision store, online features, model registry).
    processes
        Most batch processes of this worker (each decides one batch at a time).
    min_bytes
        Smallest body decided in a process; smaller batches are decided in the worker.
    factory
        Builds the engine in the process; by default :func:`engine_from_settings`.
    idle_seconds
        How long an idle process waits for its next batch before it exits.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        processes: int,
        min_bytes: int = 0,
        factory: EngineFactory = engine_from_settings,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.settings = settings
        self.min_bytes = min_bytes
        self.factory = factory
        self.idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(processes)
        self._idle: list[_Process] = []
        #: Process ids of the batch processes, deciding or idle.
        self.running: set[int] = set()

    def warm(self) -> None:
        """Start the fork server now (it imports the serving modules once), so that the first
        batch does not wait for it. Blocks; call it off the event loop."""
        from multiprocessing import forkserver

        _fork_context()
        forkserver.ensure_running()

    def close(self) -> None:
        """End the idle batch processes (one deciding a batch ends with its stream)."""
        while self._idle:
            self._end(self._idle.pop())

    async def decide(self, raw: bytes) -> AsyncIterator[bytes]:
        """Decide the batch ``raw`` in a batch process.

        Returns once the process has accepted the batch: the NDJSON lines then follow, a
        chunk at a time, each stored before it is sent.

        Raises
        ------
        RequestValidationError
            The body is not a valid batch (the 422 of the in-process path).
        NotFoundError, InvalidInputError
            An unknown experiment, or variants that are not its arms.
        StoreError
            The process failed before accepting the batch (its stores could not be opened).
        """
        await self._slots.acquire()
        try:
            proc = await to_thread.run_sync(self._send, raw)
            del raw
            try:
                verdict: tuple[Any, ...] = await to_thread.run_sync(proc.conn.recv)
            except (EOFError, OSError) as exc:
                code = await to_thread.run_sync(self._end, proc)
                raise StoreError(
                    f"the batch process ended before deciding (exit code {code})"
                ) from exc
            except BaseException:  # cancelled while it parses: it cannot be reused
                with CancelScope(shield=True):
                    await to_thread.run_sync(self._end, proc, 0.0)
                raise
        except BaseException:
            self._slots.release()
            raise
        if verdict[0] != "ok":
            self._done(proc)
            self._slots.release()
            _raise(verdict)
        return self._stream(proc)

    def _send(self, raw: bytes) -> _Process:
        proc = self._reuse() or self._start()
        try:
            proc.conn.send(_BATCH)
            proc.conn.send_bytes(raw)
        except OSError:  # it died first; reading its verdict says so
            logger.exception("cannot send the batch to its process")
        return proc

    def _reuse(self) -> _Process | None:
        # Runs in a worker thread beside other batches' sends: a pop is atomic, a check then
        # a pop is not.
        while True:
            try:
                proc = self._idle.pop()
            except IndexError:
                return None
            if proc.reusable(self.idle_seconds):
                return proc
            self._end(proc)

    def _start(self) -> _Process:
        ctx = _fork_context()
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_serve_batches,
            args=(self.factory, self.settings, child, self.idle_seconds),
            name="inboxlab-batch",
            daemon=True,
        )
        process.start()
        child.close()
        proc = _Process(process, parent)
        self.running.add(proc.pid)
        return proc

    async def _stream(self, proc: _Process) -> AsyncIterator[bytes]:
        finished = False
        try:
            while True:
                try:
                    chunk = await to_thread.run_sync(proc.conn.recv_bytes)
                except (EOFError, OSError):
                    code = await to_thread.run_sync(self._end, proc)
                    logger.error("the batch process ended mid-stream (exit code %s)", code)
                    return
                if not chunk:
                    finished = True
                    return
                yield chunk
        finally:
            try:
                if finished:
                    self._done(proc)
                elif not proc.conn.closed:  # the client left: stop the batch, keep the process
                    # Shielded: a client that disconnects cancels the stream's scope.
                    with CancelScope(shield=True):
                        if await to_thread.run_sync(self._stop_batch, proc):
                            self._done(proc)
                        else:
                            await to_thread.run_sync(self._end, proc, 0.0)
            finally:
                self._slots.release()

    def _done(self, proc: _Process) -> None:
        proc.idle_since = time.monotonic()
        self._idle.append(proc)

    @staticmethod
    def _stop_batch(proc: _Process) -> bool:
        """Ask the process to stop its batch and read what it still sends, up to the end."""
        try:
            proc.conn.send(_STOP)
            deadline = time.monotonic() + _STOP_SECONDS
            while proc.conn.poll(max(deadline - time.monotonic(), 0)):
                if not proc.conn.recv_bytes():
                    return True
        except (EOFError, OSError):
            pass
        return False

    def _end(self, proc: _Process, wait: float = 5.0) -> int | None:
        """End a process and return its exit code. An idle one exits once its pipe is closed,
        within ``wait`` seconds; a busy one (``wait=0``) is stopped at once."""
        proc.conn.close()
        process = proc.process
        process.join(timeout=wait)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        code: int | None = process.exitcode
        self.running.discard(proc.pid)
        process.close()
        return code


def _raise(verdict: tuple[Any, ...]) -> None:
    kind = verdict[0]
    if kind == "invalid":
        raise RequestValidationError(verdict[1])
    if kind == "not_found":
        raise NotFoundError(verdict[1])
    raise InvalidInputError(verdict[1], field=verdict[2])
