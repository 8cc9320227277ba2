"""The feature build: incremental days, no look-ahead, numbers against a slow recomputation."""

from __future__ import annotations

import logging
import math
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.engineering.build import build_features, existing_days
from features.engineering.sql import (
    COHORT_RATE_STRENGTH,
    MACHINE_OPEN_SECONDS,
    SCORE_TAU,
    SEND_RATE_STRENGTH,
    recipient_statements,
)
from features.engineering.tables import (
    NEVER_DAYS,
    locked_tables,
    migrate_layout,
    table_dir,
    table_files,
    table_glob,
)
from features.erasure import erase_recipient
from inboxlab.errors import NotFoundError
from inboxlab.settings import Settings
from tests.features.conftest import START, Row, event, write_events, write_recipients


def read_table(settings: Settings, table: str) -> pd.DataFrame:
    glob = table_glob(settings.data_dir, table)
    return duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=false)").df()


def _machine(row: Row, rows: list[Row]) -> bool:
    if row["is_machine_open"] is not None:
        return bool(row["is_machine_open"])
    delivers = [
        r["occurred_at"]
        for r in rows
        if r["kind"] == "deliver"
        and r["recipient_id"] == row["recipient_id"]
        and r["campaign_id"] is not None
        and r["campaign_id"] == row["campaign_id"]
    ]
    if not delivers:
        return False
    first: datetime = min(delivers)  # type: ignore[type-var, assignment]
    at: datetime = row["occurred_at"]  # type: ignore[assignment]
    return first <= at < first + timedelta(seconds=MACHINE_OPEN_SECONDS)


def slow_features(
    rows: list[Row], recipient: str, snapshot: datetime, joined: date | None = None
) -> dict[str, float]:
    """The obvious recomputation of a few features from the raw rows (``joined``: the day
    the recipient directory says the recipient joined)."""
    mine = [r for r in rows if r["recipient_id"] == recipient and r["occurred_at"] < snapshot]  # type: ignore[operator]
    out: dict[str, float] = {}
    for w in (7, 30, 90):
        recent = [r for r in mine if r["occurred_at"] >= snapshot - timedelta(days=w)]  # type: ignore[operator]
        opens = [r for r in recent if r["kind"] == "open"]
        out[f"sends_{w}d"] = sum(r["kind"] == "send" for r in recent)
        out[f"opens_{w}d"] = sum(not _machine(r, rows) for r in opens)
        out[f"machine_opens_{w}d"] = sum(_machine(r, rows) for r in opens)
        out[f"clicks_{w}d"] = sum(r["kind"] == "click" for r in recent)
        out[f"revenue_{w}d"] = sum(float(r["value"] or 0) for r in recent if r["kind"] == "convert")  # type: ignore[arg-type]
    human_open_days = [
        r["occurred_at"].date()  # type: ignore[attr-defined]
        for r in mine
        if r["kind"] == "open" and not _machine(r, rows)
    ]
    out["days_since_last_open"] = (
        (snapshot.date() - max(human_open_days)).days if human_open_days else NEVER_DAYS
    )
    start = min(r["occurred_at"].date() for r in mine)  # type: ignore[attr-defined]
    if joined is not None and joined < start:
        start = joined
    out["tenure_days"] = (snapshot.date() - start).days
    score = 0.0
    for r in mine:
        age = (snapshot.date() - r["occurred_at"].date()).days  # type: ignore[attr-defined]
        if age > 90:
            continue
        weight = {"click": 2, "convert": 4}.get(str(r["kind"]), 0)
        if r["kind"] == "open" and not _machine(r, rows):
            weight = 1
        score += weight * math.exp(-age / SCORE_TAU)
    out["engagement_score"] = score
    return out


def test_snapshots_match_a_slow_recomputation(
    settings: Settings, small_log: Callable[[], list[Row]]
) -> None:
    rows = small_log()
    build_features(settings)
    table = read_table(settings, "engagement")
    sample = table.sample(40, random_state=1)
    # ``small_log`` puts r000-r029 in the directory, joined on START; the others are unknown.
    joined = {f"r{i:03d}": START.date() for i in range(30)}
    for _, got in sample.iterrows():
        snapshot = got["event_timestamp"].to_pydatetime()
        rid = got["recipient_id"]
        expected = slow_features(rows, rid, snapshot, joined.get(rid))
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (
                name,
                got["recipient_id"],
            )


def test_event_at_midnight_belongs_to_the_next_snapshot(settings: Settings) -> None:
    midnight = START + timedelta(days=3)
    rows = [
        event("a", "send", START + timedelta(hours=9)),
        event("a", "open", midnight - timedelta(microseconds=1)),
        event("a", "click", midnight),
        event("a", "send", midnight + timedelta(days=1, hours=2)),
    ]
    write_events(settings, rows)
    build_features(settings)
    table = read_table(settings, "engagement").set_index("event_timestamp")
    at_midnight = table.loc[pd.Timestamp(midnight)]
    assert at_midnight["opens_7d"] == 1
    assert at_midnight["clicks_7d"] == 0
    assert table.loc[pd.Timestamp(midnight + timedelta(days=1))]["clicks_7d"] == 1


def test_second_build_only_computes_new_days(settings: Settings) -> None:
    write_events(settings, [event("a", "send", START + timedelta(hours=1))])
    first = build_features(settings)
    assert first.days == (date(2026, 3, 2),)
    assert build_features(settings).days == ()
    write_events(settings, [event("b", "send", START + timedelta(days=2, hours=1))])
    second = build_features(settings)
    assert second.days == (date(2026, 3, 3), date(2026, 3, 4))
    assert existing_days(settings) == [date(2026, 3, d) for d in (2, 3, 4)]
    table = read_table(settings, "engagement")
    assert sorted(table.groupby("recipient_id").size().items()) == [("a", 3), ("b", 1)]


def test_tables_of_the_day_layout_are_renamed_and_read_the_same(
    tmp_path: Path, small_log: Callable[[], list[Row]], settings: Settings
) -> None:
    # Earlier versions wrote a directory per snapshot day (``date=YYYY-MM-DD``), the day in
    # the directory's name only. Such tables are renamed into place and read as before.
    rows = small_log()
    build_features(settings, until=date(2026, 3, 9))
    old = Settings(data_dir=tmp_path / "old")
    write_events(old, rows)
    shutil.copy(settings.data_dir / "recipients.parquet", old.data_dir / "recipients.parquet")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in ("engagement", "send_time"):  # the log has no variants
        table_dir(old, table).mkdir(parents=True)
        target = str(table_dir(old, table)).replace("'", "''")
        con.execute(
            f"COPY (SELECT *, strftime(event_timestamp, '%Y-%m-%d') AS date "
            f"FROM read_parquet('{table_glob(settings.data_dir, table)}')) "
            f"TO '{target}' (FORMAT parquet, PARTITION_BY (date))"
        )
    assert existing_days(old) == []
    assert migrate_layout(old) == 2 * 8  # two tables, eight days each
    assert existing_days(old) == existing_days(settings)
    assert not list(table_dir(old, "engagement").glob("date=*"))
    for table in ("engagement", "send_time"):
        pd.testing.assert_frame_equal(_sorted_table(old, table), _sorted_table(settings, table))
    assert migrate_layout(old) == 0
    # A later build continues after the renamed days, like one after its own.
    assert build_features(old).days == build_features(settings).days


@pytest.fixture
def four_days(small_log: Callable[[], list[Row]], settings: Settings) -> Settings:
    """The small log's tables built up to 2026-03-05: one chunk of four snapshot days."""
    small_log()
    build_features(settings, until=date(2026, 3, 5))
    return settings


def test_a_chunk_being_written_is_not_read(four_days: Settings) -> None:
    settings = four_days
    files = table_files(settings, "engagement")
    staging = table_dir(settings, "engagement") / "_staging-0"
    staging.mkdir()
    shutil.copy(files[0], staging / "part-0.parquet")
    assert table_files(settings, "engagement") == files
    assert existing_days(settings) == [date(2026, 3, d) for d in (2, 3, 4, 5)]


def test_a_build_cut_short_before_engagement_is_built_again(four_days: Settings) -> None:
    # ``engagement`` is published last: a build stopped before it leaves the other tables'
    # chunks, which the next build (here over a longer span) replaces.
    settings = four_days
    expected = _sorted_table(settings, "send_time")
    chunk = table_dir(settings, "engagement") / "snapshots-20260302-20260305"
    shutil.rmtree(chunk)
    assert existing_days(settings) == []
    build_features(settings, until=date(2026, 3, 5))
    assert [d.name for d in table_dir(settings, "send_time").iterdir()] == [chunk.name]
    pd.testing.assert_frame_equal(
        _sorted_table(settings, "send_time"), expected, check_exact=False, rtol=1e-12
    )
    shutil.rmtree(chunk)
    build_features(settings, until=date(2026, 3, 7))
    assert [d.name for d in table_dir(settings, "send_time").iterdir()] == [
        "snapshots-20260302-20260307"
    ]
    assert len(read_table(settings, "send_time")) == len(read_table(settings, "engagement"))


def test_writers_of_the_tables_take_turns_and_clear_a_killed_builds_staging(
    four_days: Settings,
) -> None:
    settings = four_days
    results: list[object] = []
    with locked_tables(settings):  # another writer (a build or an erasure) is running
        dead = table_dir(settings, "send_time") / "_staging-killed"  # left by a killed writer
        dead.mkdir()
        (dead / "part-0.parquet").write_bytes(b"half a file")
        builder = threading.Thread(target=lambda: results.append(build_features(settings)))
        eraser = threading.Thread(target=lambda: results.append(erase_recipient(settings, "a")))
        builder.start()
        eraser.start()
        builder.join(timeout=0.5)
        eraser.join(timeout=0.5)
        assert builder.is_alive() and eraser.is_alive() and not results  # both wait
        assert dead.exists()
    builder.join()
    eraser.join()
    assert len(results) == 2 and not dead.exists()
    assert existing_days(settings)[-1] > date(2026, 3, 5)


def test_fatigue_consent_and_local_profile(settings: Settings) -> None:
    write_recipients(settings, {"a": "Asia/Tokyo", "b": "Nowhere/Land"})
    day = START + timedelta(days=1)
    rows = [
        event("a", "send", START + timedelta(hours=1)),
        event("a", "send", day + timedelta(hours=1)),
        event("a", "open", day + timedelta(hours=2)),  # 11:00 in Tokyo, a Monday
        event("a", "unsubscribe", day + timedelta(hours=3)),
        event("b", "complaint", START + timedelta(hours=1)),
    ]
    write_events(settings, rows)
    build_features(settings, until=date(2026, 3, 3))
    eng = read_table(settings, "engagement").set_index(["recipient_id", "event_timestamp"])
    snap = pd.Timestamp(START + timedelta(days=2))
    assert eng.loc[("a", snap), "sends_1d"] == 1
    assert eng.loc[("a", snap), "sends_7d"] == 2
    assert eng.loc[("a", snap), "is_unsubscribed"] == 1
    assert eng.loc[("b", snap), "has_complained"] == 1
    prof = read_table(settings, "send_time").set_index(["recipient_id", "event_timestamp"])
    a = prof.loc[("a", snap)]
    assert a["timezone"] == "Asia/Tokyo"
    assert prof.loc[("b", snap), "timezone"] == "UTC"
    hours = [a[f"open_hour_{h:02d}"] for h in range(24)]
    assert max(range(24), key=hours.__getitem__) == 11
    assert sum(hours) == pytest.approx(1.0)
    assert max(range(7), key=lambda d: a[f"open_dow_{d}"]) == 0


def test_send_hour_rate_is_higher_in_the_bucket_whose_sends_were_opened(
    settings: Settings,
) -> None:
    def send(rid: str, camp: str, at: datetime) -> Row:
        return event(rid, "send", at, campaign_id=camp)

    def human_open(rid: str, camp: str, at: datetime) -> Row:
        return event(rid, "open", at, campaign_id=camp, is_machine_open=False)

    day = [START + timedelta(days=d) for d in range(7)]
    rows = [
        # "a" opens what is sent in the morning (bucket 09-11) and not what is sent at 20:00.
        send("a", "c0", day[0] + timedelta(hours=9, minutes=10)),
        human_open("a", "c0", day[0] + timedelta(hours=10)),
        send("a", "c1", day[1] + timedelta(hours=20)),
        send("a", "c2", day[2] + timedelta(hours=9)),
        human_open("a", "c2", day[3] + timedelta(hours=8)),  # 23 h later: counts
        send("a", "c3", day[3] + timedelta(hours=20)),
        event("a", "open", day[3] + timedelta(hours=21), campaign_id="c3", is_machine_open=True),
        human_open("a", "c3", day[5] + timedelta(hours=21)),  # 49 h later: too late
        human_open("a", "cx", day[1] + timedelta(hours=21)),  # another campaign's open
        # "b", same (UTC) cohort, opens an evening send.
        send("b", "c0", day[0] + timedelta(hours=20)),
        human_open("b", "c0", day[0] + timedelta(hours=21)),
    ]
    write_events(settings, rows)
    build_features(settings, until=day[6].date())
    table = read_table(settings, "send_time").set_index(["recipient_id", "event_timestamp"])
    # An outcome counts from the snapshot after the day following the send, never before.
    assert table.loc[("a", pd.Timestamp(day[1])), "send_hour_sends_90d"] == 0
    assert table.loc[("a", pd.Timestamp(day[2])), "send_hour_sends_90d"] == 1
    a = table.loc[("a", pd.Timestamp(day[6]))]
    assert a["send_hour_sends_90d"] == 4
    # The slow reference: UTC cohort 2/2 opened at 09-11 and 1/3 at 18-20, 3/5 overall.
    m, k = COHORT_RATE_STRENGTH, SEND_RATE_STRENGTH
    overall = 3 / 5
    cohort_09 = (2 + m * overall) / (2 + m)
    cohort_18 = (1 + m * overall) / (3 + m)
    assert a["send_hour_rate_09"] == pytest.approx((2 + k * cohort_09) / (2 + k))
    assert a["send_hour_rate_18"] == pytest.approx((0 + k * cohort_18) / (2 + k))
    assert a["send_hour_rate_00"] == pytest.approx(overall)
    assert a["send_hour_rate_09"] > a["send_hour_rate_00"] > a["send_hour_rate_18"]
    b = table.loc[("b", pd.Timestamp(day[6]))]
    assert b["send_hour_rate_18"] == pytest.approx((1 + k * cohort_18) / (1 + k))


def test_late_open_profile_ignores_opens_soon_after_delivery(settings: Settings) -> None:
    rows: list[Row] = []
    for d in range(3):
        sent = START + timedelta(days=d, hours=15)
        camp = f"c{d}"
        rows += [
            event("a", "send", sent, campaign_id=camp),
            event("a", "deliver", sent + timedelta(seconds=30), campaign_id=camp),
        ]
    rows += [
        # Opened on arrival twice (15:20), once late in the evening (19:30).
        event("a", "open", START + timedelta(hours=15, minutes=20), campaign_id="c0"),
        event("a", "open", START + timedelta(days=1, hours=15, minutes=20), campaign_id="c1"),
        event("a", "open", START + timedelta(days=2, hours=19, minutes=30), campaign_id="c2"),
    ]
    write_events(settings, rows)
    build_features(settings, until=date(2026, 3, 4))
    table = read_table(settings, "send_time").set_index(["recipient_id", "event_timestamp"])
    a = table.loc[("a", pd.Timestamp(START + timedelta(days=3)))]
    assert a["profile_opens_90d"] == 3
    assert a["late_opens_90d"] == 1
    late = [a[f"late_open_hour_{h:02d}"] for h in range(24)]
    assert max(range(24), key=late.__getitem__) == 19
    assert sum(late) == pytest.approx(1.0)
    assert max(range(24), key=lambda h: a[f"open_hour_{h:02d}"]) == 15


def test_only_a_bounce_after_the_last_delivery_counts_as_hard(settings: Settings) -> None:
    rows = [
        # soft: bounced, then delivered the next day
        event("soft", "deliver", START + timedelta(hours=1)),
        event("soft", "bounce", START + timedelta(days=1, hours=1)),
        event("soft", "deliver", START + timedelta(days=2, hours=1)),
        # hard: delivered once, then bounced and never delivered again
        event("hard", "deliver", START + timedelta(hours=1)),
        event("hard", "bounce", START + timedelta(days=1, hours=1)),
        event("hard", "send", START + timedelta(days=2, hours=1)),
        # never delivered at all
        event("bad", "bounce", START + timedelta(hours=1)),
    ]
    write_events(settings, rows)
    build_features(settings, until=date(2026, 3, 4))
    eng = read_table(settings, "engagement").set_index(["recipient_id", "event_timestamp"])
    snap = pd.Timestamp(START + timedelta(days=3))
    assert eng.loc[("soft", snap), "has_bounced"] == 0
    assert eng.loc[("hard", snap), "has_bounced"] == 1
    assert eng.loc[("bad", snap), "has_bounced"] == 1
    assert eng.loc[("soft", pd.Timestamp(START + timedelta(days=2))), "has_bounced"] == 1


def test_missing_event_log_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="inboxlab simulate"):
        build_features(settings)


def test_latest_snapshot_is_never_after_today(settings: Settings) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_events(
        settings, [event("a", "send", today - timedelta(days=1)), event("a", "open", today)]
    )
    result = build_features(settings)
    assert result.days[-1] == today.date()


def _sorted_table(settings: Settings, table: str) -> pd.DataFrame:
    frame = read_table(settings, table).drop(columns="created_at")
    return frame.sort_values(["recipient_id", "event_timestamp"]).reset_index(drop=True)


def test_passes_chunks_and_incremental_builds_write_the_same_tables(
    tmp_path: Path, small_log: Callable[[], list[Row]], settings: Settings
) -> None:
    rows = small_log()
    build_features(settings)
    other = Settings(data_dir=tmp_path / "other")
    write_events(other, rows)
    shutil.copy(settings.data_dir / "recipients.parquet", other.data_dir / "recipients.parquet")
    steps: list[tuple[int, int]] = []
    # Two snapshot days per connection and about three recipients per pass.
    build_features(other, until=date(2026, 3, 9), chunk_days=2, rows_per_pass=30)
    build_features(other, rows_per_pass=30, progress=lambda done, todo: steps.append((done, todo)))
    assert steps[0] == (0, 12) and steps[-1] == (12, 12) and len(steps) > 3
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    for table in ("engagement", "send_time"):
        pd.testing.assert_frame_equal(
            _sorted_table(other, table), _sorted_table(settings, table), rtol=1e-12
        )
    # A directory per chunk: four of two days, then the second build's one; a file per pass.
    chunks = sorted(table_dir(other, "engagement").iterdir())
    assert [c.name for c in chunks] == [
        *(f"snapshots-202603{d:02d}-202603{d + 1:02d}" for d in (2, 4, 6, 8)),
        "snapshots-20260310-20260321",
    ]
    assert all(len(list(chunk.glob("*.parquet"))) > 1 for chunk in chunks)


def test_counts_stay_exact_when_one_field_is_large(settings: Settings) -> None:
    # The counts are packed into shared integers sized by the most events of a recipient:
    # a field at that bound must not spill into its neighbours.
    rows = [
        event("a", "open", START + timedelta(hours=10, seconds=i), is_machine_open=False)
        for i in range(300)
    ]
    rows += [event("a", "click", START + timedelta(hours=11)), event("b", "send", START)]
    write_events(settings, rows)
    build_features(settings, until=date(2026, 3, 2))
    eng = read_table(settings, "engagement").set_index("recipient_id")
    assert eng.loc["a", "opens_7d"] == 300
    assert eng.loc["a", "clicks_7d"] == 1
    assert eng.loc["a", "sends_7d"] == 0
    assert eng.loc["a", "machine_opens_7d"] == 0
    prof = read_table(settings, "send_time").set_index("recipient_id")
    assert prof.loc["a", "profile_opens_90d"] == 300
    assert prof.loc["a", "late_opens_90d"] == 0
    assert prof.loc["b", "profile_opens_90d"] == 0


def test_statements_refuse_counts_too_large_to_pack() -> None:
    with pytest.raises(ValueError, match="max_events"):
        recipient_statements(20_000, 20_010, max_events=2**52)


def test_tenure_counts_from_the_join_day_when_the_directory_knows_it(
    settings: Settings,
) -> None:
    # "old" joined long before its first event, "new" has no join day: its tenure counts
    # from its first event, as does that of "late", whose join day comes after its first
    # event, and of "absent", who is not in the directory at all.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    joined = [START - timedelta(days=400) + timedelta(hours=15), None, START + timedelta(days=2)]
    pq.write_table(
        pa.table(
            {
                "recipient_id": ["old", "new", "late"],
                "timezone": ["UTC", "Europe/Paris", "UTC"],
                "created_at": pa.array(joined, pa.timestamp("us", tz="UTC")),
            }
        ),
        settings.data_dir / "recipients.parquet",
    )
    rows = [event(r, "send", START + timedelta(days=1, hours=9)) for r in ("old", "new", "late")]
    rows.append(event("absent", "send", START + timedelta(days=1, hours=9)))
    write_events(settings, rows)
    build_features(settings, until=date(2026, 3, 5))
    eng = read_table(settings, "engagement").set_index(["recipient_id", "event_timestamp"])
    snap = pd.Timestamp(START + timedelta(days=4))
    assert eng.loc[("old", snap), "tenure_days"] == 404
    for rid in ("new", "late", "absent"):
        assert eng.loc[(rid, snap), "tenure_days"] == 3


def test_debug_logging_times_every_step_and_write(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_events(settings, [event("a", "send", START + timedelta(hours=1))])
    with caplog.at_level(logging.DEBUG, logger="features.engineering.build"):
        build_features(settings, rows_per_pass=1)
    # The timings ride on the records as attributes (``extra``), read here from ``vars``.
    timed = [vars(r) for r in caplog.records if "step" in vars(r)]
    steps = [t["step"] for t in timed]
    names = [s.name for s in recipient_statements(20_000, 20_001, max_events=1)]
    for name in ("labelled_events", "cohort", *names, "recipient_variant"):
        assert steps.count(name) == 1, name
    for table in ("engagement", "send_time", "recipient_variant"):
        assert steps.count(f"write {table}") == 1, table
    assert all(t["wall_s"] >= 0 and t["cpu_s"] >= 0 for t in timed)


def test_steps_are_not_timed_without_debug_logging(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_events(settings, [event("a", "send", START + timedelta(hours=1))])
    with caplog.at_level(logging.INFO, logger="features.engineering.build"):
        build_features(settings)
    assert not [r for r in caplog.records if "step" in vars(r)]
