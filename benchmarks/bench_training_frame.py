"""Point-in-time training frame: 1,000,000 labelled sends × 30 features from 9,000,000 snapshots.

Run from the project root::

    .venv/bin/python benchmarks/bench_training_frame.py                 # 100k × 90 days, 1M sends
    .venv/bin/python benchmarks/bench_training_frame.py --recipients 10000 --sends 100000

Writes synthetic daily snapshots in the feature-table layout, a chunk per day
(``features/engagement/snapshots-YYYYMMDD-YYYYMMDD/part-0.parquet``: ``recipient_id``,
``event_timestamp``, ``created_at`` and 30 engagement features, one row per recipient and
day) and a Parquet file of labelled sends with random recipients and send times, then
measures, each in its own child process under
``/usr/bin/time -v`` so that each has its own peak RSS:

* ``training_frame``: :func:`features.retrieval.training_frame` (keys pass, as-of match with
  a strict ``<`` and the TTL, column pass; input order, cold-start defaults) returning a
  pandas frame;
* baseline: a bare DuckDB ``ASOF LEFT JOIN`` of the same inputs, also fetched into pandas.

Reading the sends from Parquet is not timed. Prints medians of ``--rounds`` calls, the ratio
and the peak RSS of each process; exits non-zero when ``training_frame`` takes 10 s or more
(median) or its process peaks at 4 GiB or more.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.engineering.tables import (
    ENGAGEMENT_FEATURES,
    ENGAGEMENT_TABLE,
    SEND_TIME_FEATURES,
    SEND_TIME_TABLE,
    feature_type,
    snapshot_dir,
    table_glob,
)
from inboxlab.settings import Settings

BUDGET_SECONDS = 10.0
BUDGET_RSS_GIB = 4.0
FEATURES = ENGAGEMENT_FEATURES[:30]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _feature_columns(
    names: tuple[str, ...], n: int, rng: np.random.Generator
) -> dict[str, pa.Array]:
    cols: dict[str, pa.Array] = {}
    for name in names:
        kind = feature_type(name)
        if kind is str:
            cols[name] = pa.array(["Europe/Berlin"] * n)
        elif kind is float:
            cols[name] = pa.array(rng.random(n))
        else:
            cols[name] = pa.array(rng.integers(0, 50, n))
    return cols


def _snapshot(ids: pa.Array, day: datetime, cols: dict[str, pa.Array]) -> pa.Table:
    n = len(ids)
    stamp = pa.array([day] * n, pa.timestamp("us", tz="UTC"))
    return pa.table({"recipient_id": ids, "event_timestamp": stamp, "created_at": stamp, **cols})


def write_inputs(data: Path, recipients: int, days: int, sends: int) -> None:
    """Snapshots of ``recipients`` × ``days`` and ``sends`` labelled sends under ``data``."""
    settings = Settings(data_dir=data)
    rng = np.random.default_rng(0)
    ids = pa.array([f"r{i:07d}" for i in range(recipients)])
    for d in range(days):
        day = START + timedelta(days=d)
        out = snapshot_dir(settings, ENGAGEMENT_TABLE, day.date(), day.date())
        out.mkdir(parents=True, exist_ok=True)
        table = _snapshot(ids, day, _feature_columns(FEATURES, recipients, rng))
        pq.write_table(table, out / "part-0.parquet")
    # training_frame checks that both tables were built; the send-time one is not joined here.
    out = snapshot_dir(settings, SEND_TIME_TABLE, START.date(), START.date())
    out.mkdir(parents=True, exist_ok=True)
    one = _snapshot(ids[:1], START, _feature_columns(SEND_TIME_FEATURES, 1, rng))
    pq.write_table(one, out / "part-0.parquet")
    seconds = rng.integers(86_400, days * 86_400, sends)
    frame = pd.DataFrame(
        {
            "recipient_id": np.char.add(
                "r", np.char.zfill(rng.integers(0, recipients, sends).astype(str), 7)
            ),
            "sent_at": pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s"),
            "clicked": (rng.random(sends) < 0.02).astype(np.int64),
        }
    )
    frame.to_parquet(data / "sends.parquet", index=False)
    (data / "inputs.json").write_text(
        json.dumps({"recipients": recipients, "days": days, "sends": sends})
    )


def _run_ours(data: Path, sends: pd.DataFrame) -> int:
    from features.retrieval import training_frame

    frame = training_frame(Settings(data_dir=data), sends, features=list(FEATURES))
    return len(frame)


def _run_bare(data: Path, sends: pd.DataFrame) -> int:
    import duckdb

    glob = table_glob(data, ENGAGEMENT_TABLE)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("sends", pa.Table.from_pandas(sends, preserve_index=False))
        cols = ", ".join(f"e.{c}" for c in FEATURES)
        frame = con.execute(
            f"SELECT s.*, e.event_timestamp AS snapshot_at, {cols} FROM sends s "
            f"ASOF LEFT JOIN read_parquet('{glob}') e "
            "ON e.recipient_id = s.recipient_id AND e.event_timestamp < s.sent_at"
        ).df()
    finally:
        con.close()
    return len(frame)


def child(which: str, data: Path, rounds: int) -> None:
    """Time ``rounds`` calls of one path in this process and print them as JSON."""
    sends = pd.read_parquet(data / "sends.parquet")
    run = _run_ours if which == "training_frame" else _run_bare
    times, rows = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        rows = run(data, sends)
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "rows": rows}))


def _measure(which: str, data: Path, rounds: int) -> tuple[list[float], int, float]:
    """Run one path in a child under ``/usr/bin/time -v``: its times, rows and peak RSS (GiB)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", which]
    cmd += ["--data", str(data), "--rounds", str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{done.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if rss is None:
        raise RuntimeError(f"no peak RSS in the output of /usr/bin/time:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["times"], out["rows"], int(rss.group(1)) / 1024 / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sends", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--data", type=Path, default=None, help="keep the inputs here (reused when present)"
    )
    parser.add_argument("--child", choices=["training_frame", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.data, args.rounds)
        return 0
    with tempfile.TemporaryDirectory(prefix="inboxlab-bench-frame-") as tmp:
        data = args.data or Path(tmp)
        wanted = {"recipients": args.recipients, "days": args.days, "sends": args.sends}
        marker = data / "inputs.json"
        if not marker.exists() or json.loads(marker.read_text()) != wanted:
            if any(data.glob("*")) and args.data is not None and not marker.exists():
                raise SystemExit(f"--data {data} is not empty and holds no benchmark inputs")
            start = time.perf_counter()
            write_inputs(data, args.recipients, args.days, args.sends)
            print(f"inputs written in {time.perf_counter() - start:.1f} s (not timed)")
        print(
            f"{args.sends:,} sends × {len(FEATURES)} features from "
            f"{args.recipients * args.days:,} snapshot rows "
            f"({args.recipients:,} recipients × {args.days} days)"
        )
        results = {w: _measure(w, data, args.rounds) for w in ("bare", "training_frame")}
    bare, ours = results["bare"], results["training_frame"]
    t_bare, t_ours = statistics.median(bare[0]), statistics.median(ours[0])
    if ours[1] != args.sends:
        raise SystemExit(f"training_frame returned {ours[1]:,} rows for {args.sends:,} sends")
    print(f"{'path':34} {'median s':>9} {'all s':>24} {'peak RSS GiB':>13}")
    for name, (times, _rows, rss) in (("bare DuckDB ASOF join", bare), ("training_frame", ours)):
        print(
            f"{name:34} {statistics.median(times):9.2f} "
            f"{' '.join(f'{t:.2f}' for t in times):>24} {rss:13.2f}"
        )
    print(f"training_frame / bare ASOF join: {t_ours / t_bare:.2f}×")
    ok = t_ours < BUDGET_SECONDS and ours[2] < BUDGET_RSS_GIB
    print(
        f"budget {BUDGET_SECONDS:.0f} s and {BUDGET_RSS_GIB:.0f} GiB: {'met' if ok else 'MISSED'}",
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
