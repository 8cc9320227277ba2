"""Model training: point-in-time training sets, LightGBM and baselines, MLflow registry."""

from __future__ import annotations

from training.specs import SPECS, ModelKind, ModelSpec, spec_for

__all__ = ["SPECS", "ModelKind", "ModelSpec", "spec_for"]
