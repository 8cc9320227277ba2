from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.events import EventLog
from features.events.importer import import_tables
from features.events.recipients import write_recipients
from features.simulator import EmailEnvironment, SimulationConfig, simulate
from inboxlab.settings import Settings
from training import ceiling
from training.ceiling import (
    engagement_ceiling,
    fatigue_before,
    fit_prefetch_rate,
    posterior_weights,
    sum_by_recipient,
)
from training.labels import labelled_sends

DAY_US = 86_400_000_000


def test_fatigue_matches_a_loop_over_earlier_sends() -> None:
    rng = np.random.default_rng(4)
    codes = np.sort(rng.integers(0, 30, 400))
    t_us = np.zeros(400, dtype=np.int64)
    for c in np.unique(codes):
        rows = codes == c
        t_us[rows] = np.sort(rng.integers(0, 60 * DAY_US, rows.sum()))
    slow = np.array(
        [
            sum(
                0.5 ** ((t_us[i] - t_us[j]) / DAY_US / 4.0)
                for j in range(i)
                if codes[j] == codes[i]
            )
            for i in range(400)
        ]
    )
    assert fatigue_before(codes, t_us, 4.0) == pytest.approx(slow, rel=1e-9, abs=1e-12)


def test_fatigue_refuses_unsorted_sends() -> None:
    with pytest.raises(ValueError, match="sorted"):
        fatigue_before(np.array([1, 0]), np.array([0, 0]), 4.0)


def test_sums_by_recipient_match_a_scatter_add_in_small_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    codes = np.sort(rng.integers(0, 50, 1_000))
    values = rng.normal(size=(1_000, 3))
    expected = np.zeros((60, 3))
    np.add.at(expected, codes, values)
    monkeypatch.setattr(ceiling, "_CHUNK_ROWS", 30)  # ten rows a chunk: many chunks
    got = sum_by_recipient(codes, 60, lambda part: values[part], 3)
    assert got == pytest.approx(expected)


def test_posterior_is_bayes_rule_per_row() -> None:
    loglik = np.log(np.array([[0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]))
    prior = np.array([0.5, 0.25, 0.25])
    expected = np.exp(loglik) * prior
    expected /= expected.sum(axis=1, keepdims=True)
    assert posterior_weights(loglik, np.log(prior)) == pytest.approx(expected)


def test_prefetch_rate_is_recovered_from_labels_it_contaminates() -> None:
    rng = np.random.default_rng(6)
    recipients, sends = 1_500, 30
    engagement = rng.normal(-1.5, 1.0, recipients)
    codes = np.repeat(np.arange(recipients), sends)
    mpp = np.repeat(rng.random(recipients) < 0.5, sends)
    p = 1 / (1 + np.exp(-engagement[codes]))
    opened = rng.random(codes.size) < np.where(mpp, p + (1 - p) * 0.4, p)
    grid = np.linspace(-6.5, 3.5, 81)
    log_prior = -0.5 * (grid + 1.5) ** 2
    log_prior -= np.logaddexp.reduce(log_prior)

    def loglik(rows: np.ndarray, m: float) -> np.ndarray:
        q = 1 / (1 + np.exp(-grid[None, :]))
        q = np.where(mpp[rows, None], q + (1 - q) * m, q)
        return np.where(opened[rows, None], np.log(q), np.log1p(-q))

    assert fit_prefetch_rate(codes, mpp, loglik, log_prior) == pytest.approx(0.4, abs=0.05)
    assert fit_prefetch_rate(codes, np.zeros_like(mpp), loglik, log_prior) == 0.0


# About 15 s on an idle 2-core machine.
@pytest.mark.slow
def test_history_ceiling_sits_between_the_prior_and_knowing_the_traits(
    settings: Settings,
) -> None:
    config = SimulationConfig(recipients=3_000, days=42, seed=2)
    sim = simulate(config)
    log = EventLog(settings.events_dir)
    import_tables([("simulation", sim.events)], log)
    write_recipients(settings.recipients_path, sim.truth.recipient_directory())
    history = labelled_sends(log, settings.recipients_path)

    rng = np.random.default_rng(0)
    env = EmailEnvironment(sim.truth, rng)
    ids = [r for r, ok in zip(sim.truth.population.recipient_ids,
                              env.is_mailable(sim.truth.population.recipient_ids), strict=True)
           if ok]  # fmt: skip
    variants = rng.choice(np.asarray(config.variant_ids), len(ids)).tolist()
    start = pd.Timestamp(config.end, tz="UTC")
    sent_at = start + pd.to_timedelta(rng.integers(0, 86_400, len(ids)), unit="s")
    when = sent_at.tz_localize(None).to_numpy().astype("datetime64[us]")
    p_true = env.expected_click_rate(ids, variants, when)
    holdout = pd.DataFrame({"recipient_id": ids, "sent_at": sent_at, "variant_id": variants})

    # A model that knows nothing of the person: the variant's mean rate at the send hour.
    p_blind = sim.truth.rates.click.mean(axis=0)[[config.variant_ids.index(v) for v in variants]]
    result = engagement_ceiling(sim.truth, history, holdout, p_true, p_blind)
    assert 12 < result.sends_per_recipient < 20
    # Knowing every trait but the segment loses only the variant part of the truth.
    assert 0.9 < result.open_known_segment_unknown < 1.0
    # Estimating engagement from a few weeks of sends costs more than that, and not knowing
    # the segment either costs more again; still far better than chance.
    assert result.segment_known_engagement_from_history < result.open_known_segment_unknown
    assert result.from_history < result.segment_known_engagement_from_history
    assert result.from_history > 0.7
    # Not knowing when the person reads mail costs more again.
    assert result.from_history_hour_unknown < result.from_history
    # The labels take a known prefetching client's early unflagged opens for the prefetches
    # they are, so no share of sends is left opened whatever the person did.
    assert result.prefetch_rate <= 0.05
    assert 0.55 < result.clean_share < 0.75  # 35 % of the audience prefetches
    assert result.clean_model < result.clean_from_history
