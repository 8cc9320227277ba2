"""Tables of the decision store (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Timestamps are stored as UTC. Tables carry no schema name: a deployment (or a test) that needs
one maps it at connection time with ``schema_translate_map``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "api_keys",
    "arm_stats",
    "audit_log",
    "decisions",
    "experiments",
    "feature_layouts",
    "metadata",
    "outcomes",
]

metadata = MetaData()

_ID = 256  # opaque ids (recipients, campaigns, experiments, variants) are at most this long

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("recipient_id", String(_ID), nullable=False, index=True),
    Column("campaign_id", String(_ID), nullable=False),
    Column("experiment_id", String(_ID), nullable=True, index=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("action", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("variant_id", String(_ID), nullable=True),
    Column("variant_propensity", Float, nullable=True),
    Column("send_at", DateTime(timezone=True), nullable=True),
    Column("send_time_propensity", Float, nullable=True),
    Column("scores", JSON, nullable=False),
    Column("model_versions", JSON, nullable=False),
    # A layout id then the values (``serving.store.feature_codec``), or an object.
    Column("features", JSON, nullable=False),
    Column("segment", String(_ID), nullable=True),
    Column("policy", String(16), nullable=False),
)

# The ordered feature names of each layout that a decision's ``features`` names. Names only,
# no personal data: erasure leaves them.
feature_layouts = Table(
    "feature_layouts",
    metadata,
    Column("layout_id", String(64), primary_key=True),
    Column("names", JSON, nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("outcome_id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(_ID), nullable=True),
    Column("decision_id", String(64), nullable=True),
    # The kind, except that machine opens get "open:machine": a machine open arriving first
    # must not take the (decision, "open") slot of the human open that may follow.
    Column("dedup_kind", String(32), nullable=False),
    Column("recipient_id", String(_ID), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("campaign_id", String(_ID), nullable=True),
    Column("variant_id", String(_ID), nullable=True),
    Column("value", Float, nullable=True),
    Column("is_machine_open", Boolean, nullable=True),
    # True when this outcome added a success to ``arm_stats`` (so erasure can take it back).
    Column("counted", Boolean, nullable=False, default=False),
    # NULLs are distinct in both databases: outcomes without a decision or event id never clash.
    UniqueConstraint("decision_id", "dedup_kind", name="uq_outcomes_decision_kind"),
    UniqueConstraint("event_id", name="uq_outcomes_event_id"),
)

# Plain counts per day of the decision, so that discounting by age, recomputation from the
# outcome table and erasure of one person's contribution are all exact.
arm_stats = Table(
    "arm_stats",
    metadata,
    Column("experiment_id", String(_ID), primary_key=True),
    Column("variant_id", String(_ID), primary_key=True),
    Column("segment", String(_ID), primary_key=True),  # "" when not contextual
    Column("day", Date, primary_key=True),
    Column("successes", Integer, nullable=False, default=0),
    Column("trials", Integer, nullable=False, default=0),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("salt", String(64), nullable=False),
    Column("key_hash", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_keys_name", "name"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(_ID), nullable=False),
    Column("details", JSON, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
