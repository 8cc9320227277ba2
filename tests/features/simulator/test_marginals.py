"""The simulated history reproduces the parameters and the truth it was drawn from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.simulator import SimulationConfig, SimulationResult, simulate


def _opens_and_deliveries(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    opens = events[events["kind"] == "open"]
    deliveries = events[events["kind"] == "deliver"]
    return opens, deliveries


def test_human_open_rate_matches_the_rate_implied_by_truth(
    small_sim: SimulationResult, small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    campaigns = small_sim.truth.campaigns.to_pandas()
    # The last campaigns lose late opens to the end of the window; compare the others.
    cutoff = pd.Timestamp(small_sim.truth.config.end, tz="UTC") - pd.Timedelta(days=4)
    kept = campaigns.loc[campaigns["started_at"] < cutoff, "campaign_id"]
    events = small_events[small_events["campaign_id"].isin(kept)]
    opens, deliveries = _opens_and_deliveries(events)
    mpp = small_recipients["is_mpp"]
    # Each delivery to an MPP recipient yields exactly one machine open; the rest are human.
    machine = int(mpp.reindex(deliveries["recipient_id"]).sum())
    observed = (len(opens) - machine) / len(deliveries)
    expected = campaigns.set_index("campaign_id").loc[kept, "expected_human_opens"].sum()
    assert abs(observed - expected / len(deliveries)) < 0.01
    assert 0.12 < observed < 0.30  # a realistic human open rate


def test_share_of_always_opening_recipients_matches_the_mpp_share(
    small_sim: SimulationResult, small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    opens, deliveries = _opens_and_deliveries(small_events)
    keys = ["recipient_id", "campaign_id"]
    delivered = deliveries.groupby("recipient_id").size()
    opened = opens.drop_duplicates(keys).groupby("recipient_id").size()
    regular = delivered[delivered >= 8].index
    always = (opened.reindex(regular, fill_value=0) == delivered[regular]).mean()
    assert abs(always - small_sim.truth.config.mpp_share) < 0.04
    assert abs(small_recipients["is_mpp"].mean() - small_sim.truth.config.mpp_share) < 0.03


def test_flagged_share_of_machine_opens_matches_the_parameter(
    small_sim: SimulationResult, small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    opens, deliveries = _opens_and_deliveries(small_events)
    machine_opens = small_recipients["is_mpp"].reindex(deliveries["recipient_id"]).sum()
    flagged = opens[opens["is_machine_open"].notna()]
    assert small_recipients["is_mpp"].reindex(flagged["recipient_id"]).all()
    share = len(flagged) / machine_opens
    assert abs(share - small_sim.truth.config.machine_open_flag_rate) < 0.03


def _local_hour(times: pd.Series, zones: pd.Series) -> np.ndarray:
    out = np.empty(len(times), dtype=np.int64)
    for zone in zones.unique():
        mask = (zones == zone).to_numpy()
        out[mask] = pd.DatetimeIndex(times[mask]).tz_convert(zone).hour
    return out


def test_open_rate_by_local_hour_follows_the_truth_for_randomized_campaigns(
    small_sim: SimulationResult, small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    truth = small_sim.truth
    campaigns = truth.campaigns.to_pandas()
    randomized = campaigns.loc[campaigns["randomized_hours"], "campaign_id"]
    humans = small_recipients.index[~small_recipients["is_mpp"]]
    events = small_events[
        small_events["campaign_id"].isin(randomized) & small_events["recipient_id"].isin(humans)
    ]
    opens, deliveries = _opens_and_deliveries(events)
    opened = deliveries.set_index(["recipient_id", "campaign_id"]).index.isin(
        opens.set_index(["recipient_id", "campaign_id"]).index
    )
    rid = deliveries["recipient_id"]
    hour = _local_hour(deliveries["occurred_at"], small_recipients["timezone"].reindex(rid))
    # Truth of each delivery: the rested open probability at its local hour of week.
    matrix = truth.open_probability_by_hour_of_week(list(humans))
    row = pd.Series(np.arange(len(humans)), index=humans).reindex(rid).to_numpy()
    times = pd.DatetimeIndex(deliveries["occurred_at"])
    weekday = np.empty(len(rid), dtype=np.int64)
    for zone in small_recipients["timezone"].unique():
        mask = (small_recipients["timezone"].reindex(rid) == zone).to_numpy()
        weekday[mask] = times[mask].tz_convert(zone).weekday
    expected = matrix[row, weekday * 24 + hour]
    chronotype = small_recipients["chronotype"].reindex(rid).to_numpy()
    by_hour = pd.DataFrame(
        {"hour": hour, "chronotype": chronotype, "observed": opened, "expected": expected}
    )
    profile = by_hour.groupby("hour")[["observed", "expected"]].mean()
    assert len(profile) == 24
    # Fatigue only lowers the level; the shape is the truth's.
    assert np.corrcoef(profile["observed"], profile["expected"])[0, 1] > 0.85
    # Morning people open what arrives in the morning, evening people what arrives at night.
    is_morning = by_hour["hour"].between(6, 9)
    is_evening = by_hour["hour"].between(18, 21)
    rate = by_hour.groupby(
        ["chronotype", is_morning.rename("morning"), is_evening.rename("evening")]
    )
    table = rate["observed"].mean()
    assert table[("morning", True, False)] > table[("morning", False, True)]
    assert table[("evening", False, True)] > table[("evening", True, False)]


def test_unsubscribes_rise_with_sending_frequency() -> None:
    rates = {}
    for per_week in (1.0, 7.0):
        cfg = SimulationConfig(recipients=3_000, days=28, seed=5, campaigns_per_week=per_week)
        kinds = simulate(cfg).events.column("kind").to_pandas().value_counts()
        rates[per_week] = (kinds["unsubscribe"] + kinds.get("complaint", 0)) / kinds["deliver"]
    assert rates[7.0] > 3 * rates[1.0]


def test_segments_prefer_different_variants_in_truth_and_in_the_data(
    small_sim: SimulationResult, small_events: pd.DataFrame, small_recipients: pd.DataFrame
) -> None:
    rates = small_sim.truth.variant_rates_table().to_pandas()
    best = rates[rates["is_best"]].set_index("segment")["variant_id"]
    assert best.nunique() > 1
    truth_best = rates.loc[rates.groupby("segment")["click_rate"].idxmax()]
    assert truth_best.set_index("segment")["variant_id"].equals(best)
    # Empirical clicks per human open recover each segment's best variant.
    non_mpp = small_recipients.index[~small_recipients["is_mpp"]]
    events = small_events[small_events["recipient_id"].isin(non_mpp)].copy()
    events["segment"] = small_recipients["segment"].reindex(events["recipient_id"]).to_numpy()
    counts = events.pivot_table(
        index=["segment", "variant_id"], columns="kind", values="event_id", aggfunc="count"
    )
    ctr = (counts["click"] / counts["open"]).unstack("variant_id")
    assert ctr.idxmax(axis=1).equals(best.reindex(ctr.index))
