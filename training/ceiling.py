"""The best engagement ranking any model could reach from the history it learns from.

The simulator clicks with probability ``p_open × c``: ``p_open = sigmoid(e + h(t) - f·F)``
from the recipient's engagement logit ``e``, their hour-of-week curve ``h`` and fatigue ``F``,
and ``c`` the click rate given an open of their (hidden) segment for the variant. A model
never sees ``e`` or the segment; it sees a few dozen sends of each recipient and whether they
were opened and clicked. The most it can know is the posterior given that history, so the
posterior mean of ``p_click`` under the simulator's own model and constants is the ranking no
model of the history can beat on average.

:func:`engagement_ceiling` computes that posterior per recipient on a grid of ``e`` (prior
normal with the configured mean and sd) and over the segments (uniform prior), with the true
hour curves, fatigue and click rates given to it: only each person's engagement and segment
are left to learn from their sends. The engagement logit's slow random-walk drift is left
out (the posterior treats ``e`` as constant over the window), so a predictor that also
tracked the drift could do slightly better; the gap is small next to the posterior's spread.
Decomposing the truth tells which unknown costs what: with the open probability known
exactly and only the segment unknown, and with the segment known and only the engagement
estimated from the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.simulator import GroundTruth
from features.simulator.clock import US_PER_DAY
from features.simulator.population import sigmoid
from training.metrics import expected_auc

__all__ = [
    "EngagementCeiling",
    "engagement_ceiling",
    "fatigue_before",
    "fit_prefetch_rate",
    "posterior_weights",
    "sum_by_recipient",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Grid of engagement logits the posterior is evaluated on: the prior's ±5 sd.
_GRID_POINTS = 121
#: Cells of a (rows × grid) block evaluated at once: ~200 MB of float64 temporaries.
_CHUNK_ROWS = 8_000_000


@dataclass(frozen=True, slots=True)
class EngagementCeiling:
    """Expected AUC ratios (over the true probabilities' own) of reference predictors."""

    #: True open probability × the variant's click rate averaged over segments: what knowing
    #: every trait but the segment gives.
    open_known_segment_unknown: float
    #: Posterior open probability given the recipient's sends × the true segment's rate.
    segment_known_engagement_from_history: float
    #: Posterior mean of the click probability given the recipient's sends (opens and clicks):
    #: the ceiling of any model of the history.
    from_history: float
    #: The same when the person's hour curve is not known (every hour an average one).
    from_history_hour_unknown: float
    #: Share of a prefetching recipient's sends labelled opened whatever they did (fitted).
    prefetch_rate: float
    #: Mean labelled sends per holdout recipient in the history.
    sends_per_recipient: float
    #: Share of holdout sends to recipients whose mail client does not prefetch (no MPP).
    clean_share: float
    #: ``from_history`` and the model's expected AUC ratio on those sends only, whose open
    #: labels are the person's own (an MPP client's unflagged prefetches later than the log's
    #: machine-open rule pass for human opens, which hides the person's engagement).
    clean_from_history: float
    clean_model: float


def fatigue_before(codes: IntArray, t_us: IntArray, half_life_days: float) -> FloatArray:
    """Fatigue of each send just before it: one unit per earlier send of the same recipient,
    halving every ``half_life_days``. Rows must be sorted by time within each recipient.

    Examples
    --------
    >>> day = 86_400_000_000
    >>> fatigue_before(np.array([0, 0, 0, 1]), np.array([0, 0, 4 * day, day]), 4.0).tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    order = np.lexsort((t_us, codes))
    if not np.array_equal(order, np.arange(len(codes))):
        raise ValueError("sends must be sorted by recipient and time")
    origin = t_us.min() if len(t_us) else 0
    days = (t_us - origin) / US_PER_DAY
    # sum_{j < i} 2^((t_j - t_i) / half_life) = 2^(-t_i / hl) * (cumsum of 2^(t_j / hl) up
    # to j = i - 1) within the recipient; the window is short enough that 2^(t / hl) is exact.
    grow = np.exp2(days / half_life_days)
    total = np.cumsum(grow)
    first = np.r_[True, codes[1:] != codes[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(codes)), 0))
    before = total - grow - np.where(start > 0, total[start - 1], 0.0)
    out: FloatArray = before / grow
    return out


def posterior_weights(log_likelihood: FloatArray, log_prior: FloatArray) -> FloatArray:
    """Posterior over a grid, per row: ``(n, grid)`` weights summing to one per row.

    ``log_likelihood`` is the ``(n, grid)`` summed log-likelihood of each recipient's data.

    Examples
    --------
    >>> w = posterior_weights(np.log([[0.81, 0.01], [1.0, 1.0]]), np.log([0.5, 0.5]))
    >>> w.round(3).tolist()
    [[0.988, 0.012], [0.5, 0.5]]
    """
    total = log_likelihood + log_prior[None, :]
    total -= total.max(axis=1, keepdims=True)
    weights: FloatArray = np.exp(total)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights


def sum_by_recipient(
    codes: IntArray, n: int, rows: Callable[[slice], FloatArray], width: int
) -> FloatArray:
    """``(n, width)`` sums of ``rows(part)`` over each recipient's rows.

    ``codes`` (the recipient of each row, ``0 .. n - 1``) must be sorted; ``rows`` is called
    on slices of whole recipients, a few hundred thousand rows at a time, so that a
    ``(rows, grid)`` matrix of a large history never exists at once.

    Examples
    --------
    >>> codes = np.array([0, 0, 2])
    >>> values = np.array([[1.0], [2.0], [5.0]])
    >>> sum_by_recipient(codes, 3, lambda part: values[part], 1).ravel().tolist()
    [3.0, 0.0, 5.0]
    """
    out = np.zeros((n, width))
    step = max(1, _CHUNK_ROWS // max(width, 1))
    lo = 0
    while lo < len(codes):
        hi = min(lo + step, len(codes))
        hi = int(np.searchsorted(codes, codes[hi - 1], side="right"))  # whole recipients
        present, starts = np.unique(codes[lo:hi], return_index=True)
        out[present] = np.add.reduceat(rows(slice(lo, hi)), starts, axis=0)
        lo = hi
    return out


def fit_prefetch_rate(
    codes: IntArray,
    mpp: NDArray[np.bool_],
    loglik: Callable[[IntArray, float], FloatArray],
    log_prior: FloatArray,
    *,
    sample: int = 2_000,
) -> float:
    """The rate ``m`` in ``[0, 0.95]`` (steps of 0.025) that best explains prefetchers' labels.

    ``loglik(rows, m)`` is the ``(len(rows), grid)`` log-likelihood of those history rows;
    the marginal likelihood of up to ``sample`` prefetching recipients (the first ones) is
    maximised over the grid of rates. ``0.0`` without any prefetching recipient.
    """
    chosen = np.unique(codes[mpp])[:sample]
    rows = np.flatnonzero(np.isin(codes, chosen))
    if rows.size == 0:
        return 0.0
    _, starts = np.unique(codes[rows], return_index=True)
    best, best_m = -np.inf, 0.0
    for m in np.arange(0.0, 0.951, 0.025):
        per_recipient = np.add.reduceat(loglik(rows, float(m)), starts, axis=0)
        total = float(np.logaddexp.reduce(per_recipient + log_prior[None, :], axis=1).sum())
        if total > best:
            best, best_m = total, float(m)
    return best_m


def engagement_ceiling(
    truth: GroundTruth,
    history: pd.DataFrame,
    holdout: pd.DataFrame,
    p_true: FloatArray,
    p_model: FloatArray,
) -> EngagementCeiling:
    """Reference predictors of the holdout's clicks, scored as :class:`EngagementCeiling`.

    Parameters
    ----------
    truth
        The simulated world.
    history
        Labelled sends the model learnt from: ``recipient_id``, ``sent_at`` (UTC),
        ``variant_id``, ``opened`` and ``clicked``.
    holdout
        The judged sends: ``recipient_id``, ``sent_at`` (UTC) and ``variant_id``.
    p_true
        The true click probability of each holdout send.
    p_model
        The model's click probability of each holdout send.
    """
    cfg, rates = truth.config, truth.rates
    variant_code = {v: k for k, v in enumerate(cfg.variant_ids)}
    h_idx = truth.recipient_index(holdout["recipient_id"].tolist())
    recipients, h_codes = np.unique(h_idx, return_inverse=True)
    position = np.full(truth.population.size, -1, dtype=np.int64)
    position[recipients] = np.arange(len(recipients))

    hist = history[["recipient_id", "sent_at", "variant_id", "opened", "clicked"]]
    all_idx = truth.recipient_index(hist["recipient_id"].tolist())
    keep = position[all_idx] >= 0
    hist, idx = hist[keep], all_idx[keep]
    t_us = _epoch_us(hist["sent_at"])
    order = np.lexsort((t_us, position[idx]))
    hist, idx, t_us = hist.iloc[order], idx[order], t_us[order]
    codes = position[idx]
    half_life = cfg.fatigue_half_life_days

    # Engagement: a human open at any time (a click implies one; the 24 h label misses the
    # opens of the next day) has probability sigmoid(e + h(t) - f * F) for each send.
    opened = (hist["opened"].to_numpy() > 0) | (hist["clicked"].to_numpy() > 0)
    fatigue = fatigue_before(codes, t_us, half_life)
    shift = truth.world.hour_effect(idx, t_us) - cfg.fatigue_strength * fatigue
    sd = max(cfg.engagement_logit_sd, 1e-6)
    grid = cfg.engagement_logit_mean + sd * np.linspace(-5.0, 5.0, _GRID_POINTS)
    n = len(recipients)

    # An MPP client prefetches every email; a prefetch the log cannot tell from a person
    # labels the send opened whatever the person did, with a rate ``m`` the truth does not
    # state (it depends on the log's machine-open rule), so it is fitted by marginal
    # likelihood on a sample of the prefetching recipients: for them, P(label) = p + (1 - p) m.
    mpp = truth.population.is_mpp[idx]
    log_prior = -0.5 * ((grid - cfg.engagement_logit_mean) / sd) ** 2
    log_prior -= np.logaddexp.reduce(log_prior)

    def loglik(rows: NDArray[np.int64] | slice, m: float, shift: FloatArray = shift) -> FloatArray:
        p = sigmoid(grid[None, :] + shift[rows, None])
        q = np.where(mpp[rows, None], p + (1.0 - p) * m, p)
        out: FloatArray = np.where(opened[rows, None], np.log(q), np.log1p(-q))
        return out

    m = fit_prefetch_rate(codes, mpp, loglik, log_prior)
    w_e = posterior_weights(
        sum_by_recipient(codes, n, lambda part: loglik(part, m), len(grid)), log_prior
    )
    # The same without the person's hour curve: every hour counts as an average one.
    flat = -cfg.fatigue_strength * fatigue
    w_flat = posterior_weights(
        sum_by_recipient(codes, n, lambda part: loglik(part, m, flat), len(grid)), log_prior
    )

    h_t = _epoch_us(holdout["sent_at"])
    last = np.full(len(recipients), -1, dtype=np.int64)
    last[codes] = np.arange(len(codes))  # the latest send of each recipient (sorted by time)
    h_last = last[h_codes]
    # Fatigue at the holdout send: the latest history send's, plus that send, decayed since.
    row = np.maximum(h_last, 0)
    elapsed = np.maximum(h_t - t_us[row], 0) / US_PER_DAY if len(t_us) else 0.0
    decayed = (fatigue[row] + 1.0) * np.exp2(-elapsed / half_life) if len(t_us) else 0.0
    prior_fatigue = np.where(h_last >= 0, decayed, 0.0)
    h_shift = truth.world.hour_effect(h_idx, h_t) - cfg.fatigue_strength * prior_fatigue
    p_open_post = (w_e[h_codes] * sigmoid(grid[None, :] + h_shift[:, None])).sum(axis=1)
    h_fatigue = -cfg.fatigue_strength * prior_fatigue
    p_open_flat = (w_flat[h_codes] * sigmoid(grid[None, :] + h_fatigue[:, None])).sum(axis=1)

    # Segment: a click given a human open has the segment's rate for the send's variant.
    variant = hist["variant_id"].map(variant_code).to_numpy()
    seen = opened & ~pd.isna(variant)
    v_seen = variant[seen].astype(np.int64)
    clicked = hist["clicked"].to_numpy()[seen] > 0
    seg_codes = codes[seen]
    log_c, log_not_c = np.log(rates.click), np.log1p(-rates.click)  # (segments, variants)

    def click_loglik(part: slice) -> FloatArray:
        v = v_seen[part]
        out: FloatArray = np.where(clicked[part, None], log_c[:, v].T, log_not_c[:, v].T)
        return out

    w_s = posterior_weights(
        sum_by_recipient(seg_codes, n, click_loglik, cfg.segments),
        np.full(cfg.segments, -np.log(cfg.segments)),
    )
    h_var = holdout["variant_id"].map(variant_code).to_numpy().astype(np.int64)
    c_post = (w_s[h_codes] * rates.click[:, h_var].T).sum(axis=1)
    c_true = rates.click[truth.population.segment[h_idx], h_var]
    c_mean = rates.click.mean(axis=0)[h_var]

    env_open = p_true / c_true  # the true open probability of each holdout send
    p_history = p_open_post * c_post
    clean = ~truth.population.is_mpp[h_idx]

    def ratio(score: FloatArray, rows: NDArray[np.bool_] | slice = slice(None)) -> float:
        return expected_auc(p_true[rows], score[rows]) / expected_auc(p_true[rows], p_true[rows])

    return EngagementCeiling(
        open_known_segment_unknown=ratio(env_open * c_mean),
        segment_known_engagement_from_history=ratio(p_open_post * c_true),
        from_history=ratio(p_history),
        from_history_hour_unknown=ratio(p_open_flat * c_post),
        prefetch_rate=m,
        sends_per_recipient=len(hist) / max(len(recipients), 1),
        clean_share=float(clean.mean()),
        clean_from_history=ratio(p_history, clean),
        clean_model=ratio(np.asarray(p_model, dtype=np.float64), clean),
    )


def _epoch_us(sent_at: pd.Series) -> IntArray:
    values = pd.to_datetime(sent_at, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)
    out: IntArray = values.to_numpy().astype("datetime64[us]").astype(np.int64)
    return out
