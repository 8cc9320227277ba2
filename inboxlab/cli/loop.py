"""``inboxlab loop``: watch the running service learn, campaign by campaign.

Runs :class:`serving.loop.ClosedLoop` against a running ``inboxlab serve``: each campaign's
audience is decided by the API, played out in the simulated world whose ground truth is under
``$INBOXLAB_DATA_DIR/truth`` and posted back, while a live table shows the arm allocation, the
posterior means, the cumulative regret against a uniform split and against the oracle, and
the open-rate lift of the API's send times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from inboxlab.cli.output import console, fail, reporting_errors
from inboxlab.settings import get_settings

if TYPE_CHECKING:
    from rich.table import Table

    from serving.loop_report import CampaignRow, LoopSummary

__all__ = ["loop_table", "register"]


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.0f}%"  # NaN before any data


def loop_table(rows: Sequence[CampaignRow], summary: LoopSummary, arms: Sequence[str]) -> Table:
    """One line per campaign: allocation, posterior means, cumulative regret, open rates."""
    from rich.table import Table

    table = Table(
        title="closed loop: decisions from the API, outcomes from the simulated world",
        caption=(
            "regret: expected clicks lost against each recipient's best variant (cumulative); "
            "open rates: true probabilities at the API's hours, the historical fixed hour and "
            "the best allowed hour"
        ),
    )
    table.add_column("campaign")
    table.add_column("sent", justify="right")
    table.add_column("allocation " + "/".join(arms), justify="right")
    table.add_column("posterior mean " + "/".join(arms), justify="right")
    table.add_column("clicks", justify="right")
    table.add_column("regret bandit", justify="right")
    table.add_column("regret uniform", justify="right")
    table.add_column("less regret", justify="right", style="bold")
    table.add_column("vs best arm", justify="right")
    table.add_column("open API/fixed/oracle", justify="right")
    table.add_column("of oracle lift", justify="right", style="bold")
    regret = regret_uniform = 0.0
    for row in rows:
        regret += row.regret
        regret_uniform += row.regret_uniform
        allocation, means = row.allocation, row.posterior_mean
        table.add_row(
            row.campaign_id,
            f"{row.sent:,}",
            " ".join(f"{100 * allocation.get(a, 0.0):3.0f}" for a in arms),
            " ".join(f"{means.get(a, 0.0):.3f}" for a in arms),
            f"{row.clicks:,}",
            f"{regret:,.1f}",
            f"{regret_uniform:,.1f}",
            _pct(1 - regret / regret_uniform if regret_uniform else float("nan")),
            "",
            f"{row.open_rate_policy:.3f}/{row.open_rate_fixed:.3f}/{row.open_rate_oracle:.3f}",
            "",
        )
    if rows:
        table.add_section()
        table.add_row(
            "total",
            f"{summary.sent:,}",
            f"best arm {summary.best_arm}",
            "",
            f"{sum(r.clicks for r in rows):,}",
            f"{summary.regret:,.1f}",
            f"{summary.regret_uniform:,.1f}",
            _pct(summary.regret_reduction),
            _pct(summary.regret_reduction_vs_best_arm),
            f"{summary.open_rate_policy:.3f}/{summary.open_rate_fixed:.3f}/"
            f"{summary.open_rate_oracle:.3f}",
            _pct(summary.oracle_lift_fraction),
        )
    return table


def loop_command(
    url: str = typer.Option(
        None, "--url", help="The running API; default http://INBOXLAB_API__HOST:PORT."
    ),
    key: str = typer.Option(
        None, "--key", help="API key (decide, outcomes); default $INBOXLAB_DATA_DIR/dev-key."
    ),
    campaigns: int = typer.Option(10, "--campaigns", "-c", min=1, help="Campaigns to run."),
    audience: int = typer.Option(1_000, "--audience", "-a", min=1, help="Recipients each."),
    experiment: str = typer.Option(
        "demo-content-bandit", "--experiment", "-e", help="Experiment deciding the variants."
    ),
    interval_hours: float = typer.Option(
        24.0, "--interval-hours", min=0.01, help="Simulated hours between campaigns."
    ),
    seed: int | None = typer.Option(
        None, "--seed", "-s", help="Seed of the audiences and the simulated outcomes."
    ),
) -> None:
    """Run campaigns through the running API against the simulated world and watch it learn.

    Decisions come from the API (batch endpoint), the emails go into the simulated world of
    the demo (ground truth in $INBOXLAB_DATA_DIR/truth) at the chosen hour with the chosen
    variant, and the outcomes are posted back, so the bandit learns as you watch.
    """
    import httpx
    import numpy as np
    from rich.live import Live

    from features.simulator import EmailEnvironment, GroundTruth
    from serving.loop import ClosedLoop, LoopConfig
    from serving.loop_report import summarize

    settings = get_settings()
    base = url or f"http://{settings.api.host}:{settings.api.port}"
    if key is None:
        key_file = settings.data_dir / "dev-key"
        if not key_file.is_file():
            fail(f"no --key given and no development key at {key_file}; run `inboxlab demo`")
        key = key_file.read_text().strip()
    rng = np.random.default_rng(seed)
    rows: list[CampaignRow] = []
    with (
        reporting_errors(),
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300.0
        ) as client,
    ):
        truth = GroundTruth.load(settings.data_dir / "truth")
        env = EmailEnvironment(truth, rng=np.random.default_rng(rng.integers(2**63)))
        config = LoopConfig(
            experiment_id=experiment,
            campaigns=campaigns,
            audience=min(audience, truth.population.size),
            interval_hours=interval_hours,
            campaign_prefix=f"loop-{datetime.now(UTC):%Y%m%d%H%M%S}",
        )
        try:
            loop = ClosedLoop(client, env, config, rng=rng)
            console.print(
                f"{experiment}: arms {', '.join(loop.arms)}, reward {loop.reward_kind}; "
                f"fixed-hour baseline {loop.fixed_hour}:00 {loop.fixed_hour_basis}",
                highlight=False,
            )
            with Live(
                loop_table(rows, summarize(rows), loop.arms), console=console, auto_refresh=False
            ) as live:
                for row in loop.campaigns():
                    rows.append(row)
                    live.update(loop_table(rows, summarize(rows), loop.arms), refresh=True)
        except httpx.HTTPStatusError as exc:
            fail(f"{exc.request.url} answered {exc.response.status_code}: {exc.response.text}")
        except httpx.TransportError as exc:
            fail(f"cannot reach the API at {base} ({exc}); is `inboxlab serve` running?")


def register(app: typer.Typer) -> None:
    """Add ``loop`` to ``app``."""
    app.command("loop")(loop_command)
