"""``inboxlab simulate``: a synthetic email world with its ground truth."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from inboxlab.cli.output import console, progress_bar, reporting_errors
from inboxlab.settings import Settings, get_settings

__all__ = ["register", "run_simulation"]


def run_simulation(
    settings: Settings,
    *,
    recipients: int,
    days: int,
    seed: int,
    start: date | None,
    out: Path | None,
) -> tuple[int, Path]:
    """Simulate and store the events (log or import files) and the truth; return counts."""
    import pyarrow.parquet as pq

    from features.events import EventLog
    from features.events.importer import import_tables
    from features.events.recipients import write_recipients
    from features.simulator import SimulationConfig, simulate

    first_day = start or (datetime.now(UTC).date() - timedelta(days=days))
    config = SimulationConfig(recipients=recipients, days=days, seed=seed, start=first_day)
    with progress_bar() as bar:
        task = bar.add_task("simulating days", total=days)
        sim = simulate(config, progress=lambda done, total: bar.update(task, completed=done))
    truth_dir = (out / "truth") if out else settings.truth_dir
    sim.truth.save(truth_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        events_file = out / "events.parquet"
        pq.write_table(sim.events, events_file, compression="zstd")
        pq.write_table(sim.truth.recipient_directory(), out / "recipients.parquet")
        return sim.events.num_rows, events_file
    log = EventLog(settings.events_dir)
    with progress_bar() as bar:
        task = bar.add_task("writing the event log", total=None)
        # The same validated, deduplicated path as any import: simulated data obeys the
        # contract, and re-running the same seed adds nothing.
        summary = import_tables(
            [(f"simulation seed={seed}", sim.events)],
            log,
            progress=lambda msg: bar.update(task, description=msg),
        )
        bar.update(task, total=1, completed=1)
    write_recipients(settings.recipients_path, sim.truth.recipient_directory())
    return summary.rows_written, log.directory


def simulate_command(
    recipients: int = typer.Option(10_000, "--recipients", "-n", help="How many recipients."),
    days: int = typer.Option(30, "--days", "-d", help="How many days of sending history."),
    seed: int = typer.Option(..., "--seed", "-s", help="Random seed; same seed, same world."),
    start: datetime | None = typer.Option(
        None, "--start", formats=["%Y-%m-%d"], help="First day (default: DAYS before today)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write import-format files here instead of appending to the log."
    ),
) -> None:
    """Simulate recipients and a sending history; append the events and write the truth.

    The world has time zones, chronotypes, content-affinity segments, fatigue, an
    open-click-convert funnel with revenue, unsubscribes, complaints, bounces and machine
    opens. The ground truth (true open probability by local hour of week, true rates per
    segment and variant) goes to data/truth/ (or OUT/truth/).
    """
    settings = get_settings()
    with reporting_errors():
        rows, where = run_simulation(
            settings,
            recipients=recipients,
            days=days,
            seed=seed,
            start=start.date() if start else None,
            out=out,
        )
    truth = (out / "truth") if out else settings.truth_dir
    console.print(f"simulated {rows:,} events into {where}; ground truth in {truth}")


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to ``app``."""
    app.command("simulate")(simulate_command)
