"""``inboxlab features build`` and ``inboxlab features materialize``."""

from __future__ import annotations

from datetime import date

import typer

from inboxlab.cli.output import console, progress_bar, reporting_errors
from inboxlab.settings import get_settings

__all__ = ["register"]


def build_command(
    until: str | None = typer.Option(
        None, "--until", help="Last snapshot day (YYYY-MM-DD); default the day after the log."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Recompute every snapshot (after importing late events)."
    ),
) -> None:
    """Compute the daily feature snapshots missing from the feature tables (incremental)."""
    from features.engineering.build import build_features
    from inboxlab.errors import InvalidInputError

    settings = get_settings()
    with reporting_errors():
        try:
            last = date.fromisoformat(until) if until else None
        except ValueError as exc:
            raise InvalidInputError(f"--until {until!r} is not a YYYY-MM-DD date") from exc
        with progress_bar() as bar:
            task = bar.add_task("building feature snapshots (days)", total=None)

            def step(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = build_features(settings, until=last, rebuild=rebuild, progress=step)
    if not result.days:
        console.print("feature tables are up to date")
        return
    console.print(
        f"built {len(result.days)} snapshot day(s) {result.days[0]} … {result.days[-1]}: "
        + ", ".join(f"{table} {rows:,} rows" for table, rows in result.rows.items())
    )


def materialize_command() -> None:
    """Apply the Feast repository and load new snapshots into the online store."""
    from features.store import ONLINE_VIEWS, materialize

    settings = get_settings()
    with reporting_errors(), progress_bar() as bar:
        task = bar.add_task("materializing", total=len(ONLINE_VIEWS))
        started: list[str] = []

        def step(view: str) -> None:  # a view starts: the one before it is loaded
            bar.update(task, description=f"materializing {view}", advance=1 if started else 0)
            started.append(view)

        def rows(view: str, done: int, total: int) -> None:
            bar.update(task, description=f"materializing {view}: {done:,} of {total:,} rows")

        result = materialize(settings, progress=step, rows=rows)
        bar.update(task, description="materialized", completed=len(ONLINE_VIEWS))
    start = result.start.isoformat() if result.start else "(nothing new)"
    console.print(
        f"online store ({settings.stores.online}) holds snapshots up to {result.end.isoformat()}"
        f"; loaded from {start}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``features`` command group to ``app``."""
    group = typer.Typer(help="Build feature tables and load the online feature store.")
    group.command("build")(build_command)
    group.command("materialize")(materialize_command)
    app.add_typer(group, name="features")
