"""Plug-ins the decision API finds through Python entry points.

``serving`` does not import ``experiments`` (dependencies point one way), yet a server built
outside the command line still wants experiment reports. Packages offer a report renderer under
the ``inboxlab.report_renderers`` entry-point group; the ``experiments`` package registers
``experiments.report:render_units`` there in ``pyproject.toml``.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import cast

from serving.routes import ReportRenderer

__all__ = ["REPORT_RENDERERS", "report_renderer"]

logger = logging.getLogger(__name__)

#: The entry-point group of report renderers.
REPORT_RENDERERS = "inboxlab.report_renderers"


def report_renderer(name: str | None = None) -> ReportRenderer | None:
    """The report renderer registered as ``name`` (default: the first one), or None.

    A renderer that fails to load is logged and skipped: reports then answer 404, and
    decisions are unaffected.

    Examples
    --------
    >>> report_renderer("no-such-renderer") is None
    True
    """
    for point in sorted(entry_points(group=REPORT_RENDERERS), key=lambda p: p.name):
        if name is not None and point.name != name:
            continue
        try:
            return cast(ReportRenderer, point.load())
        except Exception:
            logger.exception("report renderer %r failed to load", point.name)
    return None
