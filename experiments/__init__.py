"""Bayesian experiment analysis: sufficient statistics in, frozen results out.

Typical use::

    from experiments import analyze_file, to_html
    result = analyze_file(Path("export.parquet"), control="control")
    Path("report.html").write_text(to_html(result))

Modules: :mod:`~experiments.definition` (validated experiment definitions),
:mod:`~experiments.statistics` (sufficient statistics), :mod:`~experiments.source` (DuckDB
aggregation), :mod:`~experiments.bayes` (Beta-binomial engine), :mod:`~experiments.means`
(revenue and IPW effects), :mod:`~experiments.srm`, :mod:`~experiments.segments`,
:mod:`~experiments.decision`, :mod:`~experiments.analysis`, :mod:`~experiments.exports`,
:mod:`~experiments.ope` (off-policy evaluation) and :mod:`~experiments.report`.
"""

from __future__ import annotations

from experiments.analysis import (
    ArmResult,
    ExperimentResult,
    GuardrailResult,
    MetricResult,
    analyze,
)
from experiments.decision import Recommendation
from experiments.exports import analyze_file
from experiments.ope import OpeEstimate, OpeResult, evaluate_file, evaluate_policies
from experiments.report import to_dict, to_html, to_markdown
from experiments.source import ExperimentData, aggregate
from experiments.srm import SrmResult
from inboxlab.experiment import ExperimentDefinition, load_definition, parse_definition

__all__ = [
    "ArmResult",
    "ExperimentData",
    "ExperimentDefinition",
    "ExperimentResult",
    "GuardrailResult",
    "MetricResult",
    "OpeEstimate",
    "OpeResult",
    "Recommendation",
    "SrmResult",
    "aggregate",
    "analyze",
    "analyze_file",
    "evaluate_file",
    "evaluate_policies",
    "load_definition",
    "parse_definition",
    "to_dict",
    "to_html",
    "to_markdown",
]
