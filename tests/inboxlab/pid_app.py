"""A minimal ASGI app for the worker tests: answers every request with its process id, and
fails its startup when ``INBOXLAB_TEST_FAIL_STARTUP`` is set."""

from __future__ import annotations

import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("INBOXLAB_TEST_FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed", "message": "planted"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
