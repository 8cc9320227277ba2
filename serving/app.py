"""The HTTP API: app factory, typed lifespan, health, metrics, outcomes and erasure.

Nothing happens at import time: :func:`create_app` builds an app from settings, and its
lifespan opens the decision store when the server starts and closes it on shutdown. Domain
errors are translated into status codes here, and only here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict, cast

import numpy as np
from fastapi import Body, Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path

from inboxlab.errors import ConflictError, InboxlabError, InvalidInputError, NotFoundError
from inboxlab.records import EventRecord
from inboxlab.settings import Settings
from serving.auth import AdminKey, AnyKey, OutcomesKey
from serving.batch_process import BatchProcesses, EngineFactory, engine_from_settings
from serving.coalesce import Coalescer
from serving.decide import DecisionEngine
from serving.fastlane import DecisionFastLane
from serving.keys import KeyRing
from serving.metrics import CONTENT_TYPE_LATEST, HttpMetrics, MetricsMiddleware
from serving.policy import reward_rule
from serving.responses import documented
from serving.routes import ReportRenderer, router
from serving.scoring.models import ModelSet
from serving.store import DecisionStore, RewardRule
from serving.store.experiments import ExperimentStore
from serving.store.writer import DecisionWriter

if TYPE_CHECKING:
    from features.online import FeatureClient

__all__ = ["MAX_OUTCOMES_PER_CALL", "Resources", "create_app", "open_features"]


class _ModelPoller:
    """Reloads moved champion aliases every ``interval`` seconds on a daemon thread."""

    def __init__(self, models: ModelSet, interval: float) -> None:
        self._models = models
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._models.refresh()
            except Exception:  # keep polling; the models in use stay loaded
                logger.exception("model refresh failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


logger = logging.getLogger(__name__)

#: Larger outcome uploads belong in ``inboxlab import-events``.
MAX_OUTCOMES_PER_CALL = 10_000


@dataclass(frozen=True, slots=True)
class Resources:
    """What the lifespan opens and every request shares."""

    settings: Settings
    store: DecisionStore
    keys: KeyRing
    reward_rules: Mapping[str, RewardRule] = field(default_factory=dict)
    engine: DecisionEngine | None = None
    report_renderer: ReportRenderer | None = None
    coalescer: Coalescer | None = None
    batch_processes: BatchProcesses | None = None


class _ExperimentRules(Mapping[str, RewardRule]):
    """Reward rules: explicit ones first, else derived from the stored experiment definition."""

    def __init__(self, explicit: Mapping[str, RewardRule], engine: DecisionEngine) -> None:
        self._explicit = dict(explicit)
        self._engine = engine

    def __getitem__(self, experiment_id: str) -> RewardRule:
        if experiment_id in self._explicit:
            return self._explicit[experiment_id]
        try:
            return reward_rule(self._engine.definition(experiment_id))
        except NotFoundError:
            raise KeyError(experiment_id) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._explicit)

    def __len__(self) -> int:
        return len(self._explicit)


class LifespanState(TypedDict):
    """The lifespan's state, exposed to requests as ``request.state``."""

    resources: Resources


class OutcomesAccepted(BaseModel):
    """The answer to ``POST /v1/outcomes``."""

    stored: int = Field(description="New outcomes written.")
    duplicates: int = Field(description="Outcomes already stored (same event_id or decision+kind).")
    counted: int = Field(description="Outcomes credited as a reward to a bandit arm.")


class ErasureDone(BaseModel):
    """The answer to ``DELETE /v1/recipients/{recipient_id}``."""

    recipient_id: str
    decisions: int
    outcomes: int
    events: int = Field(description="Events removed from the event log.")
    feature_rows: int = Field(description="Feature snapshot rows removed.")
    online_rows: int = Field(description="Online feature store rows removed.")
    audit_id: int


def _flush_decisions(resources: Resources) -> None:
    """Commit queued decisions (group commit) before reading the decision table."""
    engine = resources.engine
    if engine is not None and engine.writer is not None:
        engine.writer.flush()


def _resources(request: Request) -> Resources:
    return cast(Resources, request.state.resources)


Store = Annotated[Resources, Depends(_resources)]
OutcomesBody = Annotated[
    EventRecord
    | Annotated[list[EventRecord], Field(min_length=1, max_length=MAX_OUTCOMES_PER_CALL)],
    Body(description="One event record, or a list of them."),
]


#: FastAPI's native OpenTelemetry instrumentation switched off (``api.opentelemetry``).
_NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def _field_path(loc: tuple[Any, ...]) -> str:
    # Union members add their type name to the location; drop it so users see their field.
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p == "EventRecord"))]
    return ".".join(parts)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": f"invalid request: {summary}", "errors": errors},
    )


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    codes: list[tuple[type[InboxlabError], int]] = [
        (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
        (NotFoundError, status.HTTP_404_NOT_FOUND),
        (ConflictError, status.HTTP_409_CONFLICT),
    ]
    code = next((c for kind, c in codes if isinstance(exc, kind)), 503)
    content: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, InvalidInputError) and exc.field:
        # The same shape as a request that fails validation: a client reads one list.
        content["errors"] = [{"field": exc.field, "message": str(exc), "type": "invalid_input"}]
    return JSONResponse(status_code=code, content=content)


async def _method_not_allowed(request: Request, _exc: Exception) -> JSONResponse:
    # Starlette answers with the methods of the first route whose path matches, but a path
    # such as /v1/experiments is two routes (GET and POST): list every method the API
    # documents for the path (every route is in the OpenAPI document).
    path = request.url.path
    methods = {
        method.upper()
        for template, operations in request.app.openapi().get("paths", {}).items()
        if compile_path(template)[0].match(path)
        for method in operations
    }
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(sorted(methods))},
    )


async def _store_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("decision store failed: %s", exc)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "the decision store is unavailable; retry later"},
    )


def open_features(settings: Settings) -> FeatureClient | None:
    """The online feature client of the configured store, or ``None`` (logged) if absent."""
    from features.store import online_client

    try:
        return online_client(settings)  # the fast path of the SQLite or Redis store
    except Exception as exc:  # serve with cold-start defaults rather than not at all
        logger.error("online features unavailable (%s); decisions use defaults", exc)
        return None


def create_app(
    settings: Settings,
    *,
    reward_rules: Mapping[str, RewardRule] | None = None,
    features: FeatureClient | Literal["settings"] | None = "settings",
    models: ModelSet | None = None,
    report_renderer: ReportRenderer | None = None,
    rng: np.random.Generator | None = None,
    batch_engine: EngineFactory | None = None,
) -> FastAPI:
    """The inboxlab API for ``settings``.

    Parameters
    ----------
    settings : Settings
        Where the decision store, online features and model registry live.
    reward_rules : mapping of str to RewardRule, optional
        Reward kind and attribution window per experiment id, overriding the rule that the
        stored experiment definition implies (others reward a click in 7 days).
    features : FeatureClient or None, optional
        Online features; by default the store configured in ``settings`` (``None``: defaults).
    models : ModelSet, optional
        The champion models; by default loaded from the MLflow registry of ``settings``.
    report_renderer : callable, optional
        Renders experiment reports (supplied by the command line, which knows ``experiments``).
    rng : numpy.random.Generator, optional
        Randomness of the decisions; by default fresh OS entropy.
    batch_engine : callable, optional
        Builds the engine of a batch process (``decisions.batch_processes``). By default the
        settings' own stores and champions, and only when the app opens them itself: with
        ``features`` or ``models`` given, batches are decided in the worker.
    """
    metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[LifespanState]:
        store = DecisionStore(settings.decision_store_url)
        store.create_schema()
        logger.info("decision store open at %s", store.engine.url.render_as_string())
        client = open_features(settings) if features == "settings" else features
        model_set = models
        if model_set is None:
            model_set = ModelSet(settings)
            model_set.refresh()
        d = settings.decisions
        writer = (
            DecisionWriter(store, linger=d.group_commit_linger_ms / 1e3) if d.group_commit else None
        )
        engine = DecisionEngine(
            settings,
            store,
            ExperimentStore(store.engine),
            client,
            model_set,
            rng or np.random.default_rng(),
            writer=writer,
        )
        factory = batch_engine
        if factory is None and features == "settings" and models is None:
            factory = engine_from_settings
        processes = None
        if factory is not None and d.batch_processes > 0:
            processes = BatchProcesses(
                settings,
                processes=d.batch_processes,
                min_bytes=d.batch_process_min_bytes,
                factory=factory,
                idle_seconds=d.batch_process_idle_seconds,
            )
            await run_in_threadpool(processes.warm)
        poller = _ModelPoller(model_set, settings.decisions.model_poll_seconds)
        if models is None:
            poller.start()
        try:
            yield {
                "resources": Resources(
                    settings=settings,
                    store=store,
                    keys=KeyRing(store.engine),
                    reward_rules=_ExperimentRules(reward_rules or {}, engine),
                    engine=engine,
                    report_renderer=report_renderer,
                    coalescer=Coalescer(
                        engine,
                        max_group=d.coalesce_max_group,
                        on_group=metrics.decision_group.observe,
                    ),
                    batch_processes=processes,
                )
            }
        finally:
            if processes is not None:
                processes.close()
            poller.stop()
            engine.close()  # commits every queued decision before the store closes
            store.close()

    app = FastAPI(
        title="inboxlab",
        summary="Eligibility, variants and send times for email, with logged propensities.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=None if settings.api.opentelemetry else _NO_TELEMETRY,
    )
    app.add_middleware(DecisionFastLane)  # inside the metrics: its decisions are counted
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InboxlabError, _domain_error)
    app.add_exception_handler(SQLAlchemyError, _store_error)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
    def readyz(resources: Store) -> JSONResponse:
        """The decision store answers."""
        if resources.store.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "unavailable", "detail": "the decision store does not answer"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get(
        "/metrics", tags=["operations"], response_class=Response, responses=documented(401, 403)
    )
    def metrics_endpoint(_key: AnyKey) -> Response:
        """Prometheus metrics (any valid key)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/outcomes", tags=["outcomes"], responses=documented(400, 401, 403, 422, 503))
    def post_outcomes(
        payload: OutcomesBody, resources: Store, _key: OutcomesKey
    ) -> OutcomesAccepted:
        """Store outcomes idempotently and credit bandit rewards.

        The same ``event_id``, or the same (``decision_id``, ``kind``), counts once. A reward
        counts when its decision was sent in an experiment, the kind is the experiment's reward
        (click by default) and it arrives within the attribution window; machine opens never
        count as opens.
        """
        events = [payload] if isinstance(payload, EventRecord) else payload
        _flush_decisions(resources)  # a reward must find its decision, however recent
        summary = resources.store.record_outcomes(events, rules=resources.reward_rules)
        return OutcomesAccepted(
            stored=summary.stored, duplicates=summary.duplicates, counted=summary.counted
        )

    @app.post("/v1/admin/reload-models", tags=["operations"], responses=documented(401, 403))
    def reload_models(resources: Store, _key: AdminKey) -> dict[str, dict[str, str]]:
        """Load the champions whose alias moved; in-flight requests keep their models."""
        assert resources.engine is not None
        changed = resources.engine.models.refresh()
        return {"changed": changed, "loaded": resources.engine.models.versions}

    app.include_router(router)

    @app.delete(
        "/v1/recipients/{recipient_id}",
        tags=["recipients"],
        responses=documented(401, 403, 422, 503),
    )
    def erase_recipient(recipient_id: str, resources: Store, key: AdminKey) -> ErasureDone:
        """Erase a person everywhere: event log, features, online store, decisions, outcomes
        and bandit contributions; audited (admin)."""
        from features.erasure import erase_recipient as erase_features

        erased = erase_features(resources.settings, recipient_id)
        _flush_decisions(resources)  # queued decisions of the person are erased too
        report = resources.store.erase_recipient(recipient_id, actor=key.name)
        logger.info("erased recipient on request of key %s (audit %d)", key.name, report.audit_id)
        return ErasureDone(
            recipient_id=report.recipient_id,
            decisions=report.decisions,
            outcomes=report.outcomes,
            events=erased.events,
            feature_rows=erased.feature_rows + erased.directory_rows,
            online_rows=erased.online_rows,
            audit_id=report.audit_id,
        )

    return app
