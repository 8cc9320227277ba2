from __future__ import annotations

import pandas as pd

from features.events.schema import EVENT_SCHEMA
from features.simulator import SimulationResult
from inboxlab.records import EventKind, looks_like_email


def test_events_have_exactly_the_event_log_schema(small_sim: SimulationResult) -> None:
    assert small_sim.events.schema.equals(EVENT_SCHEMA, check_metadata=True)


def test_event_ids_are_unique_and_events_sorted_by_time(small_events: pd.DataFrame) -> None:
    assert small_events["event_id"].is_unique
    assert small_events["occurred_at"].is_monotonic_increasing


def test_no_id_is_shaped_like_an_email(small_events: pd.DataFrame) -> None:
    for column in ("event_id", "recipient_id", "campaign_id", "variant_id"):
        assert not small_events[column].drop_duplicates().map(looks_like_email).any()
    assert small_events["recipient_id"].str.fullmatch(r"r\d{7}").all()


def test_columns_are_filled_as_a_pre_decision_history(small_events: pd.DataFrame) -> None:
    assert set(small_events["kind"]) == {str(k) for k in EventKind}
    assert small_events["campaign_id"].notna().all()
    assert small_events["variant_id"].isin(["v0", "v1", "v2"]).all()
    assert small_events["decision_id"].isna().all()
    is_convert = small_events["kind"] == "convert"
    assert (small_events.loc[is_convert, "value"] > 0).all()
    assert small_events.loc[~is_convert, "value"].isna().all()
    # Only machine opens are ever flagged, and never as False.
    flagged = small_events["is_machine_open"].notna()
    assert (small_events.loc[flagged, "kind"] == "open").all()
    assert small_events.loc[flagged, "is_machine_open"].astype(bool).all()


def test_events_stay_inside_the_window(small_sim: SimulationResult) -> None:
    cfg = small_sim.truth.config
    times = small_sim.events.column("occurred_at").to_pandas()
    assert times.min() >= pd.Timestamp(cfg.start, tz="UTC")
    assert times.max() < pd.Timestamp(cfg.end, tz="UTC")


def _first(events: pd.DataFrame, kind: str) -> pd.Series:
    rows = events[events["kind"] == kind]
    return rows.groupby(["recipient_id", "campaign_id"])["occurred_at"].min()


def test_funnel_steps_follow_each_other_in_time(small_events: pd.DataFrame) -> None:
    send, deliver = _first(small_events, "send"), _first(small_events, "deliver")
    open_, click = _first(small_events, "open"), _first(small_events, "click")
    convert = _first(small_events, "convert")
    for later, earlier in ((deliver, send), (open_, deliver), (click, open_), (convert, click)):
        joined = pd.concat({"later": later, "earlier": earlier}, axis=1, join="outer")
        joined = joined[joined["later"].notna()]
        assert joined["earlier"].notna().all(), "a funnel step without its predecessor"
        assert (joined["earlier"] < joined["later"]).all()


def test_nothing_happens_after_unsubscribe_complaint_or_hard_bounce(
    small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    last = small_events.groupby("recipient_id").tail(1).set_index("recipient_id")["kind"]
    status = small_recipients["status"]
    for name, kind in (
        ("unsubscribed", "unsubscribe"),
        ("complained", "complaint"),
        ("hard_bounced", "bounce"),
    ):
        gone = status.index[status == name]
        assert len(gone) > 0, name
        assert (last.reindex(gone) == kind).all(), name
    # A hard bounce happens on the send that fails: the bad address never got a delivery after.
    bad = small_recipients.index[small_recipients["bad_address"]]
    delivered_to = set(small_events.loc[small_events["kind"] == "deliver", "recipient_id"])
    assert delivered_to.isdisjoint(bad)


def test_soft_bounces_are_followed_by_more_sends(
    small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    bounces = small_events[small_events["kind"] == "bounce"]
    active = small_recipients.index[small_recipients["status"] == "active"]
    soft = bounces[bounces["recipient_id"].isin(active)]
    assert len(soft) > 20
    last_send = (
        small_events[small_events["kind"] == "send"].groupby("recipient_id")["occurred_at"].max()
    )
    later = last_send.reindex(soft["recipient_id"]).to_numpy() > soft["occurred_at"].to_numpy()
    assert later.mean() > 0.9


def test_recipients_span_at_least_six_time_zones(small_recipients: pd.DataFrame) -> None:
    zones = small_recipients["timezone"].value_counts()
    assert len(zones) >= 6
    assert {"America/New_York", "Asia/Tokyo", "Europe/London"} <= set(zones.index)
