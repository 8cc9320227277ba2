"""``inboxlab import-events``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from inboxlab.cli.output import console, err_console, fail, progress_bar, reporting_errors
from inboxlab.errors import ImportValidationError
from inboxlab.settings import get_settings

__all__ = ["register"]


def import_events_command(
    files: list[Path] = typer.Argument(..., help="CSV or Parquet files of event records."),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Where to write every row error (CSV). Default: data/reports/imports/.",
    ),
) -> None:
    """Validate and import event files into the event log, all or nothing.

    Every row is checked (kind, ISO 8601 timestamps with offset, recipient ids that are not
    email addresses, required fields, revenue >= 0). If any row is invalid nothing is written
    and the errors are listed with row and column. Duplicate event_ids are dropped and counted.
    """
    from features.events import EventLog, import_events

    settings = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    report_path = report or settings.reports_dir / "imports" / f"import-{stamp}-errors.csv"
    log = EventLog(settings.events_dir)
    with progress_bar() as bar, reporting_errors():
        task = bar.add_task("importing", total=None)
        try:
            summary = import_events(
                files,
                log,
                report_path=report_path,
                progress=lambda msg: bar.update(task, description=msg),
            )
        except ImportValidationError as exc:
            bar.stop()
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            err_console.print(f"every error is listed in {report_path}")
            fail("import refused: fix the rows above and run it again", code=2)
        bar.update(task, total=1, completed=1, description="imported")
    console.print(
        f"read {summary.rows_read:,} rows, wrote [bold]{summary.rows_written:,}[/] events; "
        f"dropped {summary.duplicates_in_input:,} duplicate event_ids within the input and "
        f"{summary.duplicates_in_log:,} already in the log ({log.directory})"
    )


def register(app: typer.Typer) -> None:
    """Add the event commands to ``app``."""
    app.command("import-events")(import_events_command)
