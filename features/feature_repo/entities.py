"""Feast entities."""

from __future__ import annotations

from feast import Entity, ValueType

__all__ = ["recipient", "variant"]

recipient = Entity(
    name="recipient",
    join_keys=["recipient_id"],
    value_type=ValueType.STRING,
    description="A person who receives email, by opaque id (never an email address).",
    tags={"owner": "features", "pii": "false"},
)

variant = Entity(
    name="variant",
    join_keys=["variant_id"],
    value_type=ValueType.STRING,
    description="A content variant of an email (subject, layout, offer), by id; the same id "
    "across campaigns stands for the same treatment.",
    tags={"owner": "features", "pii": "false"},
)
