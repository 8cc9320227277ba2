"""The latency floors of ``bench_decisions.py``: two echoes of the decision JSON with less
than FastAPI around them.

``asgi_echo``
    a pure ASGI app that answers ``POST /v1/decisions`` with its body: uvicorn without a
    framework. Run: ``uvicorn --app-dir benchmarks floor_app:asgi_echo --port 8101``.
``python benchmarks/floor_app.py --port 8102``
    an asyncio protocol on uvloop, HTTP/1.1 keep-alive parsed by httptools (uvicorn's own
    parser), answering every request with its body: the loopback, the event loop and the
    parser alone, without ASGI.

Both answer ``GET`` with ``{}`` (``bench_decisions.serve`` waits for a 200).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httptools
import uvloop

_EMPTY = b"{}"


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The request body, unchanged (``{}`` for a request without one)."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks) or _EMPTY
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


class _Echo(asyncio.Protocol):
    """One connection: every complete request is answered with its body."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def on_body(self, body: bytes) -> None:  # httptools callback
        self._body.append(body)

    def on_message_complete(self) -> None:  # httptools callback
        body = b"".join(self._body) or _EMPTY
        self._body = []
        if self._transport is not None:
            self._transport.write(_response(body))


async def _serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Echo, host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
