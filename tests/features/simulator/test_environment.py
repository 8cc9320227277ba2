from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from features.events.schema import EVENT_SCHEMA
from features.simulator import EmailEnvironment, SimulationResult
from inboxlab.errors import InvalidInputError, NotFoundError

WHEN = datetime(2026, 3, 10, 15, tzinfo=UTC)  # a Tuesday, two days after the history ends


def _mailable(env: EmailEnvironment, sim: SimulationResult) -> list[str]:
    ids = sim.truth.population.recipient_ids
    return [r for r, ok in zip(ids, env.is_mailable(ids), strict=True) if ok]


def test_sampled_outcomes_converge_to_expected_probabilities(small_sim: SimulationResult) -> None:
    # Many independent worlds from the same truth: per-recipient frequencies over repetitions
    # and the pooled frequency must match the environment's own expected values.
    reps = 40
    env0 = EmailEnvironment(small_sim.truth, np.random.default_rng(0))
    ids = _mailable(env0, small_sim)
    variants = env0.best_variant(ids)
    p_open = env0.expected_open_rate(ids, WHEN)
    p_click = env0.expected_click_rate(ids, variants, WHEN)
    p_convert = env0.expected_conversion_rate(ids, variants, WHEN)
    opened = np.zeros(len(ids))
    clicked = np.zeros(len(ids))
    converted = np.zeros(len(ids))
    delivered = np.zeros(len(ids))
    for seed in range(reps):
        env = EmailEnvironment(small_sim.truth, np.random.default_rng(seed + 1))
        out = env.send(ids, variants, WHEN, campaign_id="probe")
        opened += out.human_opened
        clicked += out.clicked
        converted += out.converted
        delivered += out.delivered
    # Bounces (about 1 %) remove deliveries, so compare per delivered email.
    for observed, expected in ((opened, p_open), (clicked, p_click), (converted, p_convert)):
        mean_obs = observed.sum() / delivered.sum()
        mean_exp = float(np.average(expected, weights=delivered))
        se = np.sqrt(mean_exp * (1 - mean_exp) / delivered.sum())
        assert abs(mean_obs - mean_exp) < 4 * se + 1e-3 * mean_exp
    per_recipient = opened / np.maximum(delivered, 1)
    assert np.corrcoef(per_recipient, p_open)[0, 1] > 0.8


def test_every_delivered_email_to_an_mpp_recipient_is_machine_opened(
    small_sim: SimulationResult,
) -> None:
    env = EmailEnvironment(small_sim.truth, np.random.default_rng(1))
    ids = _mailable(env, small_sim)
    out = env.send(ids, "v1", WHEN, campaign_id="probe")
    is_mpp = small_sim.truth.population.is_mpp[small_sim.truth.recipient_index(ids)]
    np.testing.assert_array_equal(out.machine_opened, out.delivered & is_mpp)
    assert (out.opened == (out.machine_opened | out.human_opened)).all()
    assert out.events.schema.equals(EVENT_SCHEMA)
    kinds = out.events.column("kind").to_pylist()
    assert kinds.count("deliver") == out.delivered.sum()
    assert kinds.count("click") == out.clicked.sum()


def test_best_hour_from_truth_beats_the_fixed_historical_hour(small_sim: SimulationResult) -> None:
    env = EmailEnvironment(small_sim.truth, np.random.default_rng(2))
    ids = _mailable(env, small_sim)
    window = datetime(2026, 3, 10, 0, tzinfo=UTC)
    best = env.best_send_time(ids, window, hours=24)
    # Both scored mid-hour: the historical blast went out at 15:00 UTC and lasted minutes.
    fixed = env.expected_open_rate(ids, WHEN + timedelta(minutes=30))
    chosen = env.expected_open_rate(ids, best + np.timedelta64(30, "m"))
    assert (chosen >= fixed - 1e-9).all()
    assert chosen.mean() > 1.15 * fixed.mean()


def test_environment_leaves_the_truth_untouched_and_remembers_attrition(
    small_sim: SimulationResult,
) -> None:
    before = small_sim.truth.recipients_table()
    env = EmailEnvironment(small_sim.truth, np.random.default_rng(3))
    ids = _mailable(env, small_sim)
    out = env.send(ids, "v0", WHEN, campaign_id="probe")
    assert small_sim.truth.recipients_table().equals(before)
    gone = [r for r, u, h in zip(ids, out.unsubscribed, out.hard_bounced, strict=True) if u or h]
    assert gone
    again = env.send(gone, "v0", WHEN.replace(day=11), campaign_id="again")
    assert not again.mailable.any() and not again.delivered.any()
    assert again.events.num_rows == 0
    assert (env.expected_open_rate(gone, WHEN) == 0).all()


def test_environment_refuses_bad_input(small_sim: SimulationResult) -> None:
    env = EmailEnvironment(small_sim.truth, np.random.default_rng(4))
    with pytest.raises(NotFoundError, match="nobody"):
        env.expected_open_rate(["nobody"], WHEN)
    with pytest.raises(InvalidInputError, match="v9") as info:
        env.send(["r0000001"], "v9", WHEN, campaign_id="x")
    assert info.value.field == "variant_id"
    with pytest.raises(InvalidInputError) as info:
        env.send(["r0000001"], "v0", datetime(2026, 3, 10, 9), campaign_id="x")
    assert info.value.field == "send_at"
    with pytest.raises(InvalidInputError) as info:
        env.send(["r0000001", "r0000001"], "v0", WHEN, campaign_id="x")
    assert info.value.field == "recipient_id"
