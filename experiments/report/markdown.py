"""The result as Markdown: for the terminal (rich renders it) and for pasting into tickets."""

from __future__ import annotations

import math

from experiments.analysis import ArmResult, ExperimentResult, MetricResult
from experiments.means import Lift

__all__ = ["ARM_HEADER", "arm_rows", "fmt_pct", "fmt_value", "title", "to_markdown"]


def fmt_pct(x: float | None, signed: bool = False, digits: int = 1) -> str:
    """A probability or lift as a percentage; very sure values are capped at >99.9 %.

    Examples
    --------
    >>> fmt_pct(0.95), fmt_pct(0.99996), fmt_pct(-0.0123, signed=True), fmt_pct(float("nan"))
    ('95.0%', '>99.9%', '-1.2%', '–')
    """
    if x is None or not math.isfinite(x):
        return "–"
    if not signed and 0.999 < x < 1.0:
        return ">99.9%"
    if not signed and 0.0 < x < 0.001:
        return "<0.1%"
    return f"{x:+.{digits}%}" if signed else f"{x:.{digits}%}"


def fmt_value(x: float, kind: str) -> str:
    """A rate as a percentage, a numeric mean with 3 significant decimals."""
    if not math.isfinite(x):
        return "–"
    return f"{x:.2%}" if kind == "binary" else f"{x:,.3f}"


def _lift(lift: Lift | None) -> str:
    if lift is None:
        return "control"
    lo, hi = fmt_pct(lift.ci_low, True), fmt_pct(lift.ci_high, True)
    return f"{fmt_pct(lift.estimate, True)} [{lo}, {hi}]"


def title(result: ExperimentResult) -> str:
    """The report title."""
    return f"Experiment {result.experiment_id}: {result.primary.metric}"


def arm_rows(metric: MetricResult) -> list[list[str]]:
    """One row of display strings per arm (shared by Markdown and HTML)."""
    rows = []
    for a in metric.arms:
        rows.append(_arm_row(a, metric.kind))
    return rows


ARM_HEADER = [
    "Arm",
    "Units",
    "Observed",
    "Posterior (95% CI)",
    "Lift vs control (95% CI)",
    "Chance to beat control",
    "P(best)",
    "Expected loss",
    "IPW lift",
]


def _arm_row(a: ArmResult, kind: str) -> list[str]:
    name = f"{a.arm} (control)" if a.is_control and a.arm != "control" else a.arm
    lo, hi = fmt_value(a.ci_low, kind), fmt_value(a.ci_high, kind)
    post = f"{fmt_value(a.posterior_mean, kind)} [{lo}, {hi}]"
    ctb = fmt_pct(a.lift.chance_to_beat) if a.lift else "–"
    # Loss of a rate is shown in percentage points: "0.10 pp" of click rate given up.
    loss = (
        f"{a.expected_loss * 100:.2f} pp"
        if kind == "binary" and math.isfinite(a.expected_loss)
        else fmt_value(a.expected_loss, kind)
    )
    ipw = _lift(a.ipw_lift) if a.ipw_lift else "–"
    return [
        name,
        f"{a.units:,}",
        fmt_value(a.value, kind),
        post,
        _lift(a.lift),
        ctb,
        fmt_pct(a.probability_best),
        loss,
        ipw,
    ]


def segment_rows(result: ExperimentResult) -> list[list[str]]:
    """Rows of the per-segment table: column, level, arm, units, lifts, chance, shrinkage."""
    return [
        [
            s.column,
            s.level,
            s.arm,
            f"{s.units:,}",
            fmt_pct(s.raw_lift, True),
            f"{fmt_pct(s.lift, True)} [{fmt_pct(s.ci_low, True)}, {fmt_pct(s.ci_high, True)}]",
            fmt_pct(s.chance_to_beat),
            f"{s.shrinkage:.2f}",
        ]
        for s in result.segments
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def to_markdown(result: ExperimentResult) -> str:
    """Markdown with the recommendation, every arm, guardrails, SRM, segments and warnings."""
    rec = result.recommendation
    lines = [f"# {title(result)}", "", f"**{rec.text}** _(rule: {rec.rule})_", ""]
    lines += [f"Type: {result.experiment_type} · control: {result.control}", ""]
    for metric in (result.primary, *result.secondary):
        lines += [f"## {metric.metric}", "", *_table(ARM_HEADER, arm_rows(metric)), ""]
    if result.guardrails:
        rows = [
            [
                g.metric,
                g.arm,
                fmt_pct(g.margin),
                f"{g.control_rate:.3%}",
                f"{g.arm_rate:.3%}",
                fmt_pct(g.probability_worse),
                "⚠ FLAGGED" if g.flagged else "ok",
            ]
            for g in result.guardrails
        ]
        header = [
            "Guardrail",
            "Arm",
            "Margin",
            "Control",
            "Arm rate",
            "P(worse by > margin)",
            "Status",
        ]
        lines += ["## Guardrails", "", *_table(header, rows), ""]
    srm = result.srm
    status = "⚠ MISMATCH" if srm.flagged else "ok"
    lines += ["## Sample ratio", "", f"{status}: p = {srm.p_value:.3g} ({srm.method})", ""]
    if result.segments:
        rows = segment_rows(result)
        header = [
            "Segment",
            "Level",
            "Arm",
            "Units",
            "Raw lift",
            "Shrunk lift (95% CI)",
            "Chance to beat",
            "Shrinkage",
        ]
        lines += ["## Segments (shrunk toward the overall effect)", "", *_table(header, rows), ""]
    if result.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in result.warnings], ""]
    return "\n".join(lines)
