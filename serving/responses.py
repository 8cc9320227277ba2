"""Error bodies of the HTTP API, as the OpenAPI document describes them.

Every error answers ``{"detail": "..."}``; an invalid request (422) also lists each invalid
field in ``errors``. FastAPI would otherwise document its own 422 body (``detail`` as a list),
which the API does not send, so clients generated from the document could not read the
errors. :func:`documented` gives a route's ``responses`` for the statuses it can answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "FieldError", "documented"]


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Where: `body.recipient_id`, `body.send_window.end`, …")
    message: str
    type: str = Field(description="The validation error's kind, e.g. `missing`.")


class ErrorBody(BaseModel):
    """What every error answers."""

    detail: str = Field(description="What went wrong, naming the field or resource.")
    errors: list[FieldError] | None = Field(
        default=None, description="Each invalid field (422 on an invalid request only)."
    )


_MEANING = {
    400: "The body could not be read as JSON text (for example, it is not UTF-8).",
    401: "No valid API key (`Authorization: Bearer <key>`).",
    403: "The key lacks the scope this endpoint needs.",
    404: "The experiment (or another resource the request names) does not exist.",
    409: "It exists already: an experiment's definition is immutable.",
    422: "Invalid request: `errors` names each invalid field.",
    503: "The decision store is unavailable; retry later.",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` for a route that may answer these error statuses."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}
