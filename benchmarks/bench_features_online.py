"""Online feature reads: Feast ``get_online_features`` vs the direct fast path.

Run from the project root::

    .venv/bin/python benchmarks/bench_features_online.py --recipients 20000
    .venv/bin/python benchmarks/bench_features_online.py --recipients 20000 --online redis

It writes one day of synthetic snapshots for N recipients into a temporary data directory,
materializes them with Feast (timed) into the chosen online store (SQLite, or the Redis at
``stores.redis_url`` under a throw-away project, removed at the end), then measures in the
same process: one recipient (p50/p99) and 1,000 recipients at once, for Feast, the fast path
(``SqliteFeatureClient`` or ``RedisFeatureClient``, warm cache and cold), the cold fast path
forced to read row by row (one SQLite row or ``HMGET`` value per feature, each parsed by
protobuf: the path reads of many took before they were packed per key and decoded in bulk) and
a raw read of the same rows without decoding (the floor of a row-by-row path). Over SQLite, the
cold fast path reads the prepared rows :func:`features.store.materialize` makes
(:mod:`features.prepared`); it is also timed without them (the packed read of Feast's rows it
made before), and that packed read walking Feast's primary-key index instead of the covering index
that :func:`features.store.materialize` adds (:func:`features.online.cover_index`), as it reads
a store Feast materialized without it. Over Redis, ``--python-parser`` adds the cold and raw
reads over a connection forced to redis-py's pure-Python reply parser (the default one is
``hiredis`` when installed), and ``--rounds`` alternates the paths so that both are timed under
the same load.

Over SQLite it then measures the reads of one decision, cold: every feature of one recipient
(``get_many([rid])``) and its rows for four candidate variants (``variant_features_many``), for
Feast, the fast path and the raw read. ``--data-dir`` measures that on an existing materialized
store instead (e.g. an ``inboxlab demo`` directory's ``data``), whose values repeat as real
ones do where the synthetic ones are random floats::

    .venv/bin/python benchmarks/bench_features_online.py --data-dir /tmp/demo1/data
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import features.online
import features.prepared
from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    SEND_TIME_FEATURES,
    VARIANT_FEATURES,
    VARIANT_TABLE,
    feature_type,
    snapshot_dir,
)
from features.online import (
    VIEW_OF_FEATURE,
    FeastFeatureClient,
    SqliteFeatureClient,
    entity_key,
    variant_entity_key,
)
from features.online_redis import RedisFeatureClient, feature_field
from features.store import feature_store, materialize, online_db_path
from inboxlab.settings import Settings, StoreSettings

Read = Callable[[list[str]], object]

#: The candidate variants of one decision: the synthetic store has rows for the first three.
VARIANTS = ("v0", "v1", "v2", "v3")


def _write_tables(settings: Settings, n: int, rng: np.random.Generator) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    ids = [f"r{i:07d}" for i in range(n)]
    for table, names in (("engagement", ENGAGEMENT_FEATURES), ("send_time", SEND_TIME_FEATURES)):
        cols: dict[str, pa.Array] = {"recipient_id": pa.array(ids)}
        for name in names:
            kind = feature_type(name)
            if kind is str:
                cols[name] = pa.array(["Europe/Paris"] * n)
            elif kind is float:
                cols[name] = pa.array(rng.random(n))
            else:
                cols[name] = pa.array(rng.integers(0, 50, n))
        cols["event_timestamp"] = pa.array([day] * n, pa.timestamp("us", tz="UTC"))
        cols["created_at"] = pa.array([day] * n, pa.timestamp("us", tz="UTC"))
        out = snapshot_dir(settings, table, day.date(), day.date())
        out.mkdir(parents=True)
        pq.write_table(pa.table(cols), out / "part-0.parquet")
    pairs = [(rid, vid) for rid in ids for vid in VARIANTS[:3]]
    cols = {
        "recipient_id": pa.array([rid for rid, _ in pairs]),
        "variant_id": pa.array([vid for _, vid in pairs]),
    }
    for name in VARIANT_FEATURES:
        kind = feature_type(name)
        values = rng.random(len(pairs)) if kind is float else rng.integers(0, 50, len(pairs))
        cols[name] = pa.array(values)
    cols["event_timestamp"] = pa.array([day] * len(pairs), pa.timestamp("us", tz="UTC"))
    cols["created_at"] = pa.array([day] * len(pairs), pa.timestamp("us", tz="UTC"))
    out = snapshot_dir(settings, VARIANT_TABLE, day.date(), day.date())
    out.mkdir(parents=True)
    pq.write_table(pa.table(cols), out / "part-0.parquet")


def _row_by_row(read: Read) -> Read:
    """``read`` with packing turned off: every read of many goes row by row, as it used to."""

    def rows(batch: list[str]) -> object:
        saved = features.online.PACKED_MIN_KEYS
        features.online.PACKED_MIN_KEYS = sys.maxsize
        try:
            return read(batch)
        finally:
            features.online.PACKED_MIN_KEYS = saved

    return rows


def _primary_key_index(read: Read) -> Read:
    """``read`` as on a store without the covering index: packed reads walk Feast's
    primary-key index (reads of one key and row by row never use the covering index)."""

    def rows(batch: list[str]) -> object:
        saved = features.online.cover_index
        features.online.cover_index = lambda table: f"{table}_absent"
        try:
            return read(batch)
        finally:
            features.online.cover_index = saved

    return rows


def _without_prepared(read: Read) -> Read:
    """``read`` as on a store without prepared rows (:mod:`features.prepared`): a read of
    fewer than ``PACKED_MIN_KEYS`` keys walks Feast's rows, a read of more is packed, as
    they used to."""

    def rows(batch: list[str]) -> object:
        saved = features.prepared.PreparedReader.read
        features.prepared.PreparedReader.read = lambda self, keys: {}  # type: ignore[method-assign]
        try:
            return read(batch)
        finally:
            features.prepared.PreparedReader.read = saved  # type: ignore[method-assign]

    return rows


def _timeit(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _pct(times: list[float], q: float) -> float:
    return float(np.percentile(times, q)) * 1000


def _sqlite_paths(
    settings: Settings, features: list[str], ids: list[str]
) -> list[tuple[str, Read]]:
    fast = SqliteFeatureClient(settings, features)
    fast.preload(ids)
    conn = sqlite3.connect(online_db_path(settings))
    table = "inboxlab_recipient_engagement"
    marks = ",".join("?" * len(features))

    def raw(batch: list[str]) -> list[tuple[bytes, str, bytes]]:
        keys = [entity_key(r) for r in batch]
        rows: list[tuple[bytes, str, bytes]] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows += conn.execute(
                f"SELECT entity_key, feature_name, value FROM {table} "
                f"WHERE entity_key IN ({','.join('?' * len(chunk))}) "
                f"AND feature_name IN ({marks})",
                [*chunk, *features],
            ).fetchall()
        return rows

    cold = SqliteFeatureClient(settings, features, max_entries=1)
    # Its own client: the index a packed read walks is chosen once per client.
    primary = SqliteFeatureClient(settings, features, max_entries=1)
    return [
        ("fast path, warm cache", fast.get_many),
        ("fast path, cold (cache of 1)", cold.get_many),
        ("  cold, no prepared rows (before)", _without_prepared(cold.get_many)),
        ("  cold, primary-key index", _primary_key_index(_without_prepared(primary.get_many))),
        ("  cold, row by row (before)", _row_by_row(_without_prepared(cold.get_many))),
        ("raw SQLite read (no decoding)", raw),
    ]


def _redis_paths(
    settings: Settings, features: list[str], ids: list[str], project: str, python_parser: bool
) -> list[tuple[str, Read]]:
    import redis
    from redis._parsers import _RESP2Parser
    from redis.utils import HIREDIS_AVAILABLE

    # Redis has no change counter: the cache lives max_staleness, so the warm client gets
    # a long one (the reads it serves are then as old as the preload).
    fast = RedisFeatureClient(settings, features, project=project, max_staleness=timedelta(hours=1))
    fast.preload(ids)
    fields = [feature_field(VIEW_OF_FEATURE[f], f) for f in features]
    suffix = project.encode()

    def cold_and_raw(
        conn: redis.Redis, cold_name: str, before_name: str, raw_name: str
    ) -> list[tuple[str, Read]]:
        cold = RedisFeatureClient(settings, features, project=project, max_entries=1, redis=conn)

        def raw(batch: list[str]) -> list[object]:
            pipe = conn.pipeline(transaction=False)
            for rid in batch:
                pipe.hmget(entity_key(rid) + suffix, fields)
            replies: list[object] = pipe.execute()
            return replies

        return [
            (cold_name, cold.get_many),
            (before_name, _row_by_row(cold.get_many)),
            (raw_name, raw),
        ]

    print(f"redis-py reply parser: {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    paths: list[tuple[str, Read]] = [("Redis fast path, warm cache", fast.get_many)]
    paths += cold_and_raw(
        redis.Redis.from_url(settings.stores.redis_url),
        "Redis fast path, cold (cache of 1)",
        "  cold, pipelined HMGET (before)",
        "raw pipelined HMGET (no decoding)",
    )
    if python_parser:
        # redis-py swaps in its RESP3 twin of this parser on a RESP3 connection.
        python = redis.Redis.from_url(settings.stores.redis_url, parser_class=_RESP2Parser)
        paths += cold_and_raw(
            python,
            "  cold, pure-Python parser",
            "  cold, pipelined, pure-Python (before)",
            "  raw HMGET, pure-Python parser",
        )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=500, help="single-recipient reads")
    parser.add_argument("--batches", type=int, default=20, help="1,000-recipient reads")
    parser.add_argument("--online", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument(
        "--python-parser",
        action="store_true",
        help="Redis: also time the cold and raw reads with redis-py's pure-Python reply parser",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="split the reads into rounds alternating the paths"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="an existing data directory with a SQLite online store"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    pick = random.Random(0)
    if args.data_dir:
        settings = Settings(data_dir=args.data_dir)
        ids = _stored_ids(settings)
        print(f"existing store under {args.data_dir}: {len(ids):,} recipients")
        _measure(settings, "inboxlab", ids, args, pick)
        _measure_decisions(settings, ids, args, pick)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="bench-features-"))
    settings = Settings(data_dir=data_dir, stores=StoreSettings(online=args.online))
    project = f"bench{uuid.uuid4().hex[:8]}" if args.online == "redis" else "inboxlab"
    _write_tables(settings, args.recipients, rng)
    start = time.perf_counter()
    materialize(settings, project=project)
    n_features = len(ENGAGEMENT_FEATURES) + len(SEND_TIME_FEATURES)
    print(
        f"materialize {args.recipients:,} recipients x {n_features} features "
        f"(+ 3 variants x {len(VARIANT_FEATURES)}) into {args.online} (Feast): "
        f"{time.perf_counter() - start:.1f} s"
    )
    ids = [f"r{i:07d}" for i in range(args.recipients)]
    try:
        _measure(settings, project, ids, args, pick)
        if args.online == "sqlite":
            _measure_decisions(settings, ids, args, pick)
    finally:
        if args.online == "redis":
            feature_store(settings, project=project).teardown()


def _stored_ids(settings: Settings) -> list[str]:
    """The recipients of an existing SQLite online store, from their entity keys."""
    prefix = len(entity_key(""))
    with sqlite3.connect(f"file:{online_db_path(settings)}?mode=ro", uri=True) as conn:
        keys = conn.execute("SELECT DISTINCT entity_key FROM inboxlab_recipient_engagement")
        return sorted(key[prefix:].decode() for (key,) in keys)


def _measure(
    settings: Settings, project: str, ids: list[str], args: argparse.Namespace, pick: random.Random
) -> None:
    features = list(ENGAGEMENT_FEATURES[:20])  # 20 features, as in the measurement
    feast = FeastFeatureClient.from_settings(settings, features, project=project)
    paths: list[tuple[str, Read]] = [("feast get_online_features", feast.get_many)]
    if args.online == "redis":
        paths += _redis_paths(settings, features, ids, project, args.python_parser)
    else:
        paths += _sqlite_paths(settings, features, ids)
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _ in paths}
    for _, fn in paths:
        fn([ids[0]])  # warm-up
    for _ in range(args.rounds):
        for name, fn in paths:

            def one(fn: Read = fn) -> object:
                return fn([pick.choice(ids)])

            def many(fn: Read = fn) -> object:
                return fn(pick.sample(ids, 1000))

            single, batch = results[name]
            single += _timeit(one, args.single // args.rounds)
            batch += _timeit(many, args.batches // args.rounds)

    feast_single, feast_batch = results["feast get_online_features"]
    print(
        f"\n{'path':40} {'1 p50 ms':>9} {'1 p99 ms':>9} {'1000 p50 ms':>12} "
        f"{'vs Feast p99/batch':>20}"
    )
    for name, (single, batch) in results.items():
        ratio_single = _pct(feast_single, 99) / _pct(single, 99)
        ratio_batch = statistics.median(feast_batch) / statistics.median(batch)
        print(
            f"{name:40} {_pct(single, 50):9.3f} {_pct(single, 99):9.3f} "
            f"{_pct(batch, 50):12.2f} {ratio_single:9.1f}x /{ratio_batch:7.1f}x"
        )


def _measure_decisions(
    settings: Settings, ids: list[str], args: argparse.Namespace, pick: random.Random
) -> None:
    """One decision's cold reads: all features of a recipient and its rows for ``VARIANTS``."""
    feast = FeastFeatureClient.from_settings(settings)
    cold = SqliteFeatureClient(settings, max_entries=1)
    conn = sqlite3.connect(f"file:{online_db_path(settings)}?mode=ro", uri=True)
    views = sorted(set(VIEW_OF_FEATURE.values()))
    one = " UNION ALL ".join(
        f"SELECT feature_name, value FROM inboxlab_{view} WHERE entity_key = ?1" for view in views
    )
    pairs = "SELECT entity_key, feature_name, value FROM inboxlab_recipient_variant "
    pairs += f"WHERE entity_key IN ({','.join('?' * len(VARIANTS))})"

    def raw(rid: str) -> object:
        conn.execute(one, (entity_key(rid),)).fetchall()
        return conn.execute(pairs, [variant_entity_key(rid, v) for v in VARIANTS]).fetchall()

    def client_reads(client: SqliteFeatureClient | FeastFeatureClient) -> Callable[[str], object]:
        def read(rid: str) -> object:
            client.get_many([rid])
            return client.variant_features_many({rid: VARIANTS})

        return read

    paths = [
        ("feast get_online_features", client_reads(feast)),
        ("fast path, cold (cache of 1)", client_reads(cold)),
        ("raw SQLite read (no decoding)", raw),
    ]
    n_features = len(VIEW_OF_FEATURE)
    print(
        f"\none decision, cold: {n_features} features of 1 recipient + "
        f"{len(VARIANT_FEATURES)} for each of {len(VARIANTS)} variants, {args.single} reads"
    )
    print(f"{'path':40} {'p50 ms':>9} {'p99 ms':>9} {'vs Feast p50':>13}")
    results: dict[str, list[float]] = {}
    for name, read in paths:
        read(ids[0])  # warm-up

        def decide(read: Callable[[str], object] = read) -> object:
            return read(pick.choice(ids))

        results[name] = _timeit(decide, args.single)
    feast_p50 = _pct(results["feast get_online_features"], 50)
    for name, times in results.items():
        print(
            f"{name:40} {_pct(times, 50):9.3f} {_pct(times, 99):9.3f} "
            f"{feast_p50 / _pct(times, 50):12.1f}x"
        )


if __name__ == "__main__":
    main()
