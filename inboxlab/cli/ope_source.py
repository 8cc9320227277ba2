"""Logged units of a stored experiment, with every arm scored by the engagement champion.

``inboxlab ope EXPERIMENT_ID`` evaluates the policy "always the arm the engagement model
scores highest" from these ``score_<arm>`` columns. Each decision is rescored with the
features it was made with and the local hour it was sent at, changing only the variant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inboxlab.errors import NotFoundError
from inboxlab.experiment import ExperimentDefinition
from inboxlab.settings import Settings

__all__ = ["scored_units"]


def scored_units(settings: Settings, experiment_id: str) -> tuple[ExperimentDefinition, Path]:
    """Export the experiment's units with ``score_<arm>`` columns; return definition and file."""
    from serving.scoring.models import ModelSet
    from serving.scoring.send_time import zone
    from serving.store import DecisionStore
    from serving.store.units import stored_experiment_units
    from training.specs import ModelKind

    with DecisionStore.opened(settings.decision_store_url) as store:
        definition, units = stored_experiment_units(store.engine, experiment_id, with_features=True)
    if units.empty:
        raise NotFoundError(f"experiment {experiment_id!r} has no sent decisions yet")
    models = ModelSet(settings)
    models.refresh()
    loaded = models.models.get(ModelKind.ENGAGEMENT)
    if loaded is not None:
        features = {c.removeprefix("f_"): units[c] for c in units.columns if c.startswith("f_")}
        columns: dict[str, object] = {
            k: (v.astype(str).to_numpy() if k == "timezone" else v.to_numpy(dtype=float))
            for k, v in features.items()
        }
        timezones = units.get("f_timezone", pd.Series(["UTC"] * len(units)))
        local = [
            at.astimezone(zone(str(tz)))
            for at, tz in zip(units["send_at"].fillna(units["timestamp"]), timezones, strict=True)
        ]
        columns["local_hour"] = np.array([t.hour for t in local], dtype=float)
        columns["local_weekday"] = np.array([t.weekday() for t in local], dtype=float)
        for arm in (a.id for a in definition.arms):
            columns["variant_id"] = [arm] * len(units)
            units[f"score_{arm}"] = loaded.model.predict(columns, len(units))  # type: ignore[arg-type]
    path = settings.reports_dir / "units" / f"{experiment_id}-ope.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    units.drop(columns=[c for c in units.columns if c.startswith("f_")]).to_parquet(path)
    return definition, path
