"""The Feast feature store, configured from :class:`~inboxlab.settings.Settings`.

The effective ``RepoConfig`` is generated rather than read from ``feature_store.yaml`` so that
every path follows ``data_dir`` and ``INBOXLAB_STORES__ONLINE=redis`` switches the online
store: registry ``{data_dir}/feast/registry.db``, DuckDB offline store over the Parquet feature
tables, SQLite online store ``{data_dir}/feast/online.db`` (or Redis at ``stores.redis_url``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from inboxlab.errors import NotFoundError, StoreError
from inboxlab.library_warnings import quiet_library_warnings
from inboxlab.settings import Settings

if TYPE_CHECKING:
    from features.materialize_engine import RowProgress
    from features.online import FeatureClient

__all__ = [
    "DEFAULT_PROJECT",
    "ONLINE_VIEWS",
    "MaterializeResult",
    "apply_repo",
    "feature_store",
    "materialize",
    "online_client",
    "online_db_path",
    "repo_config",
    "repo_objects",
]

logger = logging.getLogger(__name__)

DEFAULT_PROJECT = "inboxlab"

#: The views :func:`materialize` loads, in order (the last only once a snapshot has variants).
ONLINE_VIEWS: tuple[str, ...] = ("recipient_engagement", "recipient_send_time", "recipient_variant")


@dataclass(frozen=True, slots=True)
class MaterializeResult:
    """What a materialization loaded: the views and the snapshot interval."""

    views: tuple[str, ...]
    start: datetime | None
    end: datetime


def online_db_path(settings: Settings) -> Path:
    """The SQLite online store file."""
    return settings.data_dir / "feast" / "online.db"


def _redis_connection_string(url: str) -> str:
    # Feast wants "host:port,db=N,password=..." rather than a redis:// URL.
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/")
    if db:
        parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def repo_config(settings: Settings, *, project: str = DEFAULT_PROJECT) -> Any:
    """The Feast ``RepoConfig`` for ``settings``.

    Parameters
    ----------
    settings
        ``data_dir`` places the registry and the SQLite online store; ``stores.online``
        chooses SQLite or Redis; ``stores.bulk_materialize`` has materialization write either
        in bulk (:mod:`features.materialize_engine`).
    project
        Feast project name (Redis keys are prefixed by it).
    """
    from feast.repo_config import RepoConfig

    from features.materialize_engine import ENGINE_TYPE

    feast_dir = (settings.data_dir / "feast").resolve()
    feast_dir.mkdir(parents=True, exist_ok=True)
    online: dict[str, Any]
    if settings.stores.online == "redis":
        online = {
            "type": "redis",
            "connection_string": _redis_connection_string(settings.stores.redis_url),
        }
    else:
        online = {"type": "sqlite", "path": str(online_db_path(settings).resolve())}
    return RepoConfig(
        project=project,
        provider="local",
        registry={
            "registry_type": "file",
            "path": str(feast_dir / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        offline_store={"type": "file"},
        online_store=online,
        batch_engine={"type": ENGINE_TYPE} if settings.stores.bulk_materialize else "local",
        entity_key_serialization_version=3,
        repo_path=feast_dir,
    )


def feature_store(settings: Settings, *, project: str = DEFAULT_PROJECT) -> Any:
    """A ``feast.FeatureStore`` for ``settings`` (nothing is applied)."""
    from feast import FeatureStore

    quiet_library_warnings()  # again: importing Feast put its own filters in front
    return FeatureStore(config=repo_config(settings, project=project))


def online_client(
    settings: Settings, features: Sequence[str] | None = None, *, project: str = DEFAULT_PROJECT
) -> FeatureClient:
    """The fast online feature client of the configured online store.

    ``stores.online`` chooses :class:`~features.online.SqliteFeatureClient` (``sqlite``) or
    :class:`~features.online_redis.RedisFeatureClient` (``redis``); both read exactly what
    Feast materialized.

    Raises
    ------
    StoreError
        When the SQLite online store file does not exist.
    """
    if settings.stores.online == "redis":
        from features.online_redis import RedisFeatureClient

        return RedisFeatureClient(settings, features, project=project)
    from features.online import SqliteFeatureClient

    return SqliteFeatureClient(settings, features, project=project)


def repo_objects(settings: Settings) -> list[Any]:
    """The declarations of ``features/feature_repo`` with sources under ``settings.data_dir``."""
    from features.feature_repo.entities import recipient, variant
    from features.feature_repo.services import make_services
    from features.feature_repo.sources import (
        make_engagement_source,
        make_send_time_source,
        make_variant_source,
        request_context,
    )
    from features.feature_repo.views import (
        make_engagement_view,
        make_send_time_view,
        make_variant_view,
        request_time,
    )

    engagement = make_engagement_view(make_engagement_source(settings.data_dir))
    send_time = make_send_time_view(make_send_time_source(settings.data_dir))
    history = make_variant_view(make_variant_source(settings.data_dir))
    services = make_services(engagement, send_time, request_time, history)
    return [
        recipient,
        variant,
        request_context,
        engagement,
        send_time,
        history,
        request_time,
        *services,
    ]


def apply_repo(settings: Settings, *, project: str = DEFAULT_PROJECT) -> Any:
    """Register the repository's objects in the registry and create online tables.

    Returns the ``FeatureStore`` it applied to.
    """
    store = feature_store(settings, project=project)
    store.apply(repo_objects(settings))
    return store


def _quietly(call: Callable[..., Any], **kwargs: Any) -> Any:
    """``call(**kwargs)`` with what it prints to standard output logged at DEBUG instead.

    ``FeatureStore.materialize`` prints its own colored lines ("Materializing 1 feature views
    from …"), which would interleave with the caller's progress and land, escape codes and
    all, in whatever reads standard output.
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            return call(**kwargs)
    finally:
        text = printed.getvalue().strip()
        if text:
            logger.debug("Feast printed: %s", text)


def materialize(
    settings: Settings,
    *,
    project: str = DEFAULT_PROJECT,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    rows: RowProgress | None = None,
) -> MaterializeResult:
    """Apply the repository and load the snapshots not yet materialized into the online store.

    Feast remembers each view's materialized intervals in the registry, so a second call only
    reads snapshots newer than the last one (``materialize_incremental``).

    Parameters
    ----------
    settings
        Data directory and online store choice.
    project
        Feast project name.
    end
        Load snapshots up to this instant; default now plus one second so today's snapshot,
        stamped at midnight, is included.
    progress
        Called with the name of each view before it is loaded.
    rows
        Called with a view's name, the rows written so far and the rows to write, as the
        bulk write proceeds (:func:`features.materialize_engine.reporting_rows`); not
        called where Feast's own write runs.

    Raises
    ------
    NotFoundError
        When no feature tables were built yet.
    StoreError
        When Feast fails to read the tables or write the online store.
    """
    from features.engineering.build import existing_days
    from features.engineering.tables import VARIANT_TABLE, VARIANT_TTL, migrate_layout, table_files
    from features.materialize_engine import reporting_rows

    migrate_layout(settings)  # Feast's sources name the current layout's files
    days = existing_days(settings)
    if not days:
        raise NotFoundError(
            f"no feature tables under {settings.data_dir / 'features'}; "
            "run `inboxlab features build` first"
        )
    store = apply_repo(settings, project=project)
    last = datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=UTC)
    until = end or last + timedelta(seconds=1)
    views: tuple[str, ...] = ONLINE_VIEWS
    if not table_files(settings, VARIANT_TABLE):
        views = views[:2]  # no event carried a variant: nothing to load, readers use defaults
    starts: list[datetime] = []
    for name in views:
        view = store.get_feature_view(name)
        # First run: only the newest snapshot matters online (one row per recipient, and
        # every recipient has a snapshot every day); later runs continue where Feast stopped.
        # Per-variant rows exist only on change days: the first run reads back a whole TTL.
        first = last - (VARIANT_TTL if name == "recipient_variant" else timedelta(seconds=1))
        start = view.most_recent_end_time or first
        if start >= until:
            continue
        starts.append(start)
        if progress:
            progress(name)
        try:
            with reporting_rows(rows):
                _quietly(store.materialize, start_date=start, end_date=until, feature_views=[name])
        except Exception as exc:  # Feast raises many types; the operator needs the cause
            raise StoreError(f"materializing {name} failed: {exc}") from exc
    if settings.stores.online == "sqlite":
        # The fast path's covering index, built once in bulk after Feast's first load; Feast's
        # later upserts keep it current. Stores materialized before it get it on the next run.
        import sqlite3

        from features.online import VARIANT_VIEW, add_cover_indexes, feature_tables
        from features.prepared import prepare

        tables = [f"{project}_{view}" for view in (*views, VARIANT_VIEW)]
        try:
            add_cover_indexes(online_db_path(settings), dict.fromkeys(tables))
            # The cold reads' prepared rows of the recipient views (features.prepared):
            # the entities just written lost theirs.
            prepare(online_db_path(settings), feature_tables(project))
        except sqlite3.Error as exc:
            raise StoreError(f"indexing or preparing the online store failed: {exc}") from exc
    return MaterializeResult(views=views, start=min(starts, default=None), end=until)
