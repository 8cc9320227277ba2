"""``inboxlab forget RECIPIENT_ID``: erase a person everywhere, with an audit record."""

from __future__ import annotations

import getpass

import typer

from inboxlab.cli.output import console, reporting_errors
from inboxlab.settings import get_settings

__all__ = ["register"]


def forget_command(
    recipient_id: str = typer.Argument(..., help="The recipient to erase."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase a recipient from the event log, features, online store and decision store.

    The decision store keeps an audit record (who, when, how much) but nothing of the person.
    """
    from features.erasure import erase_recipient as erase_features
    from serving.store import DecisionStore

    if not yes:
        typer.confirm(f"Erase every trace of {recipient_id!r}?", abort=True)
    settings = get_settings()
    with reporting_errors():
        erased = erase_features(settings, recipient_id)
        with DecisionStore.opened(settings.decision_store_url) as store:
            report = store.erase_recipient(recipient_id, actor=f"cli:{getpass.getuser()}")
    console.print(
        f"erased {recipient_id}: {erased.events:,} events, "
        f"{erased.feature_rows + erased.directory_rows:,} feature rows, "
        f"{erased.online_rows:,} online rows, {report.decisions:,} decisions, "
        f"{report.outcomes:,} outcomes (audit record {report.audit_id})"
    )


def register(app: typer.Typer) -> None:
    """Add ``forget`` to ``app``."""
    app.command("forget")(forget_command)
