"""Render one :class:`~experiments.analysis.ExperimentResult` as JSON, Markdown or HTML.

Reports only format: every number comes from the result object.
"""

from __future__ import annotations

from experiments.report.html import to_html
from experiments.report.markdown import to_markdown
from experiments.report.serialize import to_dict
from experiments.report.units import render_units

__all__ = ["render_units", "to_dict", "to_html", "to_markdown"]
