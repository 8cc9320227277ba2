"""Bearer-key authentication for the HTTP API: 401 without a valid key, 403 without the scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from serving.keys import ApiKey, InvalidKeyError, KeyRing, MissingScopeError, Scope

__all__ = [
    "AdminKey",
    "AnyKey",
    "DecideKey",
    "OutcomesKey",
    "authenticate",
    "require_scope",
]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers=_CHALLENGE)


def authenticate(header: str | None, scope: Scope | None, keys: KeyRing) -> ApiKey:
    """The caller's key from the ``Authorization`` header's value, checked for ``scope``.

    Raises a 401 ``HTTPException`` without a valid key and a 403 without the scope.
    Verification is a dictionary look-up for a known key; an unknown key costs one indexed
    read, once per ``KeyRing.cache_seconds``.
    """
    if header is None:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _unauthorized(
            f"Authorization scheme must be 'Bearer <key>', got {scheme or 'nothing'!r}"
        )
    try:
        return keys.verify(credentials.strip(), scope)
    except InvalidKeyError as exc:
        raise _unauthorized(str(exc)) from exc
    except MissingScopeError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc


def require_scope(
    scope: Scope | None, keys: Callable[[Request], KeyRing]
) -> Callable[[Request], Awaitable[ApiKey]]:
    """A FastAPI dependency that returns the caller's key, checked for ``scope``.

    ``scope=None`` accepts any valid key. ``keys`` finds the key ring of the running app.
    """

    # async: a sync dependency would hop through the thread pool.
    async def dependency(request: Request) -> ApiKey:
        return authenticate(request.headers.get("authorization"), scope, keys(request))

    return dependency


def _request_keys(request: Request) -> KeyRing:
    # The key ring the app's lifespan opened (``Resources.keys``).
    keys: KeyRing = request.state.resources.keys
    return keys


#: The caller's key, required to hold the named scope (``AnyKey``: any valid key).
DecideKey = Annotated[ApiKey, Depends(require_scope("decide", _request_keys))]
OutcomesKey = Annotated[ApiKey, Depends(require_scope("outcomes", _request_keys))]
AdminKey = Annotated[ApiKey, Depends(require_scope("admin", _request_keys))]
AnyKey = Annotated[ApiKey, Depends(require_scope(None, _request_keys))]
