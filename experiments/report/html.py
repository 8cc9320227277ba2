"""The result as one self-contained HTML page: inline CSS, plots as base64 PNG, no network."""

from __future__ import annotations

from importlib import resources

import jinja2

from experiments.analysis import ExperimentResult
from experiments.report import plots
from experiments.report.markdown import ARM_HEADER, arm_rows, fmt_pct, segment_rows, title

__all__ = ["to_html"]

_REC_CLASS = {"ship": "ship", "keep running": "keep", "stop": "stop"}


def _template() -> jinja2.Template:
    source = resources.files("experiments.report").joinpath("templates/report.html.j2")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["pct"] = fmt_pct
    return env.from_string(source.read_text(encoding="utf-8"))


def to_html(result: ExperimentResult, *, with_plots: bool = True) -> str:
    """Render the full report page.

    ``with_plots=False`` skips matplotlib (faster; for previews and tests of the text).
    """
    template = _template()
    figures = []
    if with_plots:
        candidates = [
            (plots.posterior_plot, "Posterior density of each arm's rate"),
            (plots.lift_plot, f"Lift vs {result.control} with 95% intervals"),
            (plots.cumulative_plot, "Cumulative metric over time"),
            (plots.allocation_plot, "Allocation over time"),
        ]
        for make, caption in candidates:
            png = make(result)
            if png is not None:
                figures.append({"png": png, "caption": caption})
    metrics = [
        {"name": m.metric, "rows": arm_rows(m), "arms": [a.arm for a in m.arms]}
        for m in (result.primary, *result.secondary)
    ]
    segments = segment_rows(result)
    return template.render(
        title=title(result),
        result=result,
        rec_class=_REC_CLASS[result.recommendation.decision],
        total_units=f"{sum(a.units for a in result.primary.arms):,}",
        metrics=metrics,
        header=ARM_HEADER,
        plots=figures,
        segments=segments,
    )
