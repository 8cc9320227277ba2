"""The decision store: decisions, outcomes, bandit statistics, API keys and the audit log."""

from __future__ import annotations

from serving.store.decisions import (
    ArmStat,
    AuditEntry,
    DecisionStore,
    ErasureReport,
    OutcomeSummary,
    RewardRule,
)
from serving.store.engine import create_store_engine
from serving.store.schema import metadata

__all__ = [
    "ArmStat",
    "AuditEntry",
    "DecisionStore",
    "ErasureReport",
    "OutcomeSummary",
    "RewardRule",
    "create_store_engine",
    "metadata",
]
