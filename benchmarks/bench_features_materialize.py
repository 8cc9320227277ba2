"""Materialization into the SQLite online store through Feast, against reading the same rows.

Run from the project root::

    .venv/bin/python benchmarks/bench_features_materialize.py                # 100,000 recipients
    .venv/bin/python benchmarks/bench_features_materialize.py --recipients 10000
    .venv/bin/python benchmarks/bench_features_materialize.py --recipients 100000 --feast

Writes one day of synthetic snapshots for N recipients in the feature-table layout (the
engagement and send-time tables with every column their Feast views declare), then, each in
its own child process under ``/usr/bin/time -v`` (so each has its own peak RSS):

* ``materialize``: :func:`features.store.materialize` — Feast applies the repository and
  loads the newest snapshot of each view into ``{data_dir}/feast/online.db`` (time per view
  from its progress callback), with the bulk write (:mod:`features.materialize_engine`);
* with ``--feast``, the same into a copy of the data through Feast's own row-by-row write
  (``stores.bulk_materialize`` off), in the same run;
* with ``--online redis``, into the Redis at ``INBOXLAB_BENCH_REDIS_URL`` (default database 14
  of the local server) instead of SQLite, each load under a project of its own, removed at
  the end;
* baseline: reading the same rows from Parquet with pyarrow (what any loader must at least
  do), in the same run.

Afterwards a sample of recipients is read back with Feast's ``get_online_features`` and
compared with the Parquet rows, so the figure is for a load that wrote the right values.

``materialize`` ends by adding the fast path's covering indexes
(:func:`features.online.add_cover_indexes`) and the single reads' prepared rows
(:func:`features.prepared.prepare`), each timed apart; the online store's size is given
with their share of it. ``--second-day`` then writes a second snapshot day with new values
and loads it twice, into two copies of the loaded store: one with the covering indexes, so
that Feast's upserts keep them current, and one without (the indexes are then built after
the load), to time what the indexes add to a later materialization::

    .venv/bin/python benchmarks/bench_features_materialize.py --recipients 20000 --second-day
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    feature_type,
    snapshot_dir,
)
from features.store import DEFAULT_PROJECT
from inboxlab.settings import Settings, StoreSettings

REDIS_URL = os.environ.get("INBOXLAB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

DAY = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = {ENGAGEMENT_TABLE: ENGAGEMENT_FEATURES, SEND_TIME_TABLE: SEND_TIME_FEATURES}
VIEWS = {"recipient_engagement": ENGAGEMENT_TABLE, "recipient_send_time": SEND_TIME_TABLE}


def _path(data: Path, table: str, day: datetime = DAY) -> Path:
    return snapshot_dir(Settings(data_dir=data), table, day.date(), day.date()) / "part-0.parquet"


def write_snapshots(data: Path, recipients: int, day: datetime = DAY) -> None:
    """One snapshot day of both feature tables for ``recipients`` recipients."""
    rng = np.random.default_rng((day - DAY).days)
    ids = pa.array([f"r{i:07d}" for i in range(recipients)])
    stamp = pa.array([day] * recipients, pa.timestamp("us", tz="UTC"))
    zones = np.array(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"])
    for table, names in TABLES.items():
        cols: dict[str, pa.Array] = {"recipient_id": ids}
        for name in names:
            kind = feature_type(name)
            if kind is str:
                cols[name] = pa.array(zones[rng.integers(0, len(zones), recipients)])
            elif kind is float:
                cols[name] = pa.array(rng.random(recipients))
            else:
                cols[name] = pa.array(rng.integers(0, 50, recipients))
        cols["event_timestamp"] = stamp
        cols["created_at"] = stamp
        path = _path(data, table, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)


def _settings(data: Path, *, bulk: bool = True) -> Settings:
    """Settings of a data directory: the online store named by ``BENCH_ONLINE`` (set from
    ``--online`` for the children), the bulk write or Feast's."""
    online = os.environ.get("BENCH_ONLINE", "sqlite")
    return Settings(
        data_dir=data,
        stores=StoreSettings(online=online, redis_url=REDIS_URL, bulk_materialize=bulk),
    )


def _project(data: Path) -> str:
    """The Feast project of a data directory: its own in Redis, where stores share a server."""
    if os.environ.get("BENCH_ONLINE", "sqlite") == "sqlite":
        return DEFAULT_PROJECT
    return f"bench{os.environ['BENCH_RUN']}_" + re.sub(r"\W", "_", data.name)


def _child_materialize(data: Path, *, bulk: bool = True) -> dict[str, float]:
    import features.online
    import features.prepared
    from features.store import materialize

    marks: list[tuple[str, float]] = []
    add_cover_indexes = features.online.add_cover_indexes

    def timed_indexes(path: Path | str, tables: Iterable[str]) -> list[str]:
        marks.append(("cover_indexes", time.perf_counter()))
        return add_cover_indexes(path, tables)

    prepare = features.prepared.prepare

    def timed_prepare(path: Path | str, tables: Mapping[str, Sequence[str]]) -> dict[str, int]:
        marks.append(("prepared_rows", time.perf_counter()))
        return prepare(path, tables)

    # materialize imports them when it gets there: the first mark ends the last view's load.
    features.online.add_cover_indexes = timed_indexes
    features.prepared.prepare = timed_prepare
    start = time.perf_counter()
    materialize(
        _settings(data, bulk=bulk),
        project=_project(data),
        progress=lambda v: marks.append((v, time.perf_counter())),
    )
    end = time.perf_counter()
    per_step = {
        name: (marks[i + 1][1] if i + 1 < len(marks) else end) - at
        for i, (name, at) in enumerate(marks)
    }
    return {"total": end - start, "setup": marks[0][1] - start if marks else 0.0, **per_step}


def _child_read(data: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    for view, table in VIEWS.items():
        at = time.perf_counter()
        pq.read_table(_path(data, table))
        times[view] = time.perf_counter() - at
    return {"total": time.perf_counter() - start, **times}


def _measure(which: str, data: Path) -> tuple[dict[str, float], float]:
    """Run one step in a child under ``/usr/bin/time -v``: its times and peak RSS (GiB).

    ``which``: ``read``, ``materialize`` (bulk write) or ``materialize-feast``.
    """
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", which, "--data", str(data)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{done.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if rss is None:
        raise RuntimeError(f"no peak RSS in the output of /usr/bin/time:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), int(rss.group(1)) / 1024 / 1024


def online_sizes(data: Path) -> tuple[float, float]:
    """The online store's size and that of its covering indexes, in MB."""
    from features.online import cover_index
    from features.store import online_db_path

    with sqlite3.connect(f"file:{online_db_path(Settings(data_dir=data))}?mode=ro", uri=True) as c:
        pages = c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    covers = {cover_index(f"inboxlab_{view}") for view in VIEWS}
    return sum(n for _, n in pages) / 1e6, sum(n for name, n in pages if name in covers) / 1e6


def check_online(data: Path, sample: int = 200, day: datetime = DAY) -> int:
    """Compare ``get_online_features`` of ``sample`` recipients with the Parquet rows.

    Returns the number of values compared; raises ``AssertionError`` naming the first
    feature whose online value differs.
    """
    from features.store import feature_store

    store = feature_store(_settings(data), project=_project(data))
    compared = 0
    for view, table in VIEWS.items():
        rows = pq.read_table(_path(data, table, day)).slice(0, sample).to_pylist()
        names = list(TABLES[table])
        online = store.get_online_features(
            features=[f"{view}:{n}" for n in names],
            entity_rows=[{"recipient_id": r["recipient_id"]} for r in rows],
        ).to_dict()
        for name in names:
            for i, row in enumerate(rows):
                got, want = online[name][i], row[name]
                same = got == want or (isinstance(want, float) and abs(got - want) < 1e-12)
                assert same, f"{view}:{name} of {row['recipient_id']}: online {got!r} != {want!r}"
                compared += 1
    return compared


def _print_load(label: str, loaded: dict[str, float], n: int, rss: float) -> None:
    total_values = n * sum(len(v) for v in TABLES.values())
    steps: list[tuple[str, float, int | None]] = [
        ("apply the repository (registry, tables)", loaded["setup"], None)
    ]
    for view, table in VIEWS.items():
        label_view = f"materialize {view} ({len(TABLES[table])} features)"
        steps.append((label_view, loaded[view], n * len(TABLES[table])))
    if "cover_indexes" in loaded:
        steps.append(("covering indexes (features.online)", loaded["cover_indexes"], total_values))
    if "prepared_rows" in loaded:
        steps.append(("prepared rows (features.prepared)", loaded["prepared_rows"], total_values))
    steps.append(("whole call", loaded["total"], total_values))
    print(f"{label}:")
    print(f"  {'step':48} {'seconds':>8} {'µs/value':>9} {'peak RSS GiB':>13}")
    for step, seconds, values in steps:
        per_value = f"{seconds / values * 1e6:9.2f}" if values else " " * 9
        print(f"  {step:48} {seconds:8.2f} {per_value}")
    print(f"  {'peak RSS of the whole call':48} {'':8} {'':9} {rss:13.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument(
        "--second-day",
        action="store_true",
        help="then load a second day into copies of the store with and without the indexes",
    )
    parser.add_argument(
        "--feast",
        action="store_true",
        help="also load the day through Feast's own row-by-row write, into a copy (the baseline)",
    )
    parser.add_argument(
        "--online",
        choices=["sqlite", "redis"],
        default="sqlite",
        help=f"the online store (redis: {REDIS_URL}, a project per load, removed afterwards)",
    )
    parser.add_argument(
        "--child", choices=["materialize", "materialize-feast", "read"], help=argparse.SUPPRESS
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "read":
        print(json.dumps(_child_read(args.data)))
        return 0
    if args.child:
        print(json.dumps(_child_materialize(args.data, bulk=args.child == "materialize")))
        return 0
    if args.online == "redis" and args.second_day:
        parser.error("--second-day times the SQLite covering indexes; use it with --online sqlite")
    os.environ["BENCH_ONLINE"] = args.online
    os.environ["BENCH_RUN"] = str(os.getpid())  # names this run's Redis projects
    n = args.recipients
    with tempfile.TemporaryDirectory(prefix="inboxlab-bench-materialize-") as tmp:
        try:
            _run(args, n, Path(tmp))
        finally:
            if args.online == "redis":
                from features.store import feature_store

                for data in (Path(tmp) / "data", Path(tmp) / "feast-write"):
                    if (data / "feast").exists():
                        feature_store(_settings(data), project=_project(data)).teardown()
    return 0


def _run(args: argparse.Namespace, n: int, tmp: Path) -> None:
    total_values = n * sum(len(v) for v in TABLES.values())
    data = tmp / "data"
    write_snapshots(data, n)
    feast_data = tmp / "feast-write"
    if args.feast:
        shutil.copytree(data, feast_data)
    read, read_rss = _measure("read", data)
    loaded, load_rss = _measure("materialize", data)
    compared = check_online(data)
    print(f"{n:,} recipients, one snapshot day, {args.online} online store; ", end="")
    print(f"online values checked: {compared:,}")
    _print_load("first load, bulk write", loaded, n, load_rss)
    print(
        f"  {'baseline: pyarrow read of the same rows':48} {read['total']:8.2f} "
        f"{read['total'] / total_values * 1e6:9.2f} {read_rss:13.2f}"
    )
    print(f"materialize / read: {loaded['total'] / read['total']:.0f}×")
    if args.feast:
        theirs, feast_rss = _measure("materialize-feast", feast_data)
        checked = check_online(feast_data)
        print(f"Feast's own write, into a copy; online values checked: {checked:,}")
        _print_load("first load, Feast's write", theirs, n, feast_rss)
        views = sum(loaded[view] for view in VIEWS)
        feast_views = sum(theirs[view] for view in VIEWS)
        print(
            f"Feast's write / bulk write: views {feast_views / views:.1f}×, "
            f"whole call {theirs['total'] / loaded['total']:.1f}×"
        )
    if args.online == "sqlite":
        size, covers = online_sizes(data)
        print(f"online store: {size:.1f} MB, of which covering indexes {covers:.1f} MB")
    if args.second_day:
        from features.online import cover_index
        from features.store import online_db_path

        day = DAY + timedelta(days=1)
        write_snapshots(data, n, day)
        bare = tmp / "without-indexes"
        shutil.copytree(data, bare)
        with sqlite3.connect(online_db_path(Settings(data_dir=bare))) as conn:
            for view in VIEWS:
                conn.execute(f'DROP INDEX "{cover_index(f"inboxlab_{view}")}"')
        for label, where in (("with", data), ("without", bare)):
            again, rss = _measure("materialize", where)
            checked = check_online(where, day=day)
            print(f"second day, {checked:,} values checked")
            _print_load(f"second day, store {label} the covering indexes", again, n, rss)


if __name__ == "__main__":
    sys.exit(main())
