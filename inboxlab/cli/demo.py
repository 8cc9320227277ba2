"""``inboxlab demo``: the embedded demo that ``make run`` prepares and serves.

Each step runs only when its output is missing, so re-running is fast: a simulated history
in the event log, feature snapshots, the online store, the three models (trained and promoted
to ``@champion``), a demo bandit experiment and a development API key.
"""

from __future__ import annotations

import json

import typer

from inboxlab.cli.output import console, reporting_errors
from inboxlab.cli.simulation import run_simulation
from inboxlab.settings import Settings, get_settings

__all__ = ["DEMO_EXPERIMENT", "register"]

DEMO_EXPERIMENT = "demo-content-bandit"


def _history(settings: Settings, recipients: int, days: int, seed: int, force: bool) -> None:
    from features.events import EventLog

    marker = settings.data_dir / "demo.json"
    wanted = {"recipients": recipients, "days": days, "seed": seed}
    log = EventLog(settings.events_dir)
    ready = marker.exists() and json.loads(marker.read_text()).get("params") == wanted
    if ready and not log.is_empty():
        console.print(f"[dim]event log ready ({log.count():,} events)[/]")
        return
    if not log.is_empty() and not force:
        console.print(
            f"[yellow]{log.directory} already holds other events; the demo would mix with "
            "them. Use --force to add the demo anyway or set INBOXLAB_DATA_DIR elsewhere.[/]"
        )
        raise typer.Exit(1)
    rows, _ = run_simulation(
        settings, recipients=recipients, days=days, seed=seed, start=None, out=None
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"params": wanted, "events": rows}))
    console.print(f"simulated {rows:,} events")


def _models(settings: Settings) -> None:
    from mlflow.exceptions import MlflowException

    from inboxlab.cli.models import Kind, promote_command, train_command
    from training.specs import spec_for
    from training.tracking import CHAMPION, client_for

    client = client_for(settings)
    for kind in Kind:
        name = spec_for(kind.value).registered_name
        try:
            version = client.get_model_version_by_alias(name, CHAMPION).version
            console.print(f"[dim]{name} @champion is version {version}[/]")
            continue
        except MlflowException:
            pass
        try:
            train_command(kind=kind, seed=0, holdout_days=14, calibration_days=7)
        except typer.Exit:
            # Too little data for this model (e.g. rare conversions in a small world): the API
            # serves without it and says so in each decision's reasons.
            console.print(
                f"[yellow]{name} not trained; decisions will carry "
                f"model_unavailable:{kind.value}. Simulate more recipients or days.[/]"
            )
            continue
        promote_command(name=kind.value, force=False)


def _experiment_and_key(settings: Settings) -> str:
    from inboxlab.experiment import parse_definition
    from serving.keys import KeyRing
    from serving.store import DecisionStore
    from serving.store.experiments import ExperimentStore

    with DecisionStore.opened(settings.decision_store_url) as store:
        experiments = ExperimentStore(store.engine)
        if experiments.get(DEMO_EXPERIMENT) is None:
            experiments.create(
                parse_definition(
                    {
                        "id": DEMO_EXPERIMENT,
                        "type": "bandit",
                        "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
                        "primary_metric": "click",
                        "holdout_pct": 5,
                        "segment_columns": ["engagement_tier"],
                        "bandit": {"weight_floor": 0.05, "contextual": True},
                    }
                )
            )
        key_file = settings.data_dir / "dev-key"
        if not key_file.exists():
            created = KeyRing(store.engine).create(
                "development", scopes=("decide", "outcomes", "admin")
            )
            key_file.write_text(created.plaintext)
            key_file.chmod(0o600)
        return key_file.read_text().strip()


def demo_command(
    recipients: int = typer.Option(10_000, "--recipients", "-n", help="Simulated recipients."),
    days: int = typer.Option(60, "--days", "-d", help="Days of simulated history."),
    seed: int = typer.Option(7, "--seed", "-s", help="Random seed of the demo world."),
    force: bool = typer.Option(False, "--force", help="Add the demo to a non-empty log."),
) -> None:
    """Prepare the demo: history, features, online store, champion models, experiment, key.

    Every step is skipped when its result exists, so re-running is fast. Ends with a
    development API key (kept in data/dev-key, development only) and a working curl example.
    """
    from inboxlab.cli.features import build_command, materialize_command

    settings = get_settings()
    with reporting_errors():
        _history(settings, recipients, days, seed, force)
        build_command(until=None, rebuild=False)
        materialize_command()
        _models(settings)
        key = _experiment_and_key(settings)
    host, port = settings.api.host, settings.api.port
    body = (
        '{"recipient_id": "r0000042", "campaign_id": "spring-sale", '
        f'"experiment_id": "{DEMO_EXPERIMENT}"' + "}"
    )
    console.print(
        "\n[bold]demo ready.[/] Development API key (scopes decide, outcomes, admin):\n"
        f"  {key}\n\nAsk for a decision once the server is up:\n"
        f"  curl -s -X POST http://{host}:{port}/v1/decisions \\\n"
        f"    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        f"    -d '{body}'\n\nOpenAPI docs: http://{host}:{port}/docs",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo_command)
