"""The render-time decision: eligibility, variant, send time, scores, stored with propensities.

:class:`DecisionEngine` owns what a decision needs (stores, feature client, models, bandit
policy, random generator, writer) and checks, decides and stores; the steps themselves run
column by column in :class:`~serving.audience.AudienceScorer`, for one request, a group that
arrived together (:mod:`serving.coalesce`) and a batch chunk alike, so the three give the same
decisions from the same draws.

Never fails the render path: missing features, a model that cannot load or a feature store
that errors each give a documented fallback and a reason in ``reasons``:

``features_unavailable``
    the feature store failed; cold-start defaults were used.
``features_timeout``
    the feature store did not answer within ``decisions.budget_ms``; cold-start defaults
    were used.
``recipient_state_unavailable``
    the decision store did not give the recipient's consent and send history within
    ``decisions.budget_ms`` (or failed): the decision is ``suppress``, since consent cannot
    be checked. Retry later.
``model_unavailable:<kind>``
    no ``@champion`` of that model is loaded; its score is ``null`` and, for send time, the
    recipient's stored open-time profile ranks the hours instead.
``send_time_unscored``
    neither model nor profile could rank hours; the first allowed hour is used.
``quiet_hours_unavoidable``
    every hour of the window is quiet for the recipient; the best hour is used anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.online import FeatureClient
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.experiment import ExperimentDefinition
from inboxlab.settings import Settings
from serving.audience import AudienceScorer
from serving.budget import ReadGuard
from serving.eligibility import EligibilityConfig
from serving.policy import VariantPolicy
from serving.schemas import DecisionRequest, DecisionResponse
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore
from serving.store.writer import DecisionWriter

__all__ = ["DecisionEngine"]


class DecisionEngine:
    """Makes and stores decisions; shared by the single and the batch endpoint.

    With a ``writer``, single decisions are queued for group commit (see
    :mod:`serving.store.writer` for the durability window); batches, and every decision
    without a writer, are committed before the call returns.
    """

    def __init__(
        self,
        settings: Settings,
        store: DecisionStore,
        experiments: ExperimentStore,
        features: FeatureClient | None,
        models: ModelSet,
        rng: np.random.Generator,
        *,
        writer: DecisionWriter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.experiments = experiments
        self.features = features
        self.models = models
        self.rng = rng
        self.writer = writer
        d = settings.decisions
        self.guard = ReadGuard(d.budget_ms)
        self.eligibility = EligibilityConfig(
            holdout_salt=d.holdout_salt,
            global_holdout_pct=d.global_holdout_pct,
            max_sends_1d=d.max_sends_1d,
            max_sends_7d=d.max_sends_7d,
            fatigue_threshold=d.fatigue_threshold,
        )
        self.policy = VariantPolicy(
            store, refresh_seconds=d.allocation_refresh_seconds, salt=d.holdout_salt
        )
        self._definitions: dict[str, ExperimentDefinition] = {}
        #: The decisions themselves, column by column (the batch endpoint's scorer too).
        self.scorer = AudienceScorer(self)

    # -- public ------------------------------------------------------------------------------

    def decide(self, request: DecisionRequest) -> DecisionResponse:
        """One decision on the render path: its reads are bounded by ``decisions.budget_ms``."""
        return self._decide([request])[0]

    def decide_together(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        """Render-path decisions for requests that arrived together (see
        :mod:`serving.coalesce`): like :meth:`decide` for each, in one pass per store and
        model, reads bounded by ``decisions.budget_ms``, writes queued for group commit (or
        committed before this returns, without a writer)."""
        return self._decide(requests)

    def _decide(self, requests: Sequence[DecisionRequest]) -> list[DecisionResponse]:
        for request in requests:
            self.check(request)  # NotFoundError, InvalidInputError before anything is read
        decisions = self.scorer.decide(requests, guard=self.guard)
        items = decisions.records()
        if self.writer is not None:
            self.writer.submit(items)
        elif len(items) == 1:
            self.store.record_decision(items[0][0], features=items[0][1])
        else:
            self.store.record_decisions(items)
        return decisions.responses()

    def check(self, request: DecisionRequest) -> ExperimentDefinition | None:
        """The request's experiment (None without one), refusing an unknown experiment or
        variants that are not its arms.

        Raises
        ------
        NotFoundError
            The experiment does not exist.
        InvalidInputError
            ``variants`` differ from the experiment's arms.
        """
        if request.experiment_id is None:
            return None
        definition = self.definition(request.experiment_id)
        if request.variants is not None:
            arms = {a.id for a in definition.arms}
            if set(request.variants) != arms:
                raise InvalidInputError(
                    f"variants {sorted(request.variants)} differ from the arms of "
                    f"experiment {request.experiment_id!r}: {sorted(arms)}",
                    field="variants",
                )
        return definition

    def close(self) -> None:
        """Stop the read threads and write every queued decision."""
        self.guard.close()
        if self.writer is not None:
            self.writer.close()

    def definition(self, experiment_id: str) -> ExperimentDefinition:
        """The experiment's definition (cached; definitions are immutable)."""
        found = self._definitions.get(experiment_id)
        if found is None:
            found = self.experiments.get(experiment_id)
            if found is None:
                raise NotFoundError(f"experiment {experiment_id!r} does not exist")
            self._definitions[experiment_id] = found
        return found
