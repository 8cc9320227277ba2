"""The decision API served by BentoML: ``bentoml serve serving.bento.service:Inboxlab``.

The FastAPI app of :func:`serving.app.create_app` is mounted at ``/`` unchanged, so
``bentoml serve`` answers the same ``/v1/...`` endpoints, keys and OpenAPI docs as
``inboxlab serve``. Settings come from the environment (``INBOXLAB_DATA_DIR``,
``INBOXLAB_MLFLOW__TRACKING_URI``, ...), read when this module is imported; building the app is
cheap, and the stores and models open in its lifespan, which BentoML runs in each worker.

BentoML answers ``/healthz``, ``/livez`` and ``/readyz`` itself, before the mounted app sees
them; its readiness calls :meth:`Inboxlab.__is_ready__`, which pings the decision store, so
``/readyz`` means what it means under ``inboxlab serve``. BentoML's own Prometheus endpoint is
disabled, so ``/metrics`` reaches the app (any valid key). Experiment reports come from the
renderer registered under the ``inboxlab.report_renderers`` entry-point group (the
``experiments`` package registers one), since ``serving`` does not import ``experiments``; with
no renderer installed, reports answer 404.
"""

from __future__ import annotations

import warnings

from inboxlab.settings import get_settings
from serving.app import Resources, create_app
from serving.bento.state import LifespanState
from serving.plugins import report_renderer

with warnings.catch_warnings():
    # BentoML 1.4's import uses a pathspec pattern name pathspec 1.x deprecates and a pydantic
    # hook pydantic 2.11 deprecates; without this, importing the service fails wherever
    # warnings are errors (pytest collects this module for doctests).
    warnings.filterwarnings("ignore", "GitWildMatchPattern", DeprecationWarning)
    warnings.filterwarnings(
        "ignore", "The `__get_pydantic_core_schema__` method", DeprecationWarning
    )
    from bentoml import asgi_app, service

__all__ = ["Inboxlab", "app"]

#: The mounted app; its lifespan opens the decision store, online features and models.
app = create_app(get_settings(), report_renderer=report_renderer())
_state = LifespanState(app)


@service(
    name="inboxlab",
    workers=1,
    # Batch decisions for a whole audience stream for longer than BentoML's 60 s default.
    traffic={"timeout": 600},
    metrics={"enabled": False},
)
@asgi_app(app, path="/")
class Inboxlab:
    """Eligibility, variants and send times for email, with logged propensities."""

    def __is_ready__(self) -> bool:
        """Ready once the app's lifespan has opened a decision store that answers."""
        resources = _state.get("resources")
        return isinstance(resources, Resources) and resources.store.ping()
