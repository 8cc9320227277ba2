"""Warnings of libraries that tell an operator nothing they can act on, silenced by message.

Each entry names one known warning by the start of its text and its category, so a new or
different warning of the same library still shows. Feast's import puts ``once`` filters for
``RuntimeWarning`` and ``DeprecationWarning`` in front of every other filter, so the code that
imports Feast calls :func:`quiet_library_warnings` again after it.
"""

from __future__ import annotations

import warnings

__all__ = ["QUIET", "quiet_library_warnings"]

#: (start of the message, category, where it comes from and why it is noise).
QUIET: tuple[tuple[str, type[Warning], str], ...] = (
    (
        "The ``noload`` loader strategy",
        DeprecationWarning,
        "mlflow's registry store uses a SQLAlchemy loader strategy that SQLAlchemy deprecates",
    ),
    (
        "Downcasting object dtype arrays on .fillna",
        FutureWarning,
        "dask, inside Feast's file offline store, on every materialization",
    ),
    (
        "On demand feature view is an experimental feature",
        RuntimeWarning,
        "Feast, on every apply of a repository with an on-demand view (request_time)",
    ),
)


def quiet_library_warnings() -> None:
    """Ignore the warnings of :data:`QUIET` in this process."""
    for message, category, _ in QUIET:
        warnings.filterwarnings("ignore", message=message, category=category)
