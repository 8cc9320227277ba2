"""``inboxlab report`` and ``inboxlab ope``: experiment reports and off-policy estimates.

The main application calls :func:`register`. The ``experiments`` package is imported inside
the commands so that ``inboxlab --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from inboxlab.cli.output import fail, listing
from inboxlab.errors import ConflictError, InvalidInputError, NotFoundError
from inboxlab.experiment import ExperimentDefinition, load_definition
from inboxlab.settings import get_settings

__all__ = ["ReportFormat", "register"]

logger = logging.getLogger(__name__)


class ReportFormat(StrEnum):
    """Output formats of ``inboxlab report``."""

    HTML = "html"
    JSON = "json"
    MD = "md"


def report(
    experiment_id: Annotated[
        str | None, typer.Argument(help="Experiment id (needs the decision store).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="CSV or Parquet export, one row per unit.")
    ] = None,
    control: Annotated[str | None, typer.Option("--control", help="The control arm.")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Metric column; the first is primary. Repeatable."),
    ] = None,
    segment: Annotated[
        list[str] | None, typer.Option("--segment", help="Segment column. Repeatable.")
    ] = None,
    definition: Annotated[
        Path | None, typer.Option("--definition", help="Experiment definition YAML.")
    ] = None,
    arm_column: Annotated[str, typer.Option("--arm-column")] = "arm",
    output_format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.MD,
    out: Annotated[Path | None, typer.Option("--out", help="Write here, not stdout.")] = None,
) -> None:
    """Bayesian report of an experiment: lift, chance to win, guardrails, SRM, segments."""
    console, err = Console(), Console(stderr=True, soft_wrap=True)
    from experiments import analyze_file, to_dict, to_html, to_markdown

    stored: ExperimentDefinition | None = None
    if data is None:
        if experiment_id is None:
            fail("give an EXPERIMENT_ID or --data FILE --control ARM", code=2)
        try:
            stored, data = export_units(experiment_id)
        except NotFoundError as exc:
            fail(str(exc), code=2)
    try:
        spec = load_definition(definition) if definition else stored
        with err.status(f"Analysing {data} …"):
            result = analyze_file(
                data,
                control=control,
                metrics=metric or (),
                segments=segment or (),
                definition=spec,
                arm_column=arm_column,
                experiment_id=experiment_id,
            )
    except (InvalidInputError, NotFoundError) as exc:
        fail(str(exc), code=2)
    if output_format is ReportFormat.HTML:
        text = to_html(result)
    elif output_format is ReportFormat.JSON:
        text = json.dumps(to_dict(result), indent=2, allow_nan=False)
    else:
        text = to_markdown(result)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        err.print(f"[green]wrote[/] {out}  ({result.recommendation.text})", highlight=False)
    elif output_format is ReportFormat.MD and console.is_terminal:
        console.print(Markdown(text))
    else:
        typer.echo(text)


def export_units(experiment_id: str) -> tuple[ExperimentDefinition, Path]:
    """The stored definition and a Parquet export of its units from the decision store."""
    from serving.store import DecisionStore
    from serving.store.units import stored_experiment_units

    settings = get_settings()
    with DecisionStore.opened(settings.decision_store_url) as store:
        found, units = stored_experiment_units(store.engine, experiment_id)
    path = settings.reports_dir / "units" / f"{experiment_id}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    units.to_parquet(path, index=False)
    return found, path


experiments_app = typer.Typer(help="Experiment definitions: create from YAML, list.")


@experiments_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="Experiment definition (YAML).")],
) -> None:
    """Validate a definition and store it; the API then decides with it."""
    from serving.store import DecisionStore
    from serving.store.experiments import ExperimentStore

    settings = get_settings()
    try:
        spec = load_definition(file)
        with DecisionStore.opened(settings.decision_store_url) as store:
            ExperimentStore(store.engine).create(spec)
    except (InvalidInputError, ConflictError) as exc:
        fail(str(exc), code=2)
    Console().print(
        f"created {spec.type} experiment [bold]{spec.id}[/] with arms "
        f"{', '.join(a.id for a in spec.arms)} (control {spec.control})"
    )


@experiments_app.command("list")
def list_experiments() -> None:
    """Every stored experiment."""
    from serving.store import DecisionStore
    from serving.store.experiments import ExperimentStore

    with DecisionStore.opened(get_settings().decision_store_url) as store:
        found = ExperimentStore(store.engine).all()
    rows = [
        (
            spec.id,
            spec.type,
            ", ".join(a.id for a in spec.arms),
            spec.control,
            spec.primary_metric,
            f"{spec.holdout_pct:g}",
        )
        for spec in found
    ]
    columns = ("id", "type", "arms", "control", "primary metric", "holdout %")
    Console().print(listing("experiments", columns, rows, whole=("id",)))


def ope(
    experiment_id: Annotated[
        str | None,
        typer.Argument(help="A stored experiment: its logged decisions, arms scored by the model."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Logged units with propensities.")
    ] = None,
    reward: Annotated[
        str | None,
        typer.Option("--reward", help="Reward column (e.g. click); default the primary metric."),
    ] = None,
    arm_column: Annotated[str, typer.Option("--arm-column")] = "arm",
    pscore_column: Annotated[str, typer.Option("--pscore-column")] = "pscore",
    context: Annotated[
        str | None, typer.Option("--context", help="Context column for the DR reward model.")
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=50)] = 500,
    seed: Annotated[int | None, typer.Option("--seed", help="Bootstrap seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Off-policy estimates (IPS, SNIPS, DR) of uniform, current-bandit and greedy policies."""
    import dataclasses

    import numpy as np

    from experiments import evaluate_file

    console, err = Console(), Console(stderr=True, soft_wrap=True)
    if data is None:
        if experiment_id is None:
            fail("give an EXPERIMENT_ID or --data FILE --reward COLUMN", code=2)
        from inboxlab.cli.ope_source import scored_units

        try:
            with err.status(f"Scoring the arms of {experiment_id} …"):
                stored, data = scored_units(get_settings(), experiment_id)
        except NotFoundError as exc:
            fail(str(exc), code=2)
        reward = reward or stored.primary_metric
        context = context or "engagement_tier"
    if reward is None:
        fail("name the reward column (--reward click)", code=2)
    try:
        with err.status(f"Evaluating policies on {data} …"):
            result = evaluate_file(
                data,
                reward=reward,
                arm_column=arm_column,
                pscore_column=pscore_column,
                context_column=context,
                rng=np.random.default_rng(seed),
                n_bootstrap=bootstrap,
            )
    except InvalidInputError as exc:
        fail(str(exc), code=2)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    table = Table(title=f"Off-policy estimates of mean {reward} ({result.units:,} units)")
    for col in ("Policy", "Estimator", "Value", "95% interval", "Eff. sample size"):
        table.add_column(col, justify="left" if col in {"Policy", "Estimator"} else "right")
    for e in result.estimates:
        table.add_row(
            e.policy,
            e.estimator.upper(),
            f"{e.value:.4f}",
            f"[{e.ci_low:.4f}, {e.ci_high:.4f}]",
            f"{result.effective_sample_size[e.policy]:,.0f}",
        )
    console.print(table)
    console.print(f"Logged policy mean {reward}: {result.logged_value:.4f}")
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``experiments``, ``report`` and ``ope`` to the ``inboxlab`` application."""
    app.add_typer(experiments_app, name="experiments")
    app.command("report")(report)
    app.command("ope")(ope)
