"""The decision API as a BentoML service (``bentoml serve serving.bento.service:Inboxlab``).

Import the modules themselves: ``serving.bento.state`` (making a FastAPI app's lifespan state
reach its requests when another server runs it) and ``serving.bento.service`` (the service,
which builds the app when imported). The package re-exports nothing, so importing it never
loads BentoML.
"""

from __future__ import annotations

__all__: list[str] = []
