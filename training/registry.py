"""Promotion by alias (``@challenger`` → ``@champion``) and a listing of registered models."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from inboxlab.errors import NotFoundError
from inboxlab.settings import Settings
from training.estimator import positive_proba
from training.metrics import evaluate
from training.specs import ModelKind, spec_for
from training.tracking import CHALLENGER, CHAMPION, HOLDOUT_ARTIFACT, client_for

__all__ = ["PROMOTION_METRIC", "Promotion", "VersionInfo", "list_versions", "promote"]

logger = logging.getLogger(__name__)

#: Lower is better. Log loss rewards both ranking and calibration, and the API returns
#: probabilities, so a challenger must predict them better, not just rank better.
PROMOTION_METRIC = "log_loss"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One registered model version as ``inboxlab models list`` shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    created: pd.Timestamp
    run_id: str
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Promotion:
    """What ``promote`` decided and on which numbers."""

    name: str
    challenger: str
    champion_before: str | None
    promoted: bool
    forced: bool
    challenger_score: float
    champion_score: float | None
    reason: str


def _registered_name(name: str) -> str:
    if name.startswith("inboxlab-"):
        return name
    return spec_for(name).registered_name


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Every version of every inboxlab model, newest first, with its holdout metrics."""
    client = client_for(settings)
    out: list[VersionInfo] = []
    for kind in ModelKind:
        name = spec_for(kind.value).registered_name
        try:
            versions = client.search_model_versions(f"name = '{name}'")
            # search results carry no aliases; the registered model has them all
            alias_map = client.get_registered_model(name).aliases
        except MlflowException:
            continue
        for v in versions:
            aliases = tuple(sorted(a for a, ver in alias_map.items() if str(ver) == str(v.version)))
            metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
            out.append(
                VersionInfo(
                    name=name,
                    version=str(v.version),
                    aliases=aliases,
                    created=pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC"),
                    run_id=v.run_id or "",
                    metrics=dict(metrics),
                )
            )
    return sorted(out, key=lambda v: (v.name, -int(v.version)))


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(settings: Settings, name: str, *, force: bool = False) -> Promotion:
    """Move ``@champion`` to the ``@challenger`` version if it beats the champion.

    Both are scored on the challenger's holdout (the most recent data), so the comparison is
    on the same rows. ``force`` promotes regardless and records that as a version tag.
    """
    registered = _registered_name(name)
    client = client_for(settings)
    challenger = _version_by_alias(client, registered, CHALLENGER)
    if challenger is None:
        raise NotFoundError(f"{registered} has no @{CHALLENGER} version; train one first")
    champion = _version_by_alias(client, registered, CHAMPION)
    run_id = client.get_model_version(registered, challenger).run_id
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=HOLDOUT_ARTIFACT, dst_path=tmp
        )
        holdout = pd.read_parquet(local)
    label = spec_for(registered.removeprefix("inboxlab-")).label
    y = holdout[label].to_numpy(dtype=int)

    def score(version: str) -> float:
        model = mlflow.sklearn.load_model(f"models:/{registered}/{version}")
        cols = list(model.feature_names_in_)
        return evaluate(y, positive_proba(model, holdout[cols]))[PROMOTION_METRIC]

    new = score(challenger)
    old = score(champion) if champion is not None and champion != challenger else None
    if champion == challenger:
        reason = f"version {challenger} already is @{CHAMPION}"
        promoted = False
    elif old is None:
        reason = f"no @{CHAMPION} yet; version {challenger} becomes it"
        promoted = True
    elif new < old:
        reason = f"{PROMOTION_METRIC} {new:.5f} beats the champion's {old:.5f} on the same holdout"
        promoted = True
    else:
        reason = f"{PROMOTION_METRIC} {new:.5f} does not beat the champion's {old:.5f}"
        promoted = False
    if force and not promoted and champion != challenger:
        promoted = True
        reason = f"forced: {reason}"
        client.set_model_version_tag(registered, challenger, "promoted_by_force", "true")
    if promoted:
        client.set_registered_model_alias(registered, CHAMPION, challenger)
        logger.info("%s @%s -> version %s (%s)", registered, CHAMPION, challenger, reason)
    return Promotion(
        name=registered,
        challenger=challenger,
        champion_before=champion,
        promoted=promoted,
        forced=force and reason.startswith("forced"),
        challenger_score=new,
        champion_score=old,
        reason=reason,
    )
