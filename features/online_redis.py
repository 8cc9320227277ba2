"""The online fast path over Feast's Redis online store.

:class:`RedisFeatureClient` reads the hashes that Feast's Redis store writes (feast 0.67,
``feast/infra/online_stores/redis.py``), without going through ``get_online_features``:

* one hash per entity, keyed by the serialized entity key (v3) followed by the project name;
  the recipient's engagement and send-time views share it, a (recipient, variant) pair has
  its own;
* one field per feature, named by the 4-byte little-endian murmur3 hash of
  ``"<view>:<feature>"``, holding the serialized ``feast.types.Value``; plus ``_ts:<view>``
  (the event time), which the values do not need.

Many recipients are read with one pipelined ``HMGET`` per key in a single round trip. A
missing key, a missing field or a null value gives the cold-start default, which is what
``get_online_features`` reports as a missing value; Feast does not apply the views' TTL to
online reads, so neither does this client (keys Redis expires are simply gone).

Caching and staleness are those of :class:`~features.online.SqliteFeatureClient`: decoded rows
stay in a bounded in-process cache (oldest loaded dropped first), and Redis having no change
counter, the whole cache is dropped ``max_staleness`` after it was started, so a served value
is never older than the store by more than ``max_staleness``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from features.engineering.tables import VARIANT_FEATURES
from features.online import (
    VARIANT_VIEW,
    VIEW_OF_FEATURE,
    CachedFeatureClient,
    DecodedValues,
    FeatureRow,
    RowCache,
    check_features,
    entity_key,
    variant_entity_key,
    with_defaults,
)
from inboxlab.settings import Settings

__all__ = ["RedisFeatureClient", "feature_field"]


def feature_field(view: str, feature: str) -> bytes:
    """The hash field under which Feast's Redis store keeps ``view:feature``.

    The murmur3 32-bit hash, unsigned, little-endian (a test pins it to Feast's own).

    >>> feature_field("recipient_engagement", "opens_7d").hex()
    '2c20d7f6'
    """
    import mmh3

    return int(mmh3.hash(f"{view}:{feature}", signed=False)).to_bytes(4, "little")


class RedisFeatureClient(CachedFeatureClient):
    """Direct reads of Feast's Redis online store with a bounded, explicitly stale cache.

    Parameters
    ----------
    settings
        ``stores.redis_url`` locates the Redis that Feast materialized into.
    features
        Feature names to return; default all.
    project
        Feast project the keys belong to.
    max_staleness
        How long a cached row may be served before it is read again.
    max_entries
        Cache bound in recipients, and separately in (recipient, variant) pairs.
    redis
        A ``redis.Redis`` client to use instead of one built from ``stores.redis_url``.
    """

    def __init__(
        self,
        settings: Settings,
        features: Sequence[str] | None = None,
        *,
        project: str = "inboxlab",
        max_staleness: timedelta = timedelta(seconds=5),
        max_entries: int = 1_000_000,
        redis: Any = None,
    ) -> None:
        import redis as redis_lib
        from feast.protos.feast.types.Value_pb2 import Value

        self.features = check_features(features)
        self._errors = (redis_lib.RedisError,)
        self._redis = redis or redis_lib.Redis.from_url(settings.stores.redis_url)
        self._decoded = DecodedValues(Value)
        self._suffix = project.encode()
        self._fields = [feature_field(VIEW_OF_FEATURE[f], f) for f in self.features]
        self._variant_fields = [feature_field(VARIANT_VIEW, f) for f in VARIANT_FEATURES]
        staleness = max_staleness.total_seconds()
        self._cache = RowCache(max_entries, staleness)
        self._variant_cache = RowCache(max_entries, staleness)
        self._store_name = "Redis online store"

    def close(self) -> None:
        """Close the connection pool of the Redis client."""
        self._redis.close()

    def _hmget(self, keys: Sequence[bytes], fields: list[bytes]) -> list[list[bytes | None]]:
        if len(keys) == 1:
            return [cast(list[bytes | None], self._redis.hmget(keys[0], fields))]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, fields)
        replies: list[list[bytes | None]] = pipe.execute()
        return replies

    def _rows(
        self, keys: Sequence[bytes], fields: list[bytes], names: Sequence[str]
    ) -> list[FeatureRow]:
        decoded = self._decoded  # b"" (no value set) decodes to null, as a missing field is
        return [
            with_defaults(
                {name: decoded[blob or b""] for name, blob in zip(names, reply, strict=True)},
                names,
            )
            for reply in self._hmget(keys, fields)
        ]

    def _load(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """One pipelined round trip for every recipient."""
        keys = [entity_key(rid) + self._suffix for rid in recipient_ids]
        return dict(zip(recipient_ids, self._rows(keys, self._fields, self.features), strict=True))

    def _load_variants(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], FeatureRow]:
        """One pipelined round trip for every pair."""
        keys = [variant_entity_key(rid, vid) + self._suffix for rid, vid in pairs]
        rows = self._rows(keys, self._variant_fields, VARIANT_FEATURES)
        return dict(zip(pairs, rows, strict=True))
