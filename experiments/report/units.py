"""Render the report of a served experiment from its unit table (one row per decision).

The decision API keeps experiments' units in its decision store and hands them to a report
renderer; this is that renderer. It is registered under the ``inboxlab.report_renderers``
entry-point group, so a server that must not import :mod:`experiments` directly (the
BentoML service in ``serving``) finds it as a plug-in.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from experiments.exports import analyze_file
from experiments.report.html import to_html
from experiments.report.serialize import to_dict
from inboxlab.errors import InvalidInputError
from inboxlab.experiment import ExperimentDefinition

__all__ = ["render_units"]


def render_units(
    definition: ExperimentDefinition, units: pd.DataFrame, fmt: Literal["html", "json"] | str
) -> str | dict[str, Any]:
    """Analyse ``units`` under ``definition``: HTML text for ``"html"``, a JSON dict for ``"json"``.

    Parameters
    ----------
    definition
        The stored experiment definition (control, arms, guardrails, segments).
    units
        One row per unit: ``arm``, metric columns, optional ``pscore`` and segment columns.
    fmt
        ``"html"`` or ``"json"``.

    Raises
    ------
    InvalidInputError
        For another ``fmt``, or when the units lack a column the definition needs.
    """
    if fmt not in ("html", "json"):
        raise InvalidInputError(f"report format must be 'html' or 'json', got {fmt!r}", field="fmt")
    # The analysis reads files with DuckDB; a temporary Parquet file keeps one code path for
    # served experiments and exported ones.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "units.parquet"
        units.to_parquet(path, index=False)
        result = analyze_file(path, definition=definition, experiment_id=definition.id)
    return to_html(result) if fmt == "html" else to_dict(result)
