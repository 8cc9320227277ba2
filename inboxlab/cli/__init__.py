"""The ``inboxlab`` command: the composition root, the only code that imports every package.

Each submodule adds its commands with ``register(app)``; heavy imports happen inside the
commands so that ``inboxlab --help`` stays instant.
"""

from __future__ import annotations

import logging

import typer

from inboxlab.cli import (
    demo,
    events,
    experiments,
    features,
    forget,
    keys,
    loop,
    models,
    serve,
    simulation,
)
from inboxlab.library_warnings import quiet_library_warnings

__all__ = ["app", "main"]

app = typer.Typer(
    name="inboxlab",
    help=(
        "inboxlab: personalization and experimentation for email. "
        "Set INBOXLAB_DATA_DIR to move the runtime data (default ./data)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    simulation,
    events,
    features,
    models,
    keys,
    experiments,
    serve,
    forget,
    demo,
    loop,
):
    _module.register(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_library_warnings()


def main() -> None:
    """Entry point of the ``inboxlab`` console script."""
    app()
