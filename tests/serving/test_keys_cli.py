from __future__ import annotations

import typer
from typer.testing import CliRunner

from inboxlab.cli.keys import register
from inboxlab.settings import Settings
from serving.keys import KeyRing
from serving.store import DecisionStore


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    register(app)
    return app


def test_create_prints_a_key_that_verifies(settings: Settings) -> None:
    result = CliRunner().invoke(cli(), ["keys", "create", "renderer", "--scopes", "decide,admin"])
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip().splitlines()[-1]
    store = DecisionStore(settings.decision_store_url)
    key = KeyRing(store.engine).verify(plaintext, "admin")
    store.close()
    assert key.scopes == frozenset({"decide", "admin"})


def test_list_shows_names_and_revoke_deactivates(settings: Settings) -> None:
    runner = CliRunner()
    runner.invoke(cli(), ["keys", "create", "renderer"])
    revoked = runner.invoke(cli(), ["keys", "revoke", "renderer"])
    listed = runner.invoke(cli(), ["keys", "list", "--all"])
    assert revoked.exit_code == 0 and "revoked 1 key" in revoked.stdout
    assert "renderer" in listed.stdout and "revoked" in listed.stdout


def test_bad_scope_and_unknown_name_fail_with_a_message(settings: Settings) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli(), ["keys", "create", "x", "--scopes", "root"])
    missing = runner.invoke(cli(), ["keys", "revoke", "ghost"])
    assert bad.exit_code == 1 and "scopes must be" in bad.stderr
    assert missing.exit_code == 1 and "ghost" in missing.stderr
