from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from experiments.analysis import ExperimentResult
from experiments.exports import analyze_file
from experiments.report import to_dict, to_html, to_markdown


@pytest.fixture
def result(
    units: Callable[..., pd.DataFrame], write_table: Callable[..., Path]
) -> ExperimentResult:
    df = units({"control": 0.05, "emoji": 0.065, "question": 0.05}, 30_000, seed=5)
    return analyze_file(
        write_table(df), control="control", metrics=["click", "revenue"], segments=["tier"]
    )


def test_json_is_strict_and_holds_every_arm(result: ExperimentResult) -> None:
    d = json.loads(json.dumps(to_dict(result), allow_nan=False))
    assert d["arms"] == ["control", "emoji", "question"]
    assert d["recommendation"]["decision"] == "ship"
    assert d["recommendation"]["arm"] == "emoji"
    assert [a["arm"] for a in d["primary"]["arms"]] == d["arms"]
    assert d["secondary"][0]["metric"] == "revenue"
    assert d["srm"]["flagged"] is False
    assert d["timeline"][0]["start"].endswith("+00:00")


def test_markdown_shows_recommendation_rule_and_every_arm(result: ExperimentResult) -> None:
    md = to_markdown(result)
    assert md.startswith("# Experiment units: click")
    assert "**Ship emoji:" in md and "(rule: winner)" in md
    for arm in ("control", "emoji", "question"):
        assert re.search(rf"^\| {arm} \|", md, re.MULTILINE)
    assert "## Guardrails" in md and "## Segments" in md


def test_html_is_self_contained_with_plots(result: ExperimentResult) -> None:
    html = to_html(result)
    assert "<title>Experiment units: click</title>" in html
    assert 'id="recommendation"' in html and "Ship emoji" in html
    assert html.count("data:image/png;base64,") == 4
    # No network: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    for arm in ("control", "emoji", "question"):
        assert f'data-arm="{arm}"' in html


def test_html_escapes_arm_names(write_table: Callable[..., Path]) -> None:
    df = pd.DataFrame({"arm": ["<b>x</b>"] * 200 + ["c"] * 200, "click": [0, 1] * 200})
    html = to_html(analyze_file(write_table(df), control="c"), with_plots=False)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
