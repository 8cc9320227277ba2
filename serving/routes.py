"""Decision and experiment endpoints (the app factory in ``serving.app`` mounts them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from inboxlab.errors import NotFoundError
from inboxlab.experiment import ExperimentDefinition
from serving.auth import AdminKey, AnyKey, DecideKey
from serving.decide import DecisionEngine
from serving.schemas import MAX_BATCH, DecisionRequest, DecisionResponse
from serving.store.units import experiment_units

__all__ = ["BATCH_CHUNK", "ReportRenderer", "router"]

#: Decisions scored together in one pass of each model while streaming a batch.
BATCH_CHUNK = 2_000

#: ``(definition, units table, "html" | "json") -> str | dict``: supplied by the composition
#: root, because ``serving`` does not depend on ``experiments``.
ReportRenderer = Callable[[ExperimentDefinition, Any, str], Any]


async def _engine(request: Request) -> DecisionEngine:
    # async: a sync dependency would cost every request a hop through the thread pool.
    engine: DecisionEngine = request.state.resources.engine
    return engine


Engine = Annotated[DecisionEngine, Depends(_engine)]

router = APIRouter()


class BatchRequest(BaseModel):
    """``POST /v1/decisions/batch``: a whole audience."""

    decisions: list[DecisionRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ExperimentCreated(BaseModel):
    """The answer to ``POST /v1/experiments``."""

    id: str
    created_at: str


@router.post("/v1/decisions", tags=["decisions"], response_model=DecisionResponse)
async def post_decision(request: DecisionRequest, engine: Engine, _key: DecideKey) -> Response:
    """Send now or not, which variant, at what time — with the propensity of each choice."""
    # On the event loop, not the thread pool: a decision takes about a millisecond and the
    # hop would cost a good share of that. Reads that may be slow are bounded by
    # ``decisions.budget_ms``; the write is queued (group commit). The answer is serialized
    # once from the model the engine built, not validated again against the response model.
    decision = engine.decide(request)
    return Response(decision.model_dump_json(), media_type="application/json")


@router.post(
    "/v1/decisions/batch",
    tags=["decisions"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def post_decisions_batch(
    body: Annotated[BatchRequest, Body()], engine: Engine, _key: DecideKey
) -> StreamingResponse:
    """Decisions for a whole audience, streamed as NDJSON (one decision per line, in order)."""

    def lines() -> Iterator[bytes]:
        requests = body.decisions
        for start in range(0, len(requests), BATCH_CHUNK):
            chunk = engine.decide_many(requests[start : start + BATCH_CHUNK])
            yield b"".join(d.model_dump_json().encode() + b"\n" for d in chunk)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/v1/experiments", tags=["experiments"], status_code=status.HTTP_201_CREATED)
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


@router.get("/v1/experiments/{experiment_id}", tags=["experiments"])
def get_experiment(experiment_id: str, engine: Engine, _key: AnyKey) -> ExperimentDefinition:
    """One experiment definition."""
    return engine.definition(experiment_id)


@router.get(
    "/v1/experiments/{experiment_id}/report",
    tags=["experiments"],
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
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
