"""Several uvicorn workers on one port, each accepting on a listening socket of its own.

uvicorn's ``--workers`` binds one socket in the parent, and every worker accepts from its one
queue. Linux hands a new connection to whichever worker reaches ``accept`` first, and a worker
that is already serving wins that race: its event loop is awake, while an idle worker must
first be woken. Measured with ``benchmarks/bench_batch.py`` (a 1,000,000-recipient audience
sent as two calls at a time to two workers), both calls sat on the same worker for two thirds
of the run, which used 68.6 s of CPU against 17.4 s for the other, held to one core by its
GIL while the second core idled.

Here each worker binds its own socket with ``SO_REUSEPORT`` and the kernel places each new
connection on one of them by a hash of its addresses and ports, whatever the workers are
doing. The parent keeps a socket bound to the port without listening on it: the port is
checked (and ``0`` resolved) before any worker starts, and stays reserved while workers are
replaced. A worker that dies is started again; one that fails at startup stops the server,
as uvicorn's supervisor does.

Linux only: elsewhere ``SO_REUSEPORT`` does not spread connections, and ``inboxlab serve``
keeps uvicorn's shared socket (:func:`balanced_workers_supported`).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from inboxlab.errors import ConfigurationError

__all__ = ["BalancedWorkers", "balanced_workers_supported", "bind_shared_port"]

logger = logging.getLogger(__name__)

#: uvicorn's exit code for a worker whose app failed to start (``uvicorn.config``).
STARTUP_FAILURE = 3


def balanced_workers_supported() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_shared_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet).

    Raises :class:`~inboxlab.errors.ConfigurationError` naming the address when it cannot be
    bound (in use by another program, or not an address of this machine).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _serve(config: dict[str, Any]) -> None:
    """A worker: its own socket on the shared port, then uvicorn's server on it."""
    import uvicorn

    settings = uvicorn.Config(**config)
    sock = bind_shared_port(settings.host, settings.port)
    uvicorn.Server(settings).run(sockets=[sock])


@dataclass
class BalancedWorkers:
    """``workers`` uvicorn servers of ``config`` (``uvicorn.Config`` keyword arguments, which
    must name the app by its import string), each on its own socket of one port."""

    config: dict[str, Any]
    workers: int
    #: How often the parent checks its workers, in seconds.
    poll_s: float = 0.5
    #: How long a stopping worker may take to finish its requests before it is killed.
    grace_s: float = 30.0
    #: The port served (``0`` in ``config`` resolved), known once :meth:`run` has bound it.
    port: int | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def stop(self) -> None:
        """Ask :meth:`run` to stop its workers and return (safe from any thread)."""
        self._stop.set()

    def run(self) -> int:
        """Serve until :meth:`stop`, SIGINT or SIGTERM; the exit code (0, or
        :data:`STARTUP_FAILURE` when a worker's app could not start)."""
        if not isinstance(self.config.get("app"), str):
            raise ConfigurationError("workers need the app as an import string, e.g. 'pkg:app'")
        if self.workers < 1:
            raise ConfigurationError(f"workers must be >= 1, got {self.workers}")
        reserved = bind_shared_port(self.config.get("host", "127.0.0.1"), self.config["port"])
        config = {**self.config, "port": reserved.getsockname()[1]}
        self.port = config["port"]
        context = multiprocessing.get_context("spawn")
        previous = self._handle_signals()
        processes: list[BaseProcess] = []
        code = 0
        try:
            processes = [self._start(context, config) for _ in range(self.workers)]
            logger.info("%d workers on port %d, one socket each", self.workers, self.port)
            while not self._stop.wait(self.poll_s):
                code = self._replace_dead(processes, context, config)
                if code:
                    break
        finally:
            self._shut_down(processes)
            reserved.close()
            if previous is not None:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        return code

    def _start(self, context: Any, config: dict[str, Any]) -> BaseProcess:
        process: BaseProcess = context.Process(target=_serve, args=(config,), daemon=False)
        process.start()
        return process

    def _replace_dead(
        self, processes: list[BaseProcess], context: Any, config: dict[str, Any]
    ) -> int:
        for i, process in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker %s failed to start; stopping the server", process.pid)
                return STARTUP_FAILURE
            logger.warning("worker %s exited (%s); starting another", process.pid, process.exitcode)
            processes[i] = self._start(context, config)
        return 0

    def _shut_down(self, processes: list[BaseProcess]) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests under way
        for process in processes:
            process.join(self.grace_s)
            if process.is_alive():
                logger.warning("worker %s outlived %.0f s; killed", process.pid, self.grace_s)
                process.kill()
                process.join()

    def _handle_signals(self) -> dict[int, Any] | None:
        if threading.current_thread() is not threading.main_thread():
            return None  # only the main thread may set handlers; stop() still works
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: self._stop.set())
        return previous
