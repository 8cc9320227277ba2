"""The inboxlab exception tree.

Domain code raises these; only the HTTP edge (``serving``) and the command line translate them
into status codes and exit codes::

    InboxlabError
    ├── ConfigurationError        settings that cannot work (bad path, placeholder secret)
    ├── InvalidInputError         a value that breaks a contract (names the field and the rule)
    │   └── ImportValidationError one or more rows of an import file are invalid
    ├── NotFoundError             an experiment, model, key or recipient that does not exist
    ├── ConflictError             the request contradicts stored state (e.g. a duplicate id)
    └── StoreError                a store (event log, decision store, feature store) failed
        └── EventLogCorruptError  the event log holds data that cannot be read back
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "EventLogCorruptError",
    "ImportValidationError",
    "InboxlabError",
    "InvalidInputError",
    "NotFoundError",
    "RowError",
    "StoreError",
]


class InboxlabError(Exception):
    """Base class of every error inboxlab raises on purpose."""


class ConfigurationError(InboxlabError):
    """The settings cannot work as given."""


class InvalidInputError(InboxlabError, ValueError):
    """A value breaks a contract. ``field`` names it, the message says what is allowed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class RowError:
    """One invalid cell of an import file: 1-based data row number, column and reason."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.reason}"


class ImportValidationError(InvalidInputError):
    """An import file has invalid rows; nothing was written.

    ``errors`` holds the first errors found (in row order) and ``total`` counts all of them.
    """

    def __init__(self, source: str, errors: Sequence[RowError], total: int) -> None:
        self.source = source
        self.errors = tuple(errors)
        self.total = total
        shown = "\n".join(f"  {e}" for e in self.errors)
        more = f"\n  ... and {total - len(self.errors)} more" if total > len(self.errors) else ""
        super().__init__(f"{source}: {total} invalid value(s), nothing imported\n{shown}{more}")


class NotFoundError(InboxlabError, LookupError):
    """The thing asked for does not exist."""


class ConflictError(InboxlabError):
    """The request contradicts stored state."""


class StoreError(InboxlabError):
    """A store failed to read or write."""


class EventLogCorruptError(StoreError):
    """The event log holds a file that cannot be read back."""
