"""The online fast path over Feast's Redis online store.

:class:`RedisFeatureClient` reads the hashes that Feast's Redis store writes (feast 0.67,
``feast/infra/online_stores/redis.py``), without going through ``get_online_features``:

* one hash per entity, keyed by the serialized entity key (v3) followed by the project name;
  the recipient's engagement and send-time views share it, a (recipient, variant) pair has
  its own;
* one field per feature, named by the 4-byte little-endian murmur3 hash of
  ``"<view>:<feature>"``, holding the serialized ``feast.types.Value``; plus ``_ts:<view>``
  (the event time), which the values do not need.

A few recipients are read with one pipelined ``HMGET`` per key in a single round trip. From
:data:`~features.online.PACKED_MIN_KEYS` keys on, a Lua script (:data:`PACK_SCRIPT`) runs the
``HMGET`` of every key inside Redis and returns one string per key, its values concatenated
(an absent or empty one as :data:`~features.packed_values.NULL_VALUE`), which
:func:`~features.packed_values.decode_packed` decodes all at once: redis-py then packs one
command instead of a thousand, and parses one reply per key instead of one per value. The
script is loaded once (``EVALSHA``); it touches several keys, so a Redis Cluster would need
the keys of one call in one slot (the settings name one standalone Redis). A missing key, a
missing field or a null value gives the cold-start default, which is what
``get_online_features`` reports as a missing value; Feast does not apply the views' TTL to
online reads, so neither does this client (keys Redis expires are simply gone).

Under a read deadline (:class:`inboxlab.sqlite_deadline.statement_deadline`, which the render
path's time budget enters), the pipelined ``HMGET`` waits for each reply at most until the
deadline, on the calling thread, and a connection left in the middle of a reply is closed
rather than returned to the pool; the render path then reads inline, without a thread
hand-off (:attr:`RedisFeatureClient.interruptible`). Opening a connection inside a deadline
(the TCP connect and redis-py's handshake, as after a read that timed out and closed its
connection) waits at most until the deadline too, without retries: the client's connection
class is given that behaviour (:func:`bounded_connections`). Without a deadline every wait is
redis-py's own (``socket_timeout``, ``socket_connect_timeout``: 5 s by default).

Caching and staleness are those of :class:`~features.online.SqliteFeatureClient`: decoded rows
stay in a bounded in-process cache (oldest loaded dropped first), and Redis having no change
counter, the whole cache is dropped ``max_staleness`` after it was started, so a served value
is never older than the store by more than ``max_staleness``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import numpy as np

import features.online
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
from features.packed_values import NULL_VALUE, decode_packed
from features.value_proto import value_message
from inboxlab.settings import Settings
from inboxlab.sqlite_deadline import current_deadline

__all__ = ["PACK_SCRIPT", "RedisFeatureClient", "bounded_connections", "feature_field"]

#: Per key of ``KEYS``, the values of the fields ``ARGV`` concatenated, an absent or empty one
#: replaced by ``NULL_VALUE`` so that every value keeps its place.
PACK_SCRIPT = r"""
local out = {}
for i, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for j = 1, #values do
    if not values[j] or values[j] == '' then values[j] = '@NULL@' end
  end
  out[i] = table.concat(values)
end
return out
""".replace("@NULL@", "".join(f"\\{byte}" for byte in NULL_VALUE))  # Lua decimal escapes

#: Keys per script call: Redis runs nothing else meanwhile, so each call stays short.
_SCRIPT_CHUNK = 1_000


def feature_field(view: str, feature: str) -> bytes:
    """The hash field under which Feast's Redis store keeps ``view:feature``.

    The murmur3 32-bit hash, unsigned, little-endian (a test pins it to Feast's own).

    >>> feature_field("recipient_engagement", "opens_7d").hex()
    '2c20d7f6'
    """
    import mmh3

    return int(mmh3.hash(f"{view}:{feature}", signed=False)).to_bytes(4, "little")


class _OpensWithinDeadline:
    """Mixin for a redis-py connection class: opening the connection inside a read deadline
    (:func:`~inboxlab.sqlite_deadline.current_deadline`) waits at most until it, once."""

    is_connected: bool
    socket_timeout: float | None
    socket_connect_timeout: float | None
    retry: Any

    def connect(self) -> None:
        deadline = current_deadline()
        if deadline is None or self.is_connected:
            super().connect()  # type: ignore[misc]
            return
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        saved = (self.socket_timeout, self.socket_connect_timeout, self.retry)
        self.socket_timeout = self.socket_connect_timeout = max(deadline - time.monotonic(), 1e-3)
        self.retry = Retry(NoBackoff(), 0)
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self.socket_timeout, self.socket_connect_timeout, self.retry = saved
            self.update_current_socket_timeout(-1)  # type: ignore[attr-defined]


def bounded_connections(redis: Any) -> Any:
    """``redis`` (a ``redis.Redis``), its pool now opening connections within the thread's
    read deadline, if any: its connection class (TCP, TLS or Unix socket, as the URL chose)
    with :class:`_OpensWithinDeadline` mixed in. Connections already open are unchanged; a
    client without a connection pool is returned as it is.
    """
    pool: Any = getattr(redis, "connection_pool", None)
    base = getattr(pool, "connection_class", None)
    if isinstance(base, type) and not issubclass(base, _OpensWithinDeadline):
        pool.connection_class = type(f"Bounded{base.__name__}", (_OpensWithinDeadline, base), {})
    return redis


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
        A ``redis.Redis`` client to use instead of one built from ``stores.redis_url``; its
        pool opens connections within a read deadline from now on (:func:`bounded_connections`).
    """

    #: Reads under a deadline wait for Redis at most until it, on the calling thread.
    interruptible = True

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

        self.features = check_features(features)
        self._errors = (redis_lib.RedisError,)
        self._redis = bounded_connections(
            redis or redis_lib.Redis.from_url(settings.stores.redis_url)
        )
        self._decoded = DecodedValues(value_message())
        self._suffix = project.encode()
        self._fields = [feature_field(VIEW_OF_FEATURE[f], f) for f in self.features]
        self._variant_fields = [feature_field(VARIANT_VIEW, f) for f in VARIANT_FEATURES]
        staleness = max_staleness.total_seconds()
        self._cache = RowCache(max_entries, staleness)
        self._variant_cache = RowCache(max_entries, staleness)
        self._store_name = "Redis online store"
        self._script: Any = None  # registered on the first packed read

    def close(self) -> None:
        """Close the connection pool of the Redis client."""
        self._redis.close()

    def _hmget(self, keys: Sequence[bytes], fields: list[bytes]) -> list[list[bytes | None]]:
        deadline = current_deadline()
        if deadline is not None:
            return self._hmget_until(keys, fields, deadline)
        if len(keys) == 1:
            return [cast(list[bytes | None], self._redis.hmget(keys[0], fields))]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, fields)
        replies: list[list[bytes | None]] = pipe.execute()
        return replies

    def _hmget_until(
        self, keys: Sequence[bytes], fields: list[bytes], deadline: float
    ) -> list[list[bytes | None]]:
        """The pipelined ``HMGET`` of ``keys``, each reply awaited until ``deadline`` at most.

        Raises ``redis.TimeoutError`` at the deadline; the connection is then closed, since
        replies may still be on their way.
        """
        pool = self._redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_commands([("HMGET", key, *fields) for key in keys]))
            replies: list[list[bytes | None]] = [
                conn.read_response(timeout=max(deadline - time.monotonic(), 0.0)) for _ in keys
            ]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def _rows(
        self,
        keys: Sequence[bytes],
        fields: list[bytes],
        names: Sequence[str],
        defaults: Sequence[Any],
    ) -> list[FeatureRow]:
        # One setting for both stores; under a deadline, the pipeline, whose waits it bounds.
        if len(keys) >= features.online.PACKED_MIN_KEYS and current_deadline() is None:
            return self._packed_rows(keys, fields, names, defaults)
        return self._hmget_rows(keys, fields, names)

    def _hmget_rows(
        self, keys: Sequence[bytes], fields: list[bytes], names: Sequence[str]
    ) -> list[FeatureRow]:
        """The rows of ``keys`` through ``HMGET``, each value parsed by protobuf (memoized)."""
        decoded = self._decoded  # b"" (no value set) decodes to null, as a missing field is
        return [
            with_defaults(
                {name: decoded[blob or b""] for name, blob in zip(names, reply, strict=True)},
                names,
            )
            for reply in self._hmget(keys, fields)
        ]

    def _packed_rows(
        self,
        keys: Sequence[bytes],
        fields: list[bytes],
        names: Sequence[str],
        defaults: Sequence[Any],
    ) -> list[FeatureRow]:
        """The rows of ``keys`` through :data:`PACK_SCRIPT`, decoded in bulk.

        Keys holding a form the bulk decoder leaves to protobuf are read again with ``HMGET``.
        """
        if self._script is None:
            self._script = self._redis.register_script(PACK_SCRIPT)
        packed: list[bytes] = []
        for start in range(0, len(keys), _SCRIPT_CHUNK):
            packed += self._script(keys=keys[start : start + _SCRIPT_CHUNK], args=fields)
        values, ok = decode_packed(packed, defaults)
        rows = [dict(zip(names, column, strict=True)) for column in values.T.tolist()]
        if not ok.all():
            slow = np.flatnonzero(~ok).tolist()
            redo = self._hmget_rows([keys[i] for i in slow], fields, names)
            for i, row in zip(slow, redo, strict=True):
                rows[i] = row
        return rows

    def _load(self, recipient_ids: Sequence[str]) -> dict[str, FeatureRow]:
        """One round trip for every recipient (a thousand keys per script call)."""
        keys = [entity_key(rid) + self._suffix for rid in recipient_ids]
        rows = self._rows(keys, self._fields, self.features, self._defaults)
        return dict(zip(recipient_ids, rows, strict=True))

    def _load_variants(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], FeatureRow]:
        """One round trip for every pair (a thousand keys per script call)."""
        keys = [variant_entity_key(rid, vid) + self._suffix for rid, vid in pairs]
        rows = self._rows(keys, self._variant_fields, VARIANT_FEATURES, self._variant_defaults)
        return dict(zip(pairs, rows, strict=True))
