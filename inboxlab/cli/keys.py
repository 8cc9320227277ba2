"""``inboxlab keys {create,list,revoke}``: API keys of the decision API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from inboxlab.cli.output import console, err_console, listing, reporting_errors
from inboxlab.settings import get_settings

if TYPE_CHECKING:
    from serving.keys import KeyRing

__all__ = ["register"]

keys_app = typer.Typer(
    name="keys",
    help="Create, list and revoke API keys (only their hashes are stored).",
    no_args_is_help=True,
)


@contextmanager
def _keyring() -> Iterator[KeyRing]:
    # Imported here so that ``inboxlab --help`` does not load SQLAlchemy.
    from serving.keys import KeyRing
    from serving.store import DecisionStore

    with DecisionStore.opened(get_settings().decision_store_url) as store:
        yield KeyRing(store.engine)


@keys_app.command("create")
def create_command(
    name: str = typer.Argument(..., help="A name for the key, e.g. the calling system."),
    scopes: str = typer.Option(
        "decide,outcomes", "--scopes", help="Comma-separated: decide, outcomes, admin."
    ),
) -> None:
    """Create a key and print it once; it cannot be shown again."""
    with reporting_errors(), _keyring() as ring:
        created = ring.create(name, scopes=scopes.split(","))
    err_console.print(
        f"created key [bold]{created.key.name}[/] with scopes "
        f"{', '.join(sorted(created.key.scopes))}; store it now, it is not shown again:"
    )
    # The key alone on stdout, so that scripts can capture it.
    console.print(created.plaintext, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_command(
    all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
) -> None:
    """List keys (names, scopes, dates; never the secrets)."""
    with reporting_errors(), _keyring() as ring:
        keys = ring.list_keys(include_revoked=all_keys)
    rows = [
        (
            key.name,
            key.key_id,
            ", ".join(sorted(key.scopes)),
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}",
        )
        for key in keys
    ]
    columns = ("name", "id", "scopes", "created (UTC)", "status")
    console.print(listing("API keys", columns, rows, whole=("name", "id")))


@keys_app.command("revoke")
def revoke_command(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke the active key with this name; requests using it get 401 from then on."""
    with reporting_errors(), _keyring() as ring:
        count = ring.revoke(name)
    console.print(f"revoked {count} key(s) named [bold]{name}[/]")


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    app.add_typer(keys_app, name="keys")
