"""``inboxlab demo``: prepare the embedded demo (what ``make run`` serves)."""

from __future__ import annotations

import json

import typer

from inboxlab.cli.output import console, reporting_errors
from inboxlab.cli.simulation import run_simulation
from inboxlab.settings import get_settings

__all__ = ["register"]


def demo_command(
    recipients: int = typer.Option(20_000, "--recipients", "-n", help="Simulated recipients."),
    days: int = typer.Option(60, "--days", "-d", help="Days of simulated history."),
    seed: int = typer.Option(7, "--seed", "-s", help="Random seed of the demo world."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the demo is ready."),
) -> None:
    """Build the demo: simulated history in the event log, with its ground truth.

    Re-running is instant when the demo was already built with the same parameters.
    """
    from features.events import EventLog

    settings = get_settings()
    marker = settings.data_dir / "demo.json"
    wanted = {"recipients": recipients, "days": days, "seed": seed}
    log = EventLog(settings.events_dir)
    ready = marker.exists() and json.loads(marker.read_text()).get("params") == wanted
    if ready and not log.is_empty() and not force:
        console.print(f"demo data ready in {settings.data_dir} ({log.count():,} events)")
        return
    if not log.is_empty() and not force:
        console.print(
            f"[yellow]{log.directory} already holds events; the demo would mix with them. "
            "Use --force to add the demo anyway or set INBOXLAB_DATA_DIR elsewhere.[/]"
        )
        raise typer.Exit(1)
    with reporting_errors():
        rows, _ = run_simulation(
            settings, recipients=recipients, days=days, seed=seed, start=None, out=None
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"params": wanted, "events": rows}))
    console.print(f"demo ready: {rows:,} simulated events in {log.directory}")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo_command)
