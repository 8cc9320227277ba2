"""Per-(recipient, variant) history: sparse rows, exact windows, attribution, Spark parity."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from features.engineering.build import build_features, day_num, register_inputs, run_statements
from features.engineering.sql import MACHINE_OPEN_SECONDS
from features.engineering.tables import VARIANT_FEATURES, VARIANT_TABLE, table_glob
from features.engineering.variant import (
    VARIANT_OPEN_PRIOR_STRENGTH,
    VARIANT_PRIOR_STRENGTH,
    variant_statements,
)
from inboxlab.settings import Settings
from tests.features.conftest import (
    START,
    Row,
    event,
    random_log,
    with_variants,
    write_events,
    write_recipients,
)

COUNTS = {
    "variant_sends_90d": "send",
    "variant_deliveries_90d": "deliver",
    "variant_opens_90d": "open",
    "variant_clicks_90d": "click",
    "variant_conversions_90d": "convert",
}


def read(settings: Settings) -> pd.DataFrame:
    glob = table_glob(settings.data_dir, VARIANT_TABLE)
    frame = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=false)").df()
    frame["day"] = pd.to_datetime(frame["event_timestamp"]).dt.date
    return frame.sort_values(["recipient_id", "variant_id", "day"]).reset_index(drop=True)


def _human(row: Row, rows: list[Row]) -> bool:
    if row["is_machine_open"] is not None:
        return not row["is_machine_open"]
    delivers = [
        r["occurred_at"]
        for r in rows
        if r["kind"] == "deliver"
        and r["recipient_id"] == row["recipient_id"]
        and r["campaign_id"] == row["campaign_id"]
        and r["campaign_id"] is not None
    ]
    if not delivers:
        return True
    first: datetime = min(delivers)  # type: ignore[type-var, assignment]
    at: datetime = row["occurred_at"]  # type: ignore[assignment]
    return not first <= at < first + timedelta(seconds=MACHINE_OPEN_SECONDS)


def _variant_of(row: Row, rows: list[Row]) -> object:
    if row["variant_id"] is not None:
        return row["variant_id"]
    sends = [
        r["variant_id"]
        for r in rows
        if r["kind"] == "send"
        and r["recipient_id"] == row["recipient_id"]
        and r["campaign_id"] is not None
        and r["campaign_id"] == row["campaign_id"]
        and r["variant_id"] is not None
    ]
    return min(sends) if sends else None  # type: ignore[type-var]


def slow_counts(rows: list[Row], recipient: str, variant: str, day: date) -> dict[str, int]:
    """The obvious recomputation: events of the pair in the 90 days before ``day``."""
    snapshot = datetime(day.year, day.month, day.day, tzinfo=START.tzinfo)
    recent = [
        r
        for r in rows
        if r["recipient_id"] == recipient
        and snapshot - timedelta(days=90) <= r["occurred_at"] < snapshot  # type: ignore[operator]
        and _variant_of(r, rows) == variant
    ]
    out = {}
    for name, kind in COUNTS.items():
        mine = [r for r in recent if r["kind"] == kind]
        out[name] = sum(_human(r, rows) for r in mine) if kind == "open" else len(mine)
    return out


def test_a_pair_gets_rows_only_when_its_window_changes(settings: Settings) -> None:
    sent = START + timedelta(hours=9)
    write_events(
        settings,
        [
            event("a", "send", sent, campaign_id="c1", variant_id="v1"),
            event("a", "deliver", sent + timedelta(seconds=5), campaign_id="c1", variant_id="v1"),
            # On delivery, unflagged: a machine open. Later ones: human, attributed by campaign.
            event("a", "open", sent + timedelta(seconds=30), campaign_id="c1"),
            event("a", "open", sent + timedelta(hours=2), campaign_id="c1"),
            event("a", "click", sent + timedelta(days=1, hours=2), campaign_id="c1"),
            event("a", "convert", sent + timedelta(days=1, hours=3), campaign_id="c1"),
            event("a", "click", sent + timedelta(days=1), campaign_id=None),  # unattributable
            event("b", "send", START + timedelta(days=100), campaign_id="c2", variant_id="v2"),
        ],
    )
    build_features(settings)
    frame = read(settings)
    a = frame[frame.recipient_id == "a"]
    day0 = START.date()
    assert a["day"].tolist() == [day0 + timedelta(days=d) for d in (1, 2, 91, 92)]
    assert (a["variant_id"] == "v1").all()
    first, second, third, last = (a.iloc[i] for i in range(4))
    assert [first[c] for c in COUNTS] == [1, 1, 1, 0, 0]
    assert [second[c] for c in COUNTS] == [1, 1, 1, 1, 1]
    assert [third[c] for c in COUNTS] == [0, 0, 0, 1, 1]  # the send day left the window
    assert [last[c] for c in COUNTS] == [0, 0, 0, 0, 0]
    assert last["variant_click_rate_90d"] == 0.0 and last["variant_click_to_open_rate_90d"] == 0.0
    # One click per delivery in the population of v1 (only "a"): the shrunk rate stays 1.
    assert second["variant_click_rate_90d"] == pytest.approx(1.0)
    assert frame[frame.recipient_id == "b"]["day"].tolist() == [day0 + timedelta(days=101)]


def test_rows_match_a_slow_recomputation_and_hold_between_changes(settings: Settings) -> None:
    rows = with_variants(random_log(12, 30, seed=4))
    write_events(settings, rows)
    write_recipients(settings, {f"r{i:03d}": "Europe/Paris" for i in range(12)})
    build_features(settings)
    frame = read(settings)
    first, last = START.date() + timedelta(days=1), START.date() + timedelta(days=30)
    for (rid, vid), pair in list(frame.groupby(["recipient_id", "variant_id"]))[:10]:
        by_day = {r.day: r for r in pair.itertuples()}
        current = None
        day = first
        while day <= last:
            current = by_day.get(day, current)  # no row: the previous one still holds
            expected = slow_counts(rows, str(rid), str(vid), day)
            got = {c: 0 if current is None else getattr(current, c) for c in COUNTS}
            assert got == expected, (rid, vid, day)
            day += timedelta(days=1)


def test_rates_are_shrunk_toward_the_variants_population(settings: Settings) -> None:
    rows = with_variants(random_log(12, 30, seed=4))
    write_events(settings, rows)
    write_recipients(settings, {f"r{i:03d}": "Europe/Paris" for i in range(12)})
    build_features(settings)
    frame = read(settings)
    row = frame[(frame.variant_clicks_90d > 0)].iloc[0]
    day = row["day"]
    population = {c: 0 for c in COUNTS}
    for rid in {str(r["recipient_id"]) for r in rows}:
        for name, value in slow_counts(rows, rid, str(row["variant_id"]), day).items():
            population[name] += value
    pop_ctr = population["variant_clicks_90d"] / population["variant_deliveries_90d"]
    pop_cto = population["variant_clicks_90d"] / population["variant_opens_90d"]
    k, m = VARIANT_PRIOR_STRENGTH, VARIANT_OPEN_PRIOR_STRENGTH
    clicks = row["variant_clicks_90d"]
    assert row["variant_click_rate_90d"] == pytest.approx(
        (clicks + k * pop_ctr) / (row["variant_deliveries_90d"] + k)
    )
    assert row["variant_click_to_open_rate_90d"] == pytest.approx(
        (clicks + m * pop_cto) / (row["variant_opens_90d"] + m)
    )


def test_incremental_build_writes_the_same_rows(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rows = with_variants(random_log(10, 20, seed=8))
    write_events(settings, rows)
    build_features(settings, until=START.date() + timedelta(days=9))
    build_features(settings)
    other = Settings(data_dir=tmp_path_factory.mktemp("once"))
    write_events(other, rows)
    build_features(other)
    columns = ["recipient_id", "variant_id", "day", *VARIANT_FEATURES]
    pd.testing.assert_frame_equal(read(settings)[columns], read(other)[columns])


FIRST, LAST = date(2026, 3, 4), date(2026, 3, 12)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.usefixtures("spark_available")
def test_spark_sql_matches_duckdb(settings: Settings) -> None:
    from pyspark.sql import SparkSession

    write_events(settings, with_variants(random_log(12, 12, seed=11)))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    register_inputs(con, settings, FIRST, LAST)
    statements = variant_statements(day_num(FIRST), day_num(LAST))
    run_statements(con, statements)
    want = con.execute(f"SELECT * FROM {VARIANT_TABLE}").df()
    calendar = con.execute("SELECT * FROM calendar").df()
    con.close()
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("inboxlab-variant-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        spark.read.parquet(str(settings.events_dir)).drop("date").createOrReplaceTempView("events")
        calendar = calendar.assign(day=pd.to_datetime(calendar["day"]).dt.date)
        spark.createDataFrame(
            calendar.to_dict("records"), "day date, day_num int"
        ).createOrReplaceTempView("calendar")
        for statement in statements:
            spark.sql(statement.sql).cache().createOrReplaceTempView(statement.name)
        got = spark.sql(f"SELECT * FROM {VARIANT_TABLE}").toPandas()
    finally:
        spark.stop()
    keys = ["recipient_id", "variant_id", "day_num"]
    assert len(got) == len(want) > 0
    got = got.sort_values(keys).reset_index(drop=True).drop(columns="day")
    want = want.sort_values(keys).reset_index(drop=True).drop(columns="day")
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-12)
