"""Matplotlib figures for the HTML report, returned as base64 PNG data (no files, no network).

Figures are built with the object API (``matplotlib.figure.Figure``), never ``pyplot``, so
rendering holds no global state and is safe in a server; matplotlib is imported only here.
"""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import stats

from experiments.analysis import ExperimentResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]

__all__ = ["allocation_plot", "cumulative_plot", "lift_plot", "posterior_plot"]

_COLOURS = [
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
]


def _figure(height: float = 3.2) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(8.0, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def posterior_plot(result: ExperimentResult) -> str | None:
    """Posterior densities of every arm's rate (binary primary metric only)."""
    if not result.posteriors:
        return None
    lo = min(stats.beta.ppf(1e-4, a, b) for _, a, b in result.posteriors)
    hi = max(stats.beta.ppf(1 - 1e-4, a, b) for _, a, b in result.posteriors)
    x = np.linspace(lo, hi, 400)
    fig = _figure()
    ax = fig.add_subplot()
    for i, (arm, a, b) in enumerate(result.posteriors):
        ax.plot(x, stats.beta.pdf(x, a, b), color=_colour(i), label=arm)
        ax.fill_between(x, stats.beta.pdf(x, a, b), color=_colour(i), alpha=0.15)
    ax.set_xlabel(f"{result.primary.metric} rate")
    ax.set_ylabel("posterior density")
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    ax.legend(frameon=False)
    return _png(fig)


def lift_plot(result: ExperimentResult) -> str | None:
    """Relative lift of each variant with its 95 % interval (and the IPW one when present)."""
    arms = [a for a in result.primary.arms if a.lift is not None]
    rows = [(a.arm, a.lift) for a in arms if a.lift is not None and math.isfinite(a.lift.estimate)]
    if not rows:
        return None
    fig = _figure(0.6 + 0.5 * len(rows))
    ax = fig.add_subplot()
    for i, (_, lift) in enumerate(rows):
        colour = "#2a9d4b" if lift.ci_low > 0 else "#c44e52" if lift.ci_high < 0 else "#4c72b0"
        ax.errorbar(
            [lift.estimate],
            [i],
            xerr=[[lift.estimate - lift.ci_low], [lift.ci_high - lift.estimate]],
            fmt="o",
            color=colour,
            capsize=4,
        )
    ax.axvline(0.0, color="#555", lw=1, ls="--")
    ax.set_yticks(range(len(rows)), [arm for arm, _ in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:+.0%}")
    ax.set_xlabel(f"lift in {result.primary.metric} vs {result.control} (95% interval)")
    return _png(fig)


def _series(
    result: ExperimentResult,
) -> tuple[list[datetime], dict[str, FloatArray], dict[str, FloatArray]]:
    starts = sorted({p.start for p in result.timeline})
    index = {s: i for i, s in enumerate(starts)}
    units: dict[str, FloatArray] = defaultdict(lambda: np.zeros(len(starts)))
    totals: dict[str, FloatArray] = defaultdict(lambda: np.zeros(len(starts)))
    for p in result.timeline:
        units[p.arm][index[p.start]] += p.units
        totals[p.arm][index[p.start]] += p.total
    return list(starts), dict(units), dict(totals)


def _dates(starts: list[datetime]) -> FloatArray:
    # Matplotlib's date axis counts days since its default epoch, 1970-01-01 UTC.
    return np.array([s.timestamp() / 86400.0 for s in starts], dtype=np.float64)


def cumulative_plot(result: ExperimentResult) -> str | None:
    """Cumulative primary metric per unit over time, per arm."""
    if not result.timeline:
        return None
    starts, units, totals = _series(result)
    x = _dates(starts)
    fig = _figure()
    ax = fig.add_subplot()
    ax.xaxis_date()
    for i, arm in enumerate(result.arms):
        if arm not in units:
            continue
        n = np.cumsum(units[arm])
        with np.errstate(invalid="ignore", divide="ignore"):
            ax.plot(x, np.cumsum(totals[arm]) / n, color=_colour(i), label=arm)
    ax.set_ylabel(f"cumulative {result.primary.metric} per unit")
    if result.primary.kind == "binary":
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    ax.legend(frameon=False)
    fig.autofmt_xdate()
    return _png(fig)


def allocation_plot(result: ExperimentResult) -> str | None:
    """Share of units each arm received in each time bucket (stacked)."""
    if not result.timeline:
        return None
    starts, units, _ = _series(result)
    x = _dates(starts)
    arms = [a for a in result.arms if a in units]
    matrix = np.vstack([units[a] for a in arms])
    share = matrix / np.maximum(matrix.sum(axis=0), 1)
    fig = _figure()
    ax = fig.add_subplot()
    ax.xaxis_date()
    ax.stackplot(x, share, labels=arms, colors=[_colour(result.arms.index(a)) for a in arms])
    ax.set_ylim(0, 1)
    ax.set_ylabel("allocation")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(frameon=False, loc="upper left", ncols=min(len(arms), 5))
    fig.autofmt_xdate()
    return _png(fig)
