"""A constant-rate HTTP/1.1 load generator on loopback (open loop, keep-alive connections).

Requests are scheduled at ``start + i / rate`` whatever the server does, so a slow answer does
not hide the requests that queue behind it (coordinated omission): ``scheduled`` latency runs
from the planned start, ``service`` latency from the moment the bytes were written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateResult", "run_constant_rate"]


@dataclass(frozen=True, slots=True)
class RateResult:
    """Latencies in seconds, one per request, and the status codes seen."""

    scheduled: list[float]
    service: list[float]
    statuses: dict[int, int]
    elapsed: float


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _run(
    host: str, port: int, rate: float, count: int, make: Callable[[int], bytes], connections: int
) -> RateResult:
    # time.perf_counter, not loop.time(): uvloop's clock has millisecond steps and is read
    # once per loop iteration, which rounded every latency to a whole millisecond.
    clock = time.perf_counter
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    scheduled: list[float] = []
    service: list[float] = []
    statuses: dict[int, int] = {}
    start = clock() + 0.2
    for i in range(count):
        queue.put_nowait((start + i / rate, make(i)))
    for _ in range(connections):
        queue.put_nowait(None)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                planned, payload = item
                delay = planned - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = clock()
                writer.write(payload)
                status = await _read_response(reader)
                done = clock()
                scheduled.append(done - planned)
                service.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return RateResult(scheduled, service, statuses, time.perf_counter() - began)


def run_constant_rate(
    host: str,
    port: int,
    *,
    rate: float,
    seconds: float,
    make: Callable[[int], bytes],
    connections: int = 16,
) -> RateResult:
    """Send ``rate`` requests per second for ``seconds``; ``make(i)`` gives request ``i``."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    return runner(_run(host, port, rate, int(rate * seconds), make, connections))
