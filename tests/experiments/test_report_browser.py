"""What a person sees: the HTML report rendered by headless Chromium."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from experiments.exports import analyze_file
from experiments.report import to_html

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--hide-scrollbars",
    "--virtual-time-budget=3000",
]


@pytest.mark.browser
def test_report_renders_title_winner_and_every_arm_in_chromium(
    chromium: str,
    units: Callable[..., pd.DataFrame],
    write_table: Callable[..., Path],
    tmp_path: Path,
) -> None:
    arms = {"control": 0.05, "emoji-subject": 0.065, "question-subject": 0.05}
    df = units(arms, 40_000, seed=21)
    result = analyze_file(
        write_table(df),
        control="control",
        metrics=["click", "revenue"],
        segments=["tier"],
        experiment_id="subject-line-test",
    )
    page = tmp_path / "report.html"
    page.write_text(to_html(result), encoding="utf-8")
    shot = tmp_path / "report.png"

    subprocess.run(
        [chromium, *FLAGS, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 50_000  # a rendered page with plots, not a blank canvas

    dom = subprocess.run(
        [chromium, *FLAGS, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<title>Experiment subject-line-test: click</title>" in dom
    assert 'id="recommendation"' in dom
    assert "Ship emoji-subject" in dom
    for arm in arms:
        assert f'data-arm="{arm}"' in dom
    assert dom.count("data:image/png;base64,") == 4
