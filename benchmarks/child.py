"""Run a benchmark step in a child process and read the JSON object it prints last.

A fresh process per step gives each its own peak memory and no state left by another step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_child(args: Sequence[str], env: Mapping[str, str], *, timeout: float) -> dict[str, Any]:
    """``python ARGS`` from the repository root; the JSON object on its last stdout line."""
    out = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
