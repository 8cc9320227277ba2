"""``inboxlab train`` and ``inboxlab models {list,promote}``."""

from __future__ import annotations

import math
from enum import StrEnum

import typer
from rich.table import Table

from inboxlab.cli.output import console, listing, progress_bar, reporting_errors
from inboxlab.settings import get_settings

__all__ = ["register"]

models_app = typer.Typer(help="Registered models: list versions, promote a challenger.")


class Kind(StrEnum):
    engagement = "engagement"
    send_time = "send-time"
    propensity = "propensity"


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def train_command(
    kind: Kind = typer.Argument(..., help="Which model to train."),
    seed: int = typer.Option(0, "--seed", help="LightGBM's random seed."),
    holdout_days: int = typer.Option(14, "--holdout-days", help="Most recent days held out."),
    calibration_days: int = typer.Option(
        7, "--calibration-days", help="Days before the holdout used to calibrate."
    ),
) -> None:
    """Train a model on its point-in-time training set and register it as @challenger.

    Fits LightGBM and a logistic-regression baseline on the same features, calibrates both on
    later data, evaluates on the most recent days and logs everything to MLflow.
    """
    from training.train import train

    settings = get_settings()
    with reporting_errors(), progress_bar() as bar:
        task = bar.add_task(f"training {kind.value}", total=None)
        logged = train(
            settings,
            kind.value,
            seed=seed,
            holdout_days=holdout_days,
            calibration_days=calibration_days,
            progress=lambda msg: bar.update(task, description=msg),
        )
        bar.update(task, total=1, completed=1, description="done")
    table = Table(title=f"{logged.name} version {logged.version} (@challenger), holdout metrics")
    table.add_column("metric")
    table.add_column("LightGBM", justify="right")
    table.add_column("logistic baseline", justify="right")
    for name, value in logged.metrics.items():
        table.add_row(name, _fmt(value), _fmt(logged.baseline_metrics.get(name)))
    console.print(table)
    console.print(
        f"MLflow run {logged.run_id}; promote with `inboxlab models promote {kind.value}`"
    )


@models_app.command("list")
def list_command() -> None:
    """Every registered version with its aliases and holdout metrics."""
    from training.registry import list_versions

    settings = get_settings()
    with reporting_errors():
        versions = list_versions(settings)
    if not versions:
        console.print("no registered models yet; run `inboxlab train engagement` first")
        return
    rows = [
        (
            v.name,
            v.version,
            "\n".join(f"@{a}" for a in v.aliases) or "-",
            v.created.strftime("%Y-%m-%d\n%H:%M"),
            _fmt(v.metrics.get("roc_auc")),
            _fmt(v.metrics.get("log_loss")),
            _fmt(v.metrics.get("ece")),
        )
        for v in versions
    ]
    columns = ("model", "version", "aliases", "created", "ROC AUC", "log loss", "ECE")
    whole = ("model", "version", "aliases", "created")
    console.print(listing("registered models", columns, rows, whole=whole))


@models_app.command("promote")
def promote_command(
    name: str = typer.Argument(..., help="engagement, send-time, propensity (or inboxlab-…)."),
    force: bool = typer.Option(False, "--force", help="Promote even if it does not win."),
) -> None:
    """Move @champion to the @challenger version if it beats the champion on the same holdout."""
    from training.registry import promote

    settings = get_settings()
    with reporting_errors():
        try:
            result = promote(settings, name, force=force)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="NAME") from exc
    verb = "promoted" if result.promoted else "kept the champion"
    console.print(f"{result.name}: {verb}: {result.reason}")
    if not result.promoted:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``models`` to ``app``."""
    app.command("train")(train_command)
    app.add_typer(models_app, name="models")
