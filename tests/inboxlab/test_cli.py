from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.events import EventLog
from inboxlab.cli import app
from inboxlab.settings import Settings
from tests.conftest import fresh_python

runner = CliRunner()

HEADER = "event_id,recipient_id,kind,occurred_at,value"


def test_help_lists_every_command_and_each_has_its_own_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in commands:
        assert name and name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
        assert "Usage" in sub.output


def test_console_script_help_is_quick_to_import() -> None:
    # Heavy libraries load inside commands, not when the CLI module is imported.
    code = (
        "import sys, inboxlab.cli; "
        "print(sorted(m for m in ('mlflow', 'feast', 'lightgbm') if m in sys.modules))"
    )
    out = fresh_python(code)
    assert out.stdout.strip() == "[]"


def test_import_events_reports_bad_rows_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{HEADER}\ne1,r1,open,2026-03-01T09:00:00+00:00,\ne2,ann@example.com,clicked,2026-03-01,-5\n"
    )
    result = runner.invoke(app, ["import-events", str(bad)])
    assert result.exit_code == 2
    assert "row 2, column 'recipient_id'" in result.output
    assert "row 2, column 'kind'" in result.output
    assert "4 invalid value(s)" in result.output
    assert EventLog(settings.events_dir).is_empty()
    reports = list((settings.reports_dir / "imports").glob("*.csv"))
    assert len(reports) == 1
    assert len(reports[0].read_text().splitlines()) == 5


def test_import_events_imports_and_counts_duplicates(settings: Settings, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        f"{HEADER}\ne1,r1,open,2026-03-01T09:00:00+00:00,\ne1,r1,open,2026-03-01T09:00:00+00:00,\n"
    )
    result = runner.invoke(app, ["import-events", str(good)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 events" in result.output
    assert "dropped 1 duplicate" in result.output
    assert EventLog(settings.events_dir).count() == 1


@pytest.mark.parametrize("args", [["import-events"], ["import-events", "/nonexistent.csv"]])
def test_import_events_usage_errors_exit_non_zero(settings: Settings, args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code != 0
