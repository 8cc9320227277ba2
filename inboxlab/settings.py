"""One validated ``Settings`` object, read from ``INBOXLAB_*`` environment variables.

Nested sections use ``__``: ``INBOXLAB_STORES__ONLINE=redis``. Build it with the cached
:func:`get_settings`; tests construct ``Settings(...)`` directly and pass it in.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inboxlab.errors import ConfigurationError

__all__ = [
    "PLACEHOLDER_SECRET",
    "ApiSettings",
    "DecisionSettings",
    "MlflowSettings",
    "Settings",
    "StoreSettings",
    "get_settings",
]

#: The shipped secret; refused outside development and test.
PLACEHOLDER_SECRET = "change-me"


class MlflowSettings(BaseModel):
    """Where models are tracked and registered."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str = "mlruns/artifacts"


class StoreSettings(BaseModel):
    """Stores beyond the event log. Empty URLs mean the embedded SQLite default."""

    decision_store_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the decision store; default SQLite under the data dir.",
    )
    online: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    bulk_materialize: bool = Field(
        default=True,
        description=(
            "Write materialized rows into the SQLite or Redis online store in bulk "
            "(features.materialize_engine); false uses Feast's own row-by-row write."
        ),
    )


class DecisionSettings(BaseModel):
    """Rules of the render-time decision."""

    holdout_salt: str = Field(default="inboxlab-holdout", min_length=1)
    global_holdout_pct: float = Field(default=0.0, ge=0, lt=100)
    max_sends_1d: int | None = Field(default=None, ge=1)
    max_sends_7d: int | None = Field(default=None, ge=1)
    fatigue_threshold: float | None = Field(default=None, gt=0)
    default_window_hours: int = Field(default=24, ge=1, le=24 * 14)
    quiet_start_hour: int = Field(default=21, ge=0, le=23, description="Local hour quiet starts.")
    quiet_end_hour: int = Field(default=8, ge=0, le=23, description="Local hour quiet ends.")
    send_time_exploration: float = Field(default=0.05, ge=0, le=1)
    allocation_refresh_seconds: float = Field(default=5.0, gt=0)
    model_poll_seconds: float = Field(default=60.0, ge=0, description="0 disables polling.")
    budget_ms: float = Field(
        default=50.0,
        ge=0,
        description="Most time a render-path decision waits for the feature and decision "
        "stores before falling back (reasons features_timeout, recipient_state_unavailable). "
        "Reads of the SQLite stores and of Redis stop themselves at the deadline, on the "
        "request's thread (about 2 % of a decision at 200/s); PostgreSQL reads run on a small "
        "thread pool, a thread hand-off each. 0 reads inline, unbounded.",
    )
    group_commit: bool = Field(
        default=True,
        description="Answer before the decision row is committed; a writer thread commits "
        "queued decisions in batches (durability window: see serving.store.writer).",
    )
    coalesce_max_group: int = Field(
        default=32,
        ge=1,
        description="Most single decisions ready in the same turn of the event loop that are "
        "decided together (one read per store, one call per model); 1 decides each alone.",
    )
    group_commit_linger_ms: float = Field(
        default=5.0,
        ge=0,
        le=1_000,
        description="How long the writer waits for more decisions to share a commit; adds "
        "at most this to the durability window.",
    )
    batch_processes: int = Field(
        default=2,
        ge=0,
        description="Most batch calls a worker decides at once, each in a process of its own "
        "(see serving.batch_process), so that single decisions keep their latency while a "
        "batch streams; 0 decides batches in the worker.",
    )
    batch_process_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Scheduling niceness added to a batch process: when the cores are busy, "
        "the workers answering single decisions get them first.",
    )
    batch_process_idle_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a batch process waits for its next batch before it exits and "
        "frees its memory (its stores and models are opened again for the next batch).",
    )
    batch_process_min_bytes: int = Field(
        default=1_000_000,
        ge=0,
        description="Smallest batch body (bytes; about 10,000 requests) decided in a process of "
        "its own; smaller ones are decided in the worker.",
    )


class ApiSettings(BaseModel):
    """The scoring API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    #: FastAPI's own OpenTelemetry spans, metrics and logs for every request, for a
    #: deployment that configures an OpenTelemetry provider. Off by default: the API exports
    #: Prometheus metrics at ``/metrics``, and with telemetry on every request pays for
    #: looking up the global providers (about 3 % of the server's CPU per decision).
    opentelemetry: bool = False


class Settings(BaseSettings):
    """Everything inboxlab reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="INBOXLAB_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    mlflow: MlflowSettings = MlflowSettings()
    stores: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    decisions: DecisionSettings = DecisionSettings()

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Settings:
        if (
            self.environment == "production"
            and self.api.secret_key.get_secret_value() == PLACEHOLDER_SECRET
        ):
            raise ValueError(
                "INBOXLAB_API__SECRET_KEY is the placeholder; set a real secret for production"
            )
        return self

    @property
    def events_dir(self) -> Path:
        """The Parquet event log, partitioned by day."""
        return self.data_dir / "events"

    @property
    def recipients_path(self) -> Path:
        """The recipient directory (time zone, joined date)."""
        return self.data_dir / "recipients.parquet"

    @property
    def truth_dir(self) -> Path:
        """Ground truth written by ``inboxlab simulate``."""
        return self.data_dir / "truth"

    @property
    def reports_dir(self) -> Path:
        """Import reports and experiment reports."""
        return self.data_dir / "reports"

    @property
    def decision_store_url(self) -> str:
        """The configured decision store, or SQLite under the data directory."""
        return self.stores.decision_store_url or f"sqlite:///{self.data_dir / 'decisions.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigurationError(str(exc)) from exc
