"""``inboxlab serve``: the decision API on uvicorn, with experiment reports wired in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from inboxlab.library_warnings import quiet_library_warnings
from inboxlab.settings import get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from inboxlab.experiment import ExperimentDefinition

__all__ = ["build_app", "register", "render_report"]


def render_report(definition: ExperimentDefinition, units: Any, fmt: str) -> Any:
    """Analyse a unit table with the ``experiments`` package; HTML text or a JSON dict."""
    from experiments.report import render_units

    return render_units(definition, units, fmt)


def build_app() -> FastAPI:
    """The app for the current settings (uvicorn's factory)."""
    from serving.app import create_app

    quiet_library_warnings()  # a worker process starts here, not in the command's callback
    return create_app(get_settings(), report_renderer=render_report)


def serve_command(
    host: str = typer.Option(None, "--host", help="Default: INBOXLAB_API__HOST (127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Default: INBOXLAB_API__PORT (8000)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="Log every request (costs CPU per request; /metrics counts them either way).",
    ),
) -> None:
    """Serve the decision API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "inboxlab.cli.serve:build_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        # A worker imports the models and the stores before it answers the supervisor's
        # first health check; on a busy machine that takes longer than uvicorn's 5 s.
        timeout_worker_healthcheck=120,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve_command)
