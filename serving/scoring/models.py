"""The ``@champion`` models, loaded from the MLflow registry and swapped when an alias moves."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from inboxlab.settings import Settings
from serving.scoring.compiled import CompiledModel
from training.specs import ModelKind, spec_for
from training.tracking import CHAMPION

__all__ = ["LoadedModel", "ModelSet"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One champion: its registry coordinates and the compiled scorer."""

    kind: ModelKind
    name: str
    version: str
    model: CompiledModel


class ModelSet:
    """The current champion of each model kind; a kind without one is simply absent.

    :meth:`refresh` compares the registry's aliases with what is loaded and loads only what
    moved. The swap replaces one immutable mapping, so a request that already took
    :attr:`models` finishes with the models it started with.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.models: dict[ModelKind, LoadedModel] = {}
        self.errors: dict[ModelKind, str] = {}

    @property
    def versions(self) -> dict[str, str]:
        """``{registered name: version}`` of what is loaded."""
        return {m.name: m.version for m in self.models.values()}

    def refresh(self) -> dict[str, str]:
        """Load champions whose alias moved; return ``{name: version}`` of what changed."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from training.tracking import client_for

        with self._lock:
            try:
                client = client_for(self._settings)
            except Exception as exc:  # a registry that cannot open must not stop serving
                logger.error("model registry unavailable: %s", exc)
                self.errors = dict.fromkeys(ModelKind, f"registry unavailable: {exc}")
                return {}
            models = dict(self.models)
            errors: dict[ModelKind, str] = {}
            changed: dict[str, str] = {}
            for kind in ModelKind:
                name = spec_for(kind.value).registered_name
                try:
                    version = str(client.get_model_version_by_alias(name, CHAMPION).version)
                except MlflowException:
                    errors[kind] = f"{name} has no @{CHAMPION}"
                    models.pop(kind, None)
                    continue
                current = models.get(kind)
                if current is not None and current.version == version:
                    continue
                try:
                    raw: Any = mlflow.sklearn.load_model(f"models:/{name}/{version}")
                    # Trees compiled once per version (then cached under the data dir):
                    # a batch's hour matrices and a decision's hours are scored natively.
                    compiled = CompiledModel(
                        raw, native=True, cache_dir=self._settings.data_dir / "trees"
                    )
                    loaded = LoadedModel(kind, name, version, compiled)
                except Exception as exc:  # keep the previous version rather than fail
                    logger.error("cannot load %s version %s: %s", name, version, exc)
                    errors[kind] = f"{name} version {version} failed to load: {exc}"
                    continue
                models[kind] = loaded
                changed[name] = version
                logger.info("loaded %s version %s", name, version)
            self.models = models
            self.errors = errors
            return changed
