"""Feast entities."""

from __future__ import annotations

from feast import Entity, ValueType

__all__ = ["recipient"]

recipient = Entity(
    name="recipient",
    join_keys=["recipient_id"],
    value_type=ValueType.STRING,
    description="A person who receives email, by opaque id (never an email address).",
    tags={"owner": "features", "pii": "false"},
)
