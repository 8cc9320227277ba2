"""The decision API: eligibility, variants, send times, outcomes.

Import the modules themselves (``serving.bandit``, ``serving.assignment``,
``serving.eligibility``, ``serving.keys``, ``serving.store``, ``serving.app``); the package
re-exports nothing so that importing one piece never loads the web stack or the database.
"""

from __future__ import annotations

__all__: list[str] = []
