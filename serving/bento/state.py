"""Lifespan state for a FastAPI app mounted inside another ASGI server's app.

Starlette gives requests the state a lifespan yields (``request.state``) only when it runs the
lifespan itself, as uvicorn does. BentoML 1.4 runs a mounted app's lifespan through
``app.router.lifespan_context(app)`` and drops what it yields, so every endpoint that reads
``request.state.resources`` would fail. :class:`LifespanState` keeps the yielded state and
copies it into each request's scope, which works the same under uvicorn and under BentoML.

Examples
--------
>>> from contextlib import asynccontextmanager
>>> from fastapi import FastAPI, Request
>>> from fastapi.testclient import TestClient
>>> @asynccontextmanager
... async def lifespan(_app):
...     yield {"greeting": "hello"}
>>> app = FastAPI(lifespan=lifespan)
>>> @app.get("/")
... def read(request: Request) -> str:
...     return str(request.state.greeting)
>>> carried = LifespanState(app)
>>> with TestClient(app) as client:
...     client.get("/").json(), carried.get("greeting")
('hello', 'hello')
>>> carried.get("greeting") is None
True
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LifespanState"]


class LifespanState:
    """Carries what ``app``'s lifespan yields into every request of ``app``.

    Wraps ``app.router.lifespan_context`` and adds an ASGI middleware; call it once, before
    the app starts.

    Parameters
    ----------
    app : fastapi.FastAPI
        An app whose lifespan yields a mapping (or nothing).
    """

    def __init__(self, app: FastAPI) -> None:
        self._state: dict[str, Any] = {}
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(running: Any) -> AsyncIterator[Any]:
            async with inner(running) as state:
                self._state.update(state or {})
                try:
                    yield state
                finally:
                    self._state.clear()

        app.router.lifespan_context = lifespan
        app.add_middleware(_InjectState, state=self._state)

    def get(self, name: str) -> Any:
        """The value the lifespan yielded under ``name``; ``None`` outside the lifespan."""
        return self._state.get(name)


class _InjectState:
    """Adds the lifespan's state to the scope of each HTTP and WebSocket request."""

    def __init__(self, app: ASGIApp, state: Mapping[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.state and scope["type"] in ("http", "websocket"):
            # A new scope and state dict: the host's per-request state is left untouched.
            scope = {**scope, "state": {**scope.get("state", {}), **self.state}}
        await self.app(scope, receive, send)
