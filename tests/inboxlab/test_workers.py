from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from inboxlab.cli.workers import (
    STARTUP_FAILURE,
    BalancedWorkers,
    balanced_workers_supported,
    bind_shared_port,
)
from inboxlab.errors import ConfigurationError

pytestmark = pytest.mark.skipif(
    not balanced_workers_supported(), reason="SO_REUSEPORT spreads connections on Linux only"
)

APP = "tests.inboxlab.pid_app:app"


def config() -> dict[str, object]:
    return {"app": APP, "host": "127.0.0.1", "port": 0, "log_level": "warning", "lifespan": "on"}


@contextmanager
def running(workers: int) -> Iterator[tuple[BalancedWorkers, list[int]]]:
    """The workers serving in a thread; yields them and the result list of ``run``."""
    server = BalancedWorkers(config(), workers, poll_s=0.1, grace_s=10)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(server.run()), daemon=True)
    thread.start()
    try:
        yield server, result
    finally:
        server.stop()
        thread.join(60)
        assert not thread.is_alive()


def pids_answering(port: int, calls: int, timeout: float = 60) -> set[int]:
    """Process ids answering ``calls`` requests, each on a new connection."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while len(seen) < calls:
        try:
            seen.append(int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text))
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return set(seen)


def wait_port(server: BalancedWorkers) -> int:
    deadline = time.monotonic() + 30
    while server.port is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return server.port


def test_each_worker_takes_connections_on_a_socket_of_its_own() -> None:
    with running(2) as (server, result):
        port = wait_port(server)
        pids = pids_answering(port, 40)
        # 40 connections on two sockets chosen by a hash: all on one has odds of 2**-39
        assert len(pids) == 2
    assert result == [0]
    for pid in pids:  # stopped and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_that_dies_is_replaced() -> None:
    with running(2) as (server, _):
        port = wait_port(server)
        before = pids_answering(port, 20)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        after: set[int] = set()
        while len(after) < 2 or victim in after:
            assert time.monotonic() < deadline, after
            after = pids_answering(port, 20)
        assert len(after - before) == 1


def test_an_app_that_cannot_start_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXLAB_TEST_FAIL_STARTUP", "1")
    server = BalancedWorkers(config(), 2, poll_s=0.1, grace_s=10)
    assert server.run() == STARTUP_FAILURE


def test_a_port_taken_by_another_program_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_shared_port("127.0.0.1", port)
        server = BalancedWorkers({**config(), "port": port}, 2)
        with pytest.raises(ConfigurationError, match="cannot listen"):
            server.run()


def test_the_app_must_be_an_import_string() -> None:
    with pytest.raises(ConfigurationError, match="import string"):
        BalancedWorkers({**config(), "app": object()}, 2).run()
