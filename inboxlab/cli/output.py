"""Shared terminal output for the commands: one console, progress bars, error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from inboxlab.errors import InboxlabError

__all__ = ["console", "err_console", "fail", "progress_bar", "reporting_errors"]

console = Console()
err_console = Console(stderr=True)


def progress_bar() -> Progress:
    """A progress bar for long steps (hidden automatically when output is not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn inboxlab's own errors into a clear message and exit code 1."""
    try:
        yield
    except InboxlabError as exc:
        fail(str(exc))
