"""The baseline of ``bench_decisions.py``: a bare FastAPI endpoint that echoes the JSON it gets.

Run: ``uvicorn --app-dir benchmarks bare_app:app --host 127.0.0.1 --port 8100``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI

app = FastAPI(title="echo")


@app.post("/v1/decisions")
async def echo(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """The request body, unchanged."""
    return body
