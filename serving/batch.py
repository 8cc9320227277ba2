"""Streamed batch decisions: a whole audience in chunks, each written while the next computes.

``POST /v1/decisions/batch`` hands its requests to :meth:`BatchDecider.lines`. Every chunk of
:data:`BATCH_CHUNK` requests is decided column-wise (:class:`~serving.audience.AudienceScorer`),
then its rows are committed by one writer thread while the next chunk is scored. A chunk's
NDJSON lines are released only once its transaction has committed, so every decision a client
reads is stored, as with the single endpoint's synchronous path. Sends of the chunk still
being written count for the frequency rules of the next one (they are passed as pending).

Memory is bounded by the chunk, not the audience: at most two chunks (one being written, one
being scored) are alive at a time, whatever the number of requests.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from inboxlab.errors import InvalidInputError
from serving.audience import AudienceDecisions, AudienceScorer
from serving.decide import DecisionEngine
from serving.frozen import FrozenHeap, Release
from serving.json_items import array_item_spans
from serving.schemas import MAX_BATCH, DecisionRequest, DecisionResponse, RequestContext
from serving.store.bulk import insert_decisions

__all__ = [
    "BATCH_CHUNK",
    "BATCH_HEAP",
    "PARSE_SLICE",
    "BatchDecider",
    "BatchItem",
    "BatchRequest",
    "parse_batch",
    "parse_batch_held",
    "paused_gc",
]

logger = logging.getLogger(__name__)

#: Decisions scored together in one pass of each model while streaming a batch.
BATCH_CHUNK = 5_000


class BatchItem(DecisionRequest):
    """One request of a batch: a :class:`DecisionRequest` whose default ``context`` is made
    per item, not deep-copied from a shared instance (that copy was most of the cost of
    validating a 100,000-request body)."""

    context: RequestContext = Field(default_factory=RequestContext)


class BatchRequest(BaseModel):
    """``POST /v1/decisions/batch``: a whole audience."""

    decisions: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


#: Holds on the collector's permanent generation for the batches being streamed.
BATCH_HEAP = FrozenHeap()

#: Items validated per call when parsing a batch body. A call holds the GIL throughout (about
#: 7 ms for 2,000 items here), so the event loop of the same process, which answers single
#: decisions, waits at most that long; validating 100,000 items in one call held it 0.6-0.8 s.
PARSE_SLICE = 2_000
_ITEMS = TypeAdapter(list[BatchItem])


def parse_batch(body: bytes) -> BatchRequest:
    """Validate a batch body, a slice of items at a time, with the cyclic GC paused.

    The items are located by :func:`~serving.json_items.array_item_spans` and validated from
    their JSON text by pydantic, :data:`PARSE_SLICE` at a time, in the same JSON mode as
    ``BatchRequest.model_validate_json``. Any body that is not exactly ``{"decisions": [...]}``
    with 1 to :data:`~serving.schemas.MAX_BATCH` valid items is validated whole instead, so
    every error (422 naming the field) is the one a single validation gives.

    A 100,000-request body makes about a million objects; each allocation burst triggers
    collections that walk the whole heap of the loaded models, which cost twice the
    validation itself. Nothing made here is cyclic garbage, so pausing loses nothing.

    Raises ``pydantic.ValidationError``.
    """
    with paused_gc():
        return _parse(body)


def parse_batch_held(body: bytes) -> tuple[BatchRequest, Release]:
    """:func:`parse_batch`, with the parsed requests kept out of the cyclic collector's scans
    (:data:`BATCH_HEAP`) until the returned release is called: for the streamed endpoint,
    whose requests live until the last line is sent.

    Raises ``pydantic.ValidationError`` (and holds nothing).
    """
    with paused_gc():
        parsed = _parse(body)
        return parsed, BATCH_HEAP.hold()


def _parse(body: bytes) -> BatchRequest:
    sliced = _parse_in_slices(body)
    return sliced if sliced is not None else BatchRequest.model_validate_json(body)


def _parse_in_slices(body: bytes) -> BatchRequest | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    spans = array_item_spans(text, "decisions")
    if not spans or len(spans) > MAX_BATCH:
        return None
    items: list[BatchItem] = []
    for first in range(0, len(spans), PARSE_SLICE):
        last = min(first + PARSE_SLICE, len(spans)) - 1
        try:
            items += _validate_slice(f"[{text[spans[first][0] : spans[last][1]]}]")
        except ValidationError:
            return None
    return BatchRequest.model_construct(decisions=items)


def _validate_slice(json_array: str) -> list[BatchItem]:
    """One slice of items, validated in one call (a seam for tests to watch)."""
    return _ITEMS.validate_json(json_array)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a burst of allocations that makes no cycles.

    Deciding a chunk of 5,000 requests, or writing it, allocates hundreds of thousands of
    short-lived objects (feature rows, columns, encoded rows); each burst triggers
    collections, and the older generations hold the loaded models and every pending request,
    so a chunk spent nearly a third of its time walking that heap (in process, 20,000
    decisions: 148 against 102 µs per decision with the collector paused). What a chunk
    makes is freed by reference counting; anything cyclic made meanwhile (by other requests
    of the process) is collected once the collector is back, at the latest after the chunk.

    The collector is process-wide: whoever paused it restores it, so overlapping pauses (the
    writer thread and the next chunk, two batches) end with it enabled. Never hold a pause
    across a ``yield``: a client that leaves would keep it paused.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(slots=True)
class _Written:
    decisions: AudienceDecisions
    commit: Future[int]


class BatchDecider:
    """Decides, stores and streams an audience chunk by chunk.

    Parameters
    ----------
    engine
        The engine of the single endpoint: the same settings, stores, models and generator.
    chunk_size
        Requests per chunk (memory and first-line latency grow with it; per-decision cost
        falls with it up to a few thousand).
    send_time_threads
        Threads for the send-time model's hour-expanded matrix. One by default: with the
        trees compiled to native code (:mod:`serving.scoring.trees`) a chunk's matrix takes
        a few milliseconds, and the second core is the writer thread's.
    """

    def __init__(
        self,
        engine: DecisionEngine,
        *,
        chunk_size: int = BATCH_CHUNK,
        send_time_threads: int = 1,
    ) -> None:
        if chunk_size < 1:
            raise InvalidInputError(
                f"chunk_size must be >= 1, got {chunk_size}", field="chunk_size"
            )
        self.engine = engine
        self.chunk_size = chunk_size
        self.scorer = AudienceScorer(engine, send_time_threads=send_time_threads)

    def check(self, requests: Sequence[DecisionRequest]) -> None:
        """Refuse the whole batch before any line is sent when a request names an unknown
        experiment or variants that differ from its arms (as the single endpoint does)."""
        seen: set[tuple[str, tuple[str, ...] | None]] = set()
        for request in requests:
            if request.experiment_id is None:
                continue
            key = (request.experiment_id, tuple(request.variants) if request.variants else None)
            if key in seen:
                continue
            seen.add(key)
            self.engine.check(request)  # NotFoundError, InvalidInputError

    def lines(self, requests: Sequence[DecisionRequest]) -> Iterator[bytes]:
        """NDJSON, one chunk of lines at a time, each chunk stored before it is yielded."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-write") as pool:
            previous: _Written | None = None
            try:
                for start in range(0, len(requests), self.chunk_size):
                    chunk = requests[start : start + self.chunk_size]
                    pending = previous.decisions.sends() if previous is not None else None
                    with paused_gc():
                        decisions, feature_json = self.scorer.decide(chunk, pending=pending)
                    if previous is not None:
                        previous.commit.result()
                        yield previous.decisions.ndjson()
                    write = pool.submit(self._store, decisions, feature_json)
                    previous = _Written(decisions, write)
                if previous is not None:
                    previous.commit.result()
                    yield previous.decisions.ndjson()
                    previous = None
            finally:
                if previous is not None:  # the client left: still finish the write under way
                    previous.commit.exception()

    def _store(self, decisions: AudienceDecisions, feature_json: Sequence[str]) -> int:
        with paused_gc():
            columns, trials = decisions.columns(feature_json)
            return insert_decisions(self.engine.store.engine, columns, trials)

    def decide(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        """Decide and store ``requests``; the decisions as response models (for callers in
        process, such as tests and the command line)."""
        self.check(requests)
        out: list[DecisionResponse] = []
        for start in range(0, len(requests), self.chunk_size):
            chunk = requests[start : start + self.chunk_size]
            with paused_gc():
                decisions, feature_json = self.scorer.decide(chunk)
            self._store(decisions, feature_json)
            out.extend(decisions.responses())
        return out
