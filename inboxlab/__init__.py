"""What every inboxlab package shares: settings, cross-package records, errors, the CLI."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
