"""Decision and experiment endpoints (the app factory in ``serving.app`` mounts them)."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from inboxlab.errors import NotFoundError
from inboxlab.experiment import ExperimentDefinition
from serving.auth import AdminKey, AnyKey, DecideKey
from serving.batch import BATCH_CHUNK, BatchDecider, BatchRequest, parse_batch_held
from serving.coalesce import Coalescer
from serving.decide import DecisionEngine
from serving.responses import documented
from serving.schemas import DecisionRequest, DecisionResponse
from serving.store.units import experiment_units

__all__ = ["BATCH_CHUNK", "ReportRenderer", "router"]

#: ``(definition, units table, "html" | "json") -> str | dict``: supplied by the composition
#: root, because ``serving`` does not depend on ``experiments``.
ReportRenderer = Callable[[ExperimentDefinition, Any, str], Any]


async def _engine(request: Request) -> DecisionEngine:
    # async: a sync dependency would cost every request a hop through the thread pool.
    engine: DecisionEngine = request.state.resources.engine
    return engine


async def _coalescer(request: Request) -> Coalescer:
    coalescer: Coalescer = request.state.resources.coalescer
    return coalescer


Engine = Annotated[DecisionEngine, Depends(_engine)]
Together = Annotated[Coalescer, Depends(_coalescer)]

# Every route here needs a key and may find the store down or the request invalid.
router = APIRouter(responses=documented(401, 403, 422, 503))


class ExperimentCreated(BaseModel):
    """The answer to ``POST /v1/experiments``."""

    id: str
    created_at: str


@router.post(
    "/v1/decisions",
    tags=["decisions"],
    response_model=DecisionResponse,
    responses=documented(400, 404),
)
async def post_decision(request: DecisionRequest, together: Together, _key: DecideKey) -> Response:
    """Send now or not, which variant, at what time — with the propensity of each choice."""
    # Well-formed requests with a decide key are answered by serving.fastlane before they
    # reach this route; it answers the rest (errors) and describes the endpoint in OpenAPI.
    # On the event loop, not the thread pool: a decision takes about a millisecond and the
    # hop would cost a good share of that; requests ready in the same turn of the loop are
    # decided together (serving.coalesce). Reads that may be slow are bounded by
    # ``decisions.budget_ms``; the write is queued (group commit). The answer is serialized
    # once from the model the engine built, not validated again against the response model.
    decision = await together.decide(request)
    return Response(decision.model_dump_json(), media_type="application/json")


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by the definitions."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    resolved: dict[str, Any] = walk(schema)
    return resolved


@router.post(
    "/v1/decisions/batch",
    tags=["decisions"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **documented(400, 404)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(BatchRequest.model_json_schema())}},
        }
    },
)
async def post_decisions_batch(
    request: Request, engine: Engine, _key: DecideKey
) -> StreamingResponse:
    """Decisions for a whole audience, streamed as NDJSON (one decision per line, in order).

    Decided column-wise in chunks; a chunk's lines are sent once its decisions are stored.
    An unknown experiment or variants that differ from its arms refuse the whole batch
    before the first line.
    """
    raw = await request.body()
    processes = request.state.resources.batch_processes
    if processes is not None and len(raw) >= processes.min_bytes:
        # Decided in a process of its own: this worker's event loop stays free for single
        # decisions (serving.batch_process). The errors are the ones raised below.
        lines = await processes.decide(raw)
        return StreamingResponse(lines, media_type="application/x-ndjson")
    try:
        # Validated from the raw bytes (see ``parse_batch``), off the event loop; the requests
        # stay out of the collector's scans while they are streamed (``serving.frozen``).
        body, release = await run_in_threadpool(parse_batch_held, raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc
    try:
        decider = BatchDecider(engine, chunk_size=BATCH_CHUNK)
        await run_in_threadpool(decider.check, body.decisions)
    except BaseException:
        release()
        raise
    lines = decider.lines(body.decisions)
    # Released when the stream is dropped: finished, left by the client, or never started.
    weakref.finalize(lines, release)
    return StreamingResponse(lines, media_type="application/x-ndjson")


@router.post(
    "/v1/experiments",
    tags=["experiments"],
    status_code=status.HTTP_201_CREATED,
    responses=documented(400, 409),
)
def post_experiment(
    definition: ExperimentDefinition, engine: Engine, _key: AdminKey
) -> ExperimentCreated:
    """Define an A/B test or a bandit (immutable once created)."""
    created = engine.experiments.create(definition)
    return ExperimentCreated(id=definition.id, created_at=created.isoformat())


@router.get("/v1/experiments", tags=["experiments"])
def list_experiments(engine: Engine, _key: AnyKey) -> list[ExperimentDefinition]:
    """Every experiment definition."""
    return engine.experiments.all()


@router.get("/v1/experiments/{experiment_id}", tags=["experiments"], responses=documented(404))
def get_experiment(experiment_id: str, engine: Engine, _key: AnyKey) -> ExperimentDefinition:
    """One experiment definition."""
    return engine.definition(experiment_id)


@router.get(
    "/v1/experiments/{experiment_id}/report",
    tags=["experiments"],
    responses={200: {"content": {"text/html": {}, "application/json": {}}}, **documented(404)},
)
def get_report(experiment_id: str, request: Request, engine: Engine, _key: AnyKey) -> Response:
    """The Bayesian report: HTML for browsers, JSON for ``Accept: application/json``."""
    renderer: ReportRenderer | None = request.state.resources.report_renderer
    if renderer is None:
        raise NotFoundError("reports are not available in this deployment")
    definition = engine.definition(experiment_id)
    if engine.writer is not None:
        engine.writer.flush()  # the report counts every decision answered so far
    units = experiment_units(engine.store.engine, experiment_id)
    wants_json = "application/json" in request.headers.get("accept", "")
    if wants_json:
        return JSONResponse(json.loads(json.dumps(renderer(definition, units, "json"))))
    return HTMLResponse(renderer(definition, units, "html"))
