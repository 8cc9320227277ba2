"""The decision endpoint's fast lane: a well-formed ``POST /v1/decisions`` skips the framework.

Under load, the framework's work around one decision — exception middleware, exit stacks,
route matching, dependency solving, request objects — cost about as much CPU as the
decision's own feature read and models. :class:`DecisionFastLane` is a pure ASGI middleware
inside the metrics middleware: it reads the body of ``POST /v1/decisions``, checks the key
(scope ``decide``) and validates the body from its bytes, hands the request to the
coalescer and writes the answer itself.

Anything else is passed on unchanged, with the body it read replayed: another path or
method, another content type, a missing or wrong key, a body that does not validate, and a
decision that raises (an unknown experiment, variants that are not its arms). The standard
FastAPI route then answers, so every error (401, 403, 404, 422 naming the field) is the one
the rest of the API gives, and the OpenAPI document describes the route as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.auth import authenticate
from serving.schemas import DecisionRequest, DecisionResponse

__all__ = ["DECISIONS_PATH", "DecisionFastLane"]

DECISIONS_PATH = "/v1/decisions"
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class _Template:
    """What the metrics middleware reads of ``scope["route"]``: the route's path template."""

    path: str


class _Replay:
    """A ``receive`` that gives back the messages already read, then reads on."""

    __slots__ = ("_messages", "_receive")

    def __init__(self, messages: list[Message], receive: Receive) -> None:
        self._messages = messages
        self._receive = receive

    async def __call__(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        return await self._receive()


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole request body (``None`` if the client left first) and the messages read."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == "application/json"


class DecisionFastLane:
    """Decides well-formed ``POST /v1/decisions`` requests without the framework's routing.

    Parameters
    ----------
    app
        The application (and middleware) inside; it answers everything this lane passes on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route = _Template(DECISIONS_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DECISIONS_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        payload = None if body is None else await self._decide(scope, body)
        if payload is None:
            await self.app(scope, _Replay(messages, receive), send)
            return
        scope["route"] = self._route
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _decide(self, scope: Scope, body: bytes) -> bytes | None:
        """The answer's JSON, or ``None`` when the standard route must answer."""
        resources = scope.get("state", {}).get("resources")
        headers = Headers(scope=scope)
        if resources is None or resources.coalescer is None:
            return None
        if not _is_json(headers.get("content-type")):
            return None
        try:
            authenticate(headers.get("authorization"), "decide", resources.keys)
            request = DecisionRequest.model_validate_json(body)
        except (HTTPException, ValidationError):
            return None
        try:
            decision: DecisionResponse = await resources.coalescer.decide(request)
        except Exception:  # the route decides again and answers with its error
            return None
        return decision.model_dump_json().encode()
