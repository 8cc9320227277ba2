"""Experiment definitions kept in the decision store, so every replica decides alike."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from inboxlab.errors import ConflictError
from inboxlab.experiment import ExperimentDefinition
from serving.store.schema import experiments

__all__ = ["ExperimentStore"]


class ExperimentStore:
    """Create, read and list experiment definitions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, definition: ExperimentDefinition) -> datetime:
        """Store a new definition; an existing id is a :class:`ConflictError`."""
        created = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(experiments).values(
                        experiment_id=definition.id,
                        definition=definition.model_dump(mode="json"),
                        created_at=created,
                    )
                )
        except IntegrityError:
            raise ConflictError(
                f"experiment {definition.id!r} already exists; definitions are immutable, "
                "create a new id for a changed test"
            ) from None
        return created

    def get(self, experiment_id: str) -> ExperimentDefinition | None:
        """The definition of ``experiment_id``, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(experiments.c.definition).where(experiments.c.experiment_id == experiment_id)
            ).scalar_one_or_none()
        return None if row is None else ExperimentDefinition.model_validate(row)

    def all(self) -> list[ExperimentDefinition]:
        """Every definition, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(experiments.c.definition).order_by(experiments.c.created_at)
            ).scalars()
            return [ExperimentDefinition.model_validate(r) for r in rows]
