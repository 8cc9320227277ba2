"""The feature SQL gives the same tables on Spark SQL (local mode) as on DuckDB."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.engineering.build import day_num, register_inputs, run_statements
from features.engineering.sql import feature_statements
from inboxlab.settings import Settings
from tests.features.conftest import START, random_log, write_events

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

FIRST, LAST = date(2026, 3, 4), date(2026, 3, 12)


def _duckdb_tables(settings: Settings, max_events: int) -> dict[str, pd.DataFrame]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    register_inputs(con, settings, FIRST, LAST)
    statements = feature_statements(day_num(FIRST), day_num(LAST), max_events=max_events)
    run_statements(con, statements)
    inputs = {
        n: con.execute(f"SELECT * FROM {n}").df() for n in ("calendar", "recipients", "tz_offsets")
    }
    out = {n: con.execute(f"SELECT * FROM {n}").df() for n in ("engagement", "send_time")}
    out.update({f"input:{k}": v for k, v in inputs.items()})
    con.close()
    return out


def test_spark_sql_matches_duckdb(settings: Settings) -> None:
    pyspark_sql = pytest.importorskip("pyspark.sql")
    rows = random_log(12, 12, seed=11)
    write_events(settings, rows)
    # The exact bound packs the most counts per lane: every unpacking path runs on Spark.
    max_events = max(Counter(r["recipient_id"] for r in rows).values())
    # Join days before the log, unknown, or after the first event: every tenure branch.
    joined = [START - timedelta(days=30 + i) if i % 3 == 0 else None for i in range(12)]
    joined[1] = START + timedelta(days=5)
    pq.write_table(
        pa.table(
            {
                "recipient_id": [f"r{i:03d}" for i in range(12)],
                "timezone": [
                    ["Europe/Paris", "America/Chicago", "Asia/Tokyo"][i % 3] for i in range(12)
                ],
                "created_at": pa.array(joined, pa.timestamp("us", tz="UTC")),
            }
        ),
        settings.data_dir / "recipients.parquet",
    )
    expected = _duckdb_tables(settings, max_events)

    spark = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("inboxlab-features-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        events = spark.read.parquet(str(settings.events_dir)).drop("date")
        events.createOrReplaceTempView("events")
        for name in ("calendar", "recipients", "tz_offsets"):
            frame = expected[f"input:{name}"]
            if name == "calendar":
                frame = frame.assign(day=pd.to_datetime(frame["day"]).dt.date)
            if name == "recipients":
                frame = frame.astype({"created_day": "Int64"})
            schema = {
                "calendar": "day date, day_num int",
                "recipients": "recipient_id string, timezone string, created_day int",
                "tz_offsets": "timezone string, day_num int, offset_minutes int",
            }[name]
            records = [
                {k: None if pd.isna(v) else v for k, v in r.items()}
                for r in frame.astype(object).to_dict("records")
            ]
            spark.createDataFrame(records, schema).createOrReplaceTempView(name)
        for statement in feature_statements(day_num(FIRST), day_num(LAST), max_events=max_events):
            spark.sql(statement.sql).cache().createOrReplaceTempView(statement.name)
        for table in ("engagement", "send_time"):
            got = spark.sql(f"SELECT * FROM {table}").toPandas()
            want = expected[table]
            assert len(got) == len(want) > 0
            keys = ["recipient_id", "day_num"]
            got = got.sort_values(keys).reset_index(drop=True).drop(columns="day")
            want = want.sort_values(keys).reset_index(drop=True).drop(columns="day")
            assert list(got.columns) == list(want.columns)
            pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-12)
    finally:
        spark.stop()
