from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from inboxlab.cli.experiments import register
from inboxlab.settings import Settings


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def data_file(units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]) -> Path:
    return write_table(units({"a": 0.05, "b": 0.07}, 20_000, seed=9), "export.csv")


def test_report_writes_json(app: typer.Typer, data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--data",
            str(data_file),
            "--control",
            "a",
            "--format",
            "json",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["recommendation"]["arm"] == "b"


def test_report_prints_markdown(app: typer.Typer, data_file: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--data",
            str(data_file),
            "--control",
            "a",
            "--metric",
            "click",
            "--segment",
            "tier",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Ship b" in res.output and "| a (control) |" in res.output


def test_report_uses_a_definition_for_the_control(
    app: typer.Typer, data_file: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("id: exp-7\ntype: ab\narms: [{id: a, control: true}, {id: b}]\n")
    res = CliRunner().invoke(
        app, ["report", "--data", str(data_file), "--definition", str(spec), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["experiment_id"] == "exp-7"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "exp-1"], "experiment 'exp-1' does not exist"),
        (["report"], "give an EXPERIMENT_ID or --data"),
        (["report", "--data", "DATA"], "--control"),
        (["report", "--data", "DATA", "--control", "zz"], "control arm 'zz'"),
        (["report", "--data", "DATA", "--control", "a", "--metric", "nope"], "'nope'"),
        (["report", "--data", "missing.csv", "--control", "a"], "does not exist"),
    ],
)
def test_report_errors_are_clear(
    app: typer.Typer, data_file: Path, args: list[str], message: str, settings: Settings
) -> None:
    res = CliRunner().invoke(app, [str(data_file) if a == "DATA" else a for a in args])
    assert res.exit_code == 2
    assert message in res.output


def test_ope_prints_estimates(app: typer.Typer, write_table: Callable[..., Path]) -> None:
    rng = np.random.default_rng(1)
    n = 5000
    arm = rng.choice(["a", "b"], n, p=[0.7, 0.3])
    df = pd.DataFrame(
        {
            "arm": arm,
            "click": (rng.random(n) < 0.1).astype(int),
            "pscore": np.where(arm == "a", 0.7, 0.3),
        }
    )
    res = CliRunner().invoke(
        app,
        [
            "ope",
            "--data",
            str(write_table(df)),
            "--reward",
            "click",
            "--bootstrap",
            "100",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {e["policy"] for e in out["estimates"]} == {"uniform", "current bandit"}
    table = CliRunner().invoke(
        app, ["ope", "--data", str(write_table(df)), "--reward", "click", "--bootstrap", "100"]
    )
    assert table.exit_code == 0 and "SNIPS" in table.output


def test_ope_rejects_missing_propensities(
    app: typer.Typer, write_table: Callable[..., Path]
) -> None:
    df = pd.DataFrame({"arm": ["a", "b"], "click": [1, 0]})
    res = CliRunner().invoke(app, ["ope", "--data", str(write_table(df)), "--reward", "click"])
    assert res.exit_code == 2 and "pscore" in res.output
