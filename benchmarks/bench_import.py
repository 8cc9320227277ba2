"""Import benchmark: validate and import a CSV of N event rows into an empty event log.

Run as a script (peak memory from the OS)::

    /usr/bin/time -v .venv/bin/python benchmarks/bench_import.py --rows 1000000

It times the full import of N rows and, in the same run, a baseline: reading the same CSV with
pyarrow (no validation, no writing). The ratio says what validation, deduplication and the
atomic Parquet write cost on top of parsing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from features.events import EventLog, import_events

KINDS = np.array(["send", "deliver", "open", "click", "convert", "bounce"])


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` valid event rows with mixed offsets and some duplicate event ids."""
    rng = np.random.default_rng(seed)
    base = np.datetime64("2026-01-01T00:00:00")
    seconds = rng.integers(0, 90 * 86400, rows)
    stamps = (base + seconds.astype("timedelta64[s]")).astype(str)
    offsets = rng.choice(np.array(["+00:00", "-05:00", "+01:00", "+09:00", "Z"]), rows)
    kinds = rng.choice(KINDS, rows)
    ids = np.char.add("e", rng.integers(0, int(rows * 0.99), rows).astype(str))
    table = pa.table(
        {
            "event_id": ids,
            "recipient_id": np.char.add("r", rng.integers(0, rows // 10, rows).astype(str)),
            "kind": kinds,
            "occurred_at": np.char.add(stamps, offsets),
            "campaign_id": np.char.add("c", rng.integers(0, 40, rows).astype(str)),
            "variant_id": np.char.add("v", rng.integers(0, 3, rows).astype(str)),
            "decision_id": pa.nulls(rows, pa.string()),
            "value": np.where(kinds == "convert", np.round(rng.lognormal(3, 1, rows), 2), np.nan),
            "is_machine_open": np.where(kinds == "open", "false", ""),
        }
    )
    pacsv.write_csv(table, path)


def time_once(csv: Path, workdir: Path) -> tuple[float, float]:
    start = time.perf_counter()
    pacsv.read_csv(csv)
    baseline = time.perf_counter() - start
    log = EventLog(Path(tempfile.mkdtemp(dir=workdir)) / "events")
    start = time.perf_counter()
    import_events([csv], log)
    return time.perf_counter() - start, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "events.csv"
        make_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        runs = [time_once(csv, Path(tmp)) for _ in range(args.repeat)]
    imp = statistics.median(r[0] for r in runs)
    base = statistics.median(r[1] for r in runs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows={args.rows:,} csv={size_mb:.0f} MB repeat={args.repeat}")
    print(f"import (validate+dedupe+write) median {imp:.2f} s")
    print(f"baseline pyarrow read_csv      median {base:.2f} s")
    print(f"ratio import/baseline           {imp / base:.1f}x")
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
