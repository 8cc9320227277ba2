"""Feast declarations: entities, sources, views and services (parsed by ``feast apply``)."""

from __future__ import annotations

__all__: list[str] = []
