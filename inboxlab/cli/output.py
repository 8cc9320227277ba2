"""Shared terminal output for the commands: one console, progress bars, error exits."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from inboxlab.errors import InboxlabError

__all__ = ["console", "err_console", "fail", "listing", "progress_bar", "reporting_errors"]

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


def listing(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    whole: Collection[str] = (),
) -> Table:
    """A table of ``rows`` whose ``whole`` columns are never cut short or wrapped.

    Identifiers a user copies into the next command (a model's name, a key's id, an
    experiment's id) go in ``whole``; on a narrow terminal the other columns wrap instead.
    Lines only under the header, as in other command-line listings: the columns keep the
    width the borders would take.
    """
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, name in enumerate(columns):
        if name in whole:
            width = max(
                len(line)
                for cell in (name, *(row[i] for row in rows))
                for line in cell.splitlines() or [""]
            )
            table.add_column(name, no_wrap=True, min_width=width)
        else:
            table.add_column(name)
    for row in rows:
        table.add_row(*row)
    return table


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
