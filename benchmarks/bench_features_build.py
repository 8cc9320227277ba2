"""Feature build and point-in-time retrieval at scale.

Run from the project root::

    /usr/bin/time -v .venv/bin/python benchmarks/bench_features_build.py

Generates a synthetic event log (vectorised, one Parquet file per day) in a temporary data
directory, times ``build_features`` (wall time and peak RSS of the process), then times
``training_frame`` for ``--sends`` labelled sends against the tables just built (``--sends
0`` skips it). The defaults are the target shape: 10,000,000 events of 140,000 recipients
over 90 days, built in under ``--budget-seconds`` with a peak RSS under ``--budget-gib``;
the exit status is 1 when the build misses either. ``--profile`` adds the wall and CPU
seconds of every step of the build, summed over its passes (DuckDB's threads run in this
process, so CPU is the step's).
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.engineering.build import build_features
from features.events.schema import EVENT_SCHEMA
from features.retrieval import training_frame
from inboxlab.settings import Settings

KINDS = np.array(["send", "deliver", "open", "click", "convert", "unsubscribe", "bounce"])
WEIGHTS = np.array([0.3, 0.29, 0.25, 0.1, 0.03, 0.005, 0.025])


def _write_log(settings: Settings, events: int, recipients: int, days: int) -> None:
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_day = events // days
    for d in range(days):
        kind = rng.choice(KINDS, per_day, p=WEIGHTS / WEIGHTS.sum())
        seconds = rng.integers(0, 86_400, per_day)
        at = pd.Timestamp(start + timedelta(days=d)) + pd.to_timedelta(seconds, unit="s")
        table = pa.table(
            {
                "event_id": pa.nulls(per_day, pa.string()),
                "recipient_id": pa.array(
                    np.char.add("r", rng.integers(0, recipients, per_day).astype(str))
                ),
                "kind": pa.array(kind),
                "occurred_at": pa.array(at, pa.timestamp("us", tz="UTC")),
                "campaign_id": pa.array(np.char.add("c", rng.integers(0, 50, per_day).astype(str))),
                "variant_id": pa.nulls(per_day, pa.string()),
                "decision_id": pa.nulls(per_day, pa.string()),
                "value": pa.array(np.where(kind == "convert", rng.random(per_day) * 80, np.nan)),
                "is_machine_open": pa.nulls(per_day, pa.bool_()),
            },
            schema=EVENT_SCHEMA,
        )
        day = (start + timedelta(days=d)).date().isoformat()
        out = settings.events_dir / f"date={day}"
        out.mkdir(parents=True)
        pq.write_table(table, out / "part-0.parquet")


class _StepTimes(logging.Handler):
    """Adds up the per-step timings the build logs at DEBUG, by step name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.steps: dict[str, list[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        step = getattr(record, "step", None)
        if step is None:
            return
        total = self.steps.setdefault(step, [0.0, 0.0])
        total[0] += getattr(record, "wall_s", 0.0)
        total[1] += getattr(record, "cpu_s", 0.0)

    def report(self) -> str:
        rows = sorted(self.steps.items(), key=lambda item: -item[1][1])
        return "\n".join(
            f"  {step:24s} {wall:7.1f} s wall {cpu:7.1f} s CPU" for step, (wall, cpu) in rows
        )


def _profiler() -> _StepTimes:
    handler = _StepTimes()
    build_logger = logging.getLogger("features.engineering.build")
    build_logger.setLevel(logging.DEBUG)
    build_logger.addHandler(handler)
    return handler


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _frame(settings: Settings, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    first = datetime(2026, 1, 2, tzinfo=UTC)
    sends = pd.DataFrame(
        {
            "recipient_id": np.char.add(
                "r", rng.integers(0, args.recipients, args.sends).astype(str)
            ),
            "sent_at": pd.Timestamp(first)
            + pd.to_timedelta(rng.integers(0, (args.days - 1) * 86_400, args.sends), unit="s"),
            "label": rng.integers(0, 2, args.sends),
        }
    )
    start = time.perf_counter()
    frame = training_frame(settings, sends)
    pit_s = time.perf_counter() - start
    print(
        f"training_frame: {len(frame):,} sends x {frame.shape[1] - 4} features in {pit_s:.1f} s, "
        f"peak RSS {_peak_gib():.2f} GiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--recipients", type=int, default=140_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sends", type=int, default=0)
    parser.add_argument("--budget-seconds", type=float, default=60.0)
    parser.add_argument("--budget-gib", type=float, default=4.0)
    parser.add_argument("--profile", action="store_true", help="time every step of the build")
    args = parser.parse_args()
    profiler = _profiler() if args.profile else None
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-build-")))
    try:
        _write_log(settings, args.events, args.recipients, args.days)
        start = time.perf_counter()
        cpu = time.process_time()
        result = build_features(settings)
        build_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu
        peak = _peak_gib()
        print(
            f"build: {args.events:,} events, {args.recipients:,} recipients, {args.days} days"
            f" -> {result.rows['engagement']:,} snapshot rows in {build_s:.1f} s"
            f" (CPU {cpu_s:.1f} s), peak RSS {peak:.2f} GiB"
        )
        if profiler:
            print(profiler.report())
        if args.sends:
            _frame(settings, args)
    finally:
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    met = build_s < args.budget_seconds and peak < args.budget_gib
    print(
        f"budget {args.budget_seconds:.0f} s, {args.budget_gib:.1f} GiB: "
        f"{'met' if met else 'missed'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
