"""Point-in-time training frames: nothing from the future, every send exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from features.engineering.build import build_features
from features.engineering.tables import (
    DEFAULTS,
    VARIANT_DEFAULTS,
    VARIANT_TABLE,
    VARIANT_TTL,
    table_glob,
)
from features.retrieval import training_frame
from inboxlab.errors import InvalidInputError, NotFoundError
from inboxlab.settings import Settings
from tests.features.conftest import START, Row, event, write_events

FEATURES = ["opens_30d", "clicks_7d", "sends_7d", "timezone", "open_hour_09"]


def sends(*rows: tuple[str, object]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "recipient_id": [r for r, _ in rows],
            "sent_at": pd.to_datetime([t for _, t in rows], utc=True),
            "label": list(range(len(rows))),
        }
    )


def test_event_after_a_send_does_not_leak(settings: Settings) -> None:
    sent = START + timedelta(days=5, hours=10)
    write_events(
        settings,
        [
            event("a", "send", START + timedelta(hours=1)),
            event("a", "send", sent),
            event("a", "click", sent + timedelta(minutes=5)),  # the planted future event
            event("a", "send", START + timedelta(days=8)),
        ],
    )
    build_features(settings)
    frame = training_frame(settings, sends(("a", sent)), features=FEATURES)
    assert frame.loc[0, "clicks_7d"] == 0
    assert frame.loc[0, "sends_7d"] == 1
    assert frame.loc[0, "snapshot_at"] == pd.Timestamp(START + timedelta(days=5))
    later = training_frame(settings, sends(("a", START + timedelta(days=7))), features=FEATURES)
    assert later.loc[0, "clicks_7d"] == 1


def _build(settings: Settings) -> None:
    write_events(
        settings,
        [
            event("a", "send", START + timedelta(hours=1)),
            event("a", "open", START + timedelta(days=2)),
        ],
    )
    build_features(settings)


def test_send_exactly_at_a_snapshot_uses_the_one_before(settings: Settings) -> None:
    _build(settings)
    at = START + timedelta(days=3)  # a snapshot holds events before 3 March: 1 open
    frame = training_frame(settings, sends(("a", at), ("a", at + timedelta(microseconds=1))))
    assert list(frame["snapshot_at"]) == [pd.Timestamp(at - timedelta(days=1)), pd.Timestamp(at)]
    assert list(frame["opens_7d"]) == [0, 1]


def test_duplicate_sends_each_get_a_row_in_order(settings: Settings) -> None:
    _build(settings)
    at = START + timedelta(days=3, hours=4)
    frame = training_frame(settings, sends(("a", at), ("zz", at), ("a", at), ("a", at)))
    assert list(frame["label"]) == [0, 1, 2, 3]
    assert list(frame["recipient_id"]) == ["a", "zz", "a", "a"]
    assert (frame.loc[[0, 2, 3], "opens_7d"] == 1).all()


def test_expired_ttl_and_no_history_get_defaults(settings: Settings) -> None:
    _build(settings)  # last snapshot: 3 March
    frame = training_frame(
        settings,
        sends(
            ("a", START + timedelta(days=4, hours=23)),
            ("a", START + timedelta(days=5, hours=1)),
            ("new", START + timedelta(days=3)),
        ),
        features=FEATURES,
    )
    assert frame.loc[0, "opens_30d"] == 1  # 1 day 23 h old: inside the two-day TTL
    for i in (1, 2):
        assert pd.isna(frame.loc[i, "snapshot_at"])
        assert frame.loc[i, FEATURES].tolist() == [DEFAULTS[f] for f in FEATURES]
    raw = training_frame(settings, sends(("new", START + timedelta(days=3))), fill_defaults=False)
    assert raw["opens_30d"].isna().all()


@pytest.mark.filterwarnings("ignore:On demand feature view:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning")
def test_frame_matches_a_slow_join(built_world: tuple[Settings, list[Row]]) -> None:
    settings, _ = built_world
    glob = table_glob(settings.data_dir, "engagement")
    snaps = duckdb.sql(f"SELECT * FROM read_parquet('{glob}')").df()
    sample = snaps.sample(30, random_state=2)
    offsets = pd.to_timedelta([(i * 7919) % 86_400 for i in range(30)], unit="s")
    request = pd.DataFrame(
        {
            "recipient_id": sample["recipient_id"].to_numpy(),
            "sent_at": (sample["event_timestamp"] + offsets).to_numpy(),
        }
    )
    request["sent_at"] = (
        request["sent_at"].dt.tz_localize("UTC")
        if request["sent_at"].dt.tz is None
        else request["sent_at"]
    )
    frame = training_frame(settings, request, features=["opens_30d", "engagement_score"])
    for i, row in request.iterrows():
        mine = snaps[
            (snaps.recipient_id == row.recipient_id) & (snaps.event_timestamp < row.sent_at)
        ]
        best = mine.loc[mine.event_timestamp.idxmax()]
        assert frame.loc[i, "opens_30d"] == best["opens_30d"]
        assert frame.loc[i, "engagement_score"] == pytest.approx(best["engagement_score"])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"recipient_id": ["a"]}), "sent_at"),
        (pd.DataFrame({"recipient_id": ["a"], "sent_at": pd.to_datetime(["2026-03-02"])}), "aware"),
        (pd.DataFrame({"sent_at": pd.to_datetime(["2026-03-02"], utc=True)}), "recipient_id"),
    ],
)
def test_bad_sends_are_refused(settings: Settings, frame: pd.DataFrame, message: str) -> None:
    _build(settings)
    with pytest.raises(InvalidInputError, match=message):
        training_frame(settings, frame)


def test_unbuilt_tables_are_a_clear_error(settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="features build"):
        training_frame(settings, sends(("a", START)))


VARIANT = ["variant_clicks_90d", "variant_opens_90d", "variant_click_rate_90d"]


def variant_sends(*rows: tuple[str, str | None, object]) -> pd.DataFrame:
    frame = sends(*((r, t) for r, _, t in rows))
    frame["variant_id"] = [v for _, v, _ in rows]
    return frame


def _variant_log(settings: Settings) -> datetime:
    sent = START + timedelta(days=5, hours=10)
    write_events(
        settings,
        [
            event("a", "send", START + timedelta(hours=1), campaign_id="c0", variant_id="v1"),
            event("a", "deliver", START + timedelta(hours=1), campaign_id="c0", variant_id="v1"),
            event("a", "open", START + timedelta(hours=5), campaign_id="c0"),
            event("a", "send", sent, campaign_id="c1", variant_id="v1"),
            event("a", "click", sent + timedelta(minutes=5), campaign_id="c1"),  # the future
            event("a", "send", START + timedelta(days=8), campaign_id="c2", variant_id="v2"),
        ],
    )
    build_features(settings)
    return sent


def test_variant_event_after_a_send_does_not_leak(settings: Settings) -> None:
    sent = _variant_log(settings)
    frame = training_frame(settings, variant_sends(("a", "v1", sent)), features=VARIANT)
    assert frame.loc[0, "variant_clicks_90d"] == 0
    assert frame.loc[0, "variant_opens_90d"] == 1  # from 1 March, four days old: still held
    later = training_frame(
        settings, variant_sends(("a", "v1", sent + timedelta(days=1))), features=VARIANT
    )
    assert later.loc[0, "variant_clicks_90d"] == 1


def test_variant_send_exactly_at_a_snapshot_uses_the_one_before(settings: Settings) -> None:
    _variant_log(settings)
    at = START + timedelta(days=1)  # the row of 2 March holds the open of 1 March
    frame = training_frame(
        settings,
        variant_sends(("a", "v1", at), ("a", "v1", at + timedelta(microseconds=1))),
        features=VARIANT,
    )
    assert frame["variant_opens_90d"].tolist() == [0, 1]


def test_pair_without_history_gets_cold_start_defaults(settings: Settings) -> None:
    sent = _variant_log(settings)
    frame = training_frame(
        settings,
        variant_sends(("a", "v0", sent), ("nobody", "v1", sent), ("a", None, sent)),
        features=VARIANT,
    )
    for i in range(3):
        assert frame.loc[i, VARIANT].tolist() == [VARIANT_DEFAULTS[f] for f in VARIANT]
    assert frame["variant_clicks_90d"].dtype == "int64"


def test_variant_features_need_the_sends_variant(settings: Settings) -> None:
    _variant_log(settings)
    with pytest.raises(InvalidInputError, match="variant_id"):
        training_frame(settings, sends(("a", START + timedelta(days=3))), features=VARIANT)


def test_log_without_variants_gives_defaults(settings: Settings) -> None:
    _build(settings)  # no event carries a variant: the table is empty
    frame = training_frame(
        settings, variant_sends(("a", "v1", START + timedelta(days=3))), features=VARIANT
    )
    assert frame.loc[0, VARIANT].tolist() == [VARIANT_DEFAULTS[f] for f in VARIANT]


@pytest.mark.filterwarnings("ignore:On demand feature view:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning")
def test_variant_frame_matches_a_slow_join(built_world: tuple[Settings, list[Row]]) -> None:
    settings, _ = built_world
    glob = table_glob(settings.data_dir, VARIANT_TABLE)
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{glob}')").df()
    sample = rows.sample(30, random_state=3)
    # Sends a random time after a row, up to 40 days on, and some for variants never sent.
    offsets = pd.to_timedelta([(i * 104_729) % (40 * 86_400) for i in range(30)], unit="s")
    request = pd.DataFrame(
        {
            "recipient_id": sample["recipient_id"].to_numpy(),
            "variant_id": [v if i % 5 else "v9" for i, v in enumerate(sample["variant_id"])],
            "sent_at": pd.to_datetime(sample["event_timestamp"] + offsets, utc=True).to_numpy(),
        }
    )
    request["sent_at"] = pd.to_datetime(request["sent_at"], utc=True)
    frame = training_frame(settings, request, features=VARIANT)
    for i, send in request.iterrows():
        mine = rows[
            (rows.recipient_id == send.recipient_id)
            & (rows.variant_id == send.variant_id)
            & (rows.event_timestamp < send.sent_at)
            & (rows.event_timestamp >= send.sent_at - VARIANT_TTL)
        ]
        if mine.empty:
            assert frame.loc[i, VARIANT].tolist() == [VARIANT_DEFAULTS[f] for f in VARIANT]
            continue
        best = mine.loc[mine.event_timestamp.idxmax()]
        assert frame.loc[i, "variant_clicks_90d"] == best["variant_clicks_90d"]
        assert frame.loc[i, "variant_opens_90d"] == best["variant_opens_90d"]
        assert frame.loc[i, "variant_click_rate_90d"] == pytest.approx(
            best["variant_click_rate_90d"]
        )


def test_arrow_sends_give_the_frame_pandas_sends_give(settings: Settings) -> None:
    _build(settings)
    frame = sends(("a", START + timedelta(days=3, hours=4)), ("zz", START + timedelta(days=3)))
    from_pandas = training_frame(settings, frame, features=FEATURES)
    from_arrow = training_frame(settings, pa.Table.from_pandas(frame), features=FEATURES)
    pd.testing.assert_frame_equal(from_arrow, from_pandas)
    assert from_pandas.loc[0, "opens_30d"] == 1
