"""Adaptive batching of single decisions: requests that arrive together are decided together.

``POST /v1/decisions`` runs on the event loop. When several requests are ready in the same
turn of the loop (under load: every request that arrived while the previous decisions were
being made), :class:`Coalescer` hands them to :meth:`DecisionEngine.decide_together` as one
group: one feature read, one state read, one call per model, one queued write. A request that
arrives alone is decided alone, at once, so a quiet server adds no latency; a busy one spends
less CPU per decision the busier it is (the same idea as the adaptive batching of model
servers, without a wait).

Each request keeps its own outcome: a request naming an unknown experiment or variants that
are not its arms fails alone, before the group is decided; the same recipient twice in one
turn is decided in two groups, in arrival order, so the second sees the first's queued send
(frequency caps); and if deciding the group fails, its requests are decided one by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from serving.decide import DecisionEngine
from serving.schemas import DecisionRequest, DecisionResponse

__all__ = ["Coalescer"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Waiting:
    request: DecisionRequest
    answer: asyncio.Future[DecisionResponse]


class Coalescer:
    """Groups the single decisions ready in one turn of the event loop.

    Parameters
    ----------
    engine
        Decides the groups.
    max_group
        Most requests decided together; more wait for the next turn. ``1`` decides every
        request alone.
    on_group
        Called with the size of every group decided (e.g. a metric's ``observe``).
    """

    def __init__(
        self,
        engine: DecisionEngine,
        *,
        max_group: int = 32,
        on_group: Callable[[int], object] | None = None,
    ) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be >= 1, got {max_group}")
        self.engine = engine
        self.max_group = max_group
        self._on_group = on_group
        self._waiting: list[_Waiting] = []
        self._scheduled = False

    async def decide(self, request: DecisionRequest) -> DecisionResponse:
        """The decision for ``request``, made with whatever else is ready in this turn.

        Raises what :meth:`DecisionEngine.decide` raises for this request alone.
        """
        if self.max_group == 1:
            return self.engine.decide(request)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[DecisionResponse] = loop.create_future()
        self._waiting.append(_Waiting(request, answer))
        if not self._scheduled:
            # After the callbacks already ready in this turn: requests parsed in the same
            # turn reach this point first and join the group.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        group, rest = self._group(self._waiting)
        self._waiting = rest
        self._scheduled = bool(rest)
        if rest:
            asyncio.get_running_loop().call_soon(self._flush)
        live: list[_Waiting] = []
        for item in group:
            if item.answer.done():  # the client went away
                continue
            try:
                self.engine.check(item.request)
            except Exception as exc:  # this request's own error (404, 422)
                item.answer.set_exception(exc)
                continue
            live.append(item)
        if not live:
            return
        if self._on_group is not None:
            self._on_group(len(live))
        try:
            responses = self.engine.decide_together([item.request for item in live])
        except Exception:
            logger.exception("a group of %d decisions failed; deciding them one by one", len(live))
            self._one_by_one(live)
            return
        for item, response in zip(live, responses, strict=True):
            if not item.answer.done():
                item.answer.set_result(response)

    def _group(self, waiting: list[_Waiting]) -> tuple[list[_Waiting], list[_Waiting]]:
        """The next group (at most ``max_group``, each recipient once) and what is left."""
        group: list[_Waiting] = []
        rest: list[_Waiting] = []
        taken: set[str] = set()
        deferred: set[str] = set()  # once one is left, a recipient's later ones are too
        for item in waiting:
            rid = item.request.recipient_id
            if rid in taken or rid in deferred or len(group) >= self.max_group:
                rest.append(item)
                deferred.add(rid)
            else:
                group.append(item)
                taken.add(rid)
        return group, rest

    def _one_by_one(self, items: list[_Waiting]) -> None:
        for item in items:
            if item.answer.done():
                continue
            try:
                item.answer.set_result(self.engine.decide(item.request))
            except Exception as exc:
                item.answer.set_exception(exc)
