"""Off-policy evaluation: what would another allocation policy have earned on logged data?

A candidate policy is an ``(n, K)`` matrix of action probabilities ``π(a | x_i)`` over the
logged units ``i`` and arms ``a``. With the logged arm ``a_i``, its propensity ``p_i`` (the
probability the logging policy had of choosing it) and the reward ``r_i``, and importance
weights ``w_i = π(a_i | x_i) / p_i``:

* **IPS** ``(1/n) Σ w_i r_i`` — unbiased when every ``p_i > 0`` and correct, high variance;
* **SNIPS** ``Σ w_i r_i / Σ w_i`` — self-normalised, slightly biased, much steadier;
* **DR** ``(1/n) Σ [Σ_a π(a|x_i) q̂(x_i, a) + w_i (r_i − q̂(x_i, a_i))]`` — doubly robust: a
  reward model ``q̂`` predicts, importance weighting corrects its errors; unbiased if either
  the propensities or the model are right.

The reward model is the per-(context, arm) mean reward, shrunk toward the arm's overall mean
with a pseudo-count so that rare contexts do not get extreme predictions.

Intervals come from a bootstrap over units. To keep it fast on millions of rows, units are
first dealt at random into ``G`` blocks and the per-block sums are resampled; units are
independent, so block sums are i.i.d. and resampling them reproduces the sampling variance of
the sums each estimator is made of. The reward model is held fixed across resamples (its
uncertainty is not propagated, which is standard practice for DR intervals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from inboxlab.errors import InvalidInputError

__all__ = [
    "OpeEstimate",
    "OpeResult",
    "bandit_allocation",
    "evaluate_file",
    "evaluate_policies",
    "greedy_policy",
    "reward_model",
    "uniform_policy",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Estimator = Literal["ips", "snips", "dr"]


@dataclass(frozen=True, slots=True)
class OpeEstimate:
    """One estimator's value of one policy with a bootstrap percentile interval."""

    policy: str
    estimator: Estimator
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class OpeResult:
    """Estimates for every policy, the logged policy's mean reward and diagnostics."""

    arms: tuple[str, ...]
    units: int
    logged_value: float
    estimates: tuple[OpeEstimate, ...]
    effective_sample_size: dict[str, float]
    warnings: tuple[str, ...]

    def get(self, policy: str, estimator: Estimator) -> OpeEstimate:
        """The estimate of ``policy`` by ``estimator``."""
        return next(e for e in self.estimates if e.policy == policy and e.estimator == estimator)


def uniform_policy(n: int, k: int) -> FloatArray:
    """Equal split over ``k`` arms for ``n`` units.

    Examples
    --------
    >>> uniform_policy(2, 4)[0].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    return np.full((n, k), 1.0 / k)


def greedy_policy(scores: FloatArray) -> FloatArray:
    """Deterministic policy choosing the highest-scoring arm per unit (ties: first arm).

    Examples
    --------
    >>> greedy_policy(np.array([[0.1, 0.3], [0.5, 0.2]])).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    out = np.zeros_like(scores, dtype=np.float64)
    out[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] = 1.0
    return out


def reward_model(
    actions: IntArray,
    rewards: FloatArray,
    k: int,
    contexts: IntArray | None = None,
    pseudo_count: float = 10.0,
) -> FloatArray:
    """Predicted reward ``q̂(x_i, a)`` for every unit and arm: shrunk per-(context, arm) means.

    Examples
    --------
    >>> q = reward_model(np.array([0, 0, 1, 1]), np.array([1.0, 0.0, 1.0, 1.0]), 2)
    >>> q[0].tolist()
    [0.5, 1.0]
    """
    arm_sum = np.bincount(actions, weights=rewards, minlength=k)
    arm_n = np.bincount(actions, minlength=k).astype(np.float64)
    overall = float(rewards.mean()) if rewards.size else 0.0
    # Arms never played predict the overall mean rather than 0/0.
    arm_mean = np.where(arm_n > 0, arm_sum / np.maximum(arm_n, 1), overall)
    if contexts is None:
        return np.broadcast_to(arm_mean, (actions.size, k)).copy()
    n_ctx = int(contexts.max()) + 1 if contexts.size else 1
    cell = contexts * k + actions
    c_sum = np.bincount(cell, weights=rewards, minlength=n_ctx * k).reshape(n_ctx, k)
    c_n = np.bincount(cell, minlength=n_ctx * k).reshape(n_ctx, k)
    table = (c_sum + pseudo_count * arm_mean) / (c_n + pseudo_count)
    return np.asarray(table[contexts], dtype=np.float64)


def _validate(actions: IntArray, rewards: FloatArray, pscores: FloatArray, k: int) -> None:
    n = actions.size
    if rewards.shape != (n,) or pscores.shape != (n,):
        raise InvalidInputError("actions, rewards and pscores must have the same length")
    if n and (actions.min() < 0 or actions.max() >= k):
        raise InvalidInputError(f"actions must be arm indices in [0, {k})", field="arm")
    if n and not (np.all(pscores > 0) and np.all(pscores <= 1)):
        raise InvalidInputError(
            "pscore must be in (0, 1] for every unit: the logged probability of the chosen arm",
            field="pscore",
        )


def evaluate_policies(
    actions: IntArray,
    rewards: FloatArray,
    pscores: FloatArray,
    policies: Mapping[str, FloatArray],
    *,
    arms: Sequence[str],
    q_hat: FloatArray | None = None,
    rng: np.random.Generator,
    n_bootstrap: int = 500,
    blocks: int = 2000,
    level: float = 0.95,
) -> OpeResult:
    """IPS, SNIPS and DR estimates of each candidate policy with bootstrap intervals.

    Parameters
    ----------
    actions, rewards, pscores
        Logged arm index, reward and propensity of the logged arm, one entry per unit.
    policies
        Name → ``(n, K)`` matrix of action probabilities (rows sum to one).
    q_hat
        Reward model predictions ``(n, K)``; default :func:`reward_model` without context.
    rng
        Random generator for the bootstrap (inject one; there is no default seed).

    Raises
    ------
    InvalidInputError
        When shapes disagree, a policy row does not sum to one or a pscore is outside (0, 1].

    Examples
    --------
    >>> a, r, p = np.array([0, 1, 0, 1]), np.array([1.0, 0.0, 1.0, 1.0]), np.full(4, 0.5)
    >>> res = evaluate_policies(a, r, p, {"all-0": np.array([[1.0, 0.0]] * 4)}, arms=["x", "y"],
    ...                         rng=np.random.default_rng(0), n_bootstrap=50)
    >>> res.get("all-0", "ips").value, res.get("all-0", "snips").value
    (1.0, 1.0)
    """
    k = len(arms)
    n = actions.size
    _validate(actions, rewards, pscores, k)
    q = reward_model(actions, rewards, k) if q_hat is None else q_hat
    warnings: list[str] = []
    rows = np.arange(n)
    block_of = rng.integers(0, max(min(blocks, n), 1), size=n)
    g = int(block_of.max()) + 1 if n else 1
    counts = np.bincount(block_of, minlength=g).astype(np.float64)
    resample = rng.multinomial(g, np.full(g, 1.0 / g), size=n_bootstrap).astype(np.float64)
    tail = (1 - level) / 2
    estimates: list[OpeEstimate] = []
    ess: dict[str, float] = {}
    for name, pi in policies.items():
        if pi.shape != (n, k):
            raise InvalidInputError(f"policy {name!r} must have shape ({n}, {k}), got {pi.shape}")
        if n and not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
            raise InvalidInputError(f"policy {name!r}: action probabilities must sum to 1")
        w = pi[rows, actions] / pscores
        ips_i = w * rewards
        dr_i = (pi * q).sum(axis=1) + w * (rewards - q[rows, actions])
        sums = np.column_stack(
            [np.bincount(block_of, weights=v, minlength=g) for v in (ips_i, w, dr_i)]
        )
        sw, sw2 = float(w.sum()), float((w * w).sum())
        ess[name] = sw * sw / sw2 if sw2 > 0 else 0.0
        if ess[name] < 0.01 * n:
            warnings.append(
                f"policy {name!r}: effective sample size {ess[name]:.0f} of {n} units; "
                "it rarely agrees with the logged choices and its estimates are unreliable"
            )
        boot = resample @ sums  # (B, 3) resampled sums
        boot_n = resample @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = {
                "ips": boot[:, 0] / boot_n,
                "snips": boot[:, 0] / boot[:, 1],
                "dr": boot[:, 2] / boot_n,
            }
        point = {
            "ips": float(ips_i.sum() / n) if n else math.nan,
            "snips": float(ips_i.sum() / sw) if sw > 0 else math.nan,
            "dr": float(dr_i.sum() / n) if n else math.nan,
        }
        for est in ("ips", "snips", "dr"):
            d = draws[est][np.isfinite(draws[est])]
            lo, hi = np.quantile(d, [tail, 1 - tail]) if d.size else (math.nan, math.nan)
            estimates.append(OpeEstimate(name, est, point[est], float(lo), float(hi)))
    return OpeResult(
        arms=tuple(arms),
        units=n,
        logged_value=float(rewards.mean()) if n else math.nan,
        estimates=tuple(estimates),
        effective_sample_size=ess,
        warnings=tuple(warnings),
    )


def bandit_allocation(actions: IntArray, rewards: FloatArray, k: int) -> FloatArray:
    """Thompson-sampling allocation the bandit would use now: P(each arm is best).

    Binary rewards use Beta(1 + successes, 1 + failures) posteriors; other rewards a normal
    posterior of the arm mean. Arms never played get the prior (Beta(1, 1) / a wide normal).

    Examples
    --------
    >>> alloc = bandit_allocation(np.array([0] * 100 + [1] * 100),
    ...                           np.array([1.0] * 5 + [0.0] * 95 + [1.0] * 20 + [0.0] * 80), 2)
    >>> [round(float(x), 3) for x in alloc]
    [0.001, 0.999]
    """
    from experiments.bayes import ApproxPosterior, Posterior, beta_posterior, probability_best
    from experiments.statistics import BinaryStatistic

    n_arm = np.bincount(actions, minlength=k)
    s_arm = np.bincount(actions, weights=rewards, minlength=k)
    binary = bool(np.all((rewards == 0) | (rewards == 1)))
    posts: list[Posterior] = []
    for a in range(k):
        if binary:
            posts.append(beta_posterior(BinaryStatistic(int(n_arm[a]), round(s_arm[a]))))
        else:
            r = rewards[actions == a]
            sd = float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else 1e6
            posts.append(ApproxPosterior(float(r.mean()) if r.size else 0.0, max(sd, 1e-12)))
    return np.asarray(probability_best(posts), dtype=np.float64)


def evaluate_file(
    path: Path,
    *,
    reward: str,
    arm_column: str = "arm",
    pscore_column: str = "pscore",
    context_column: str | None = None,
    rng: np.random.Generator,
    n_bootstrap: int = 500,
) -> OpeResult:
    """Evaluate the standard candidate policies on a logged unit-level file.

    Candidates: ``uniform`` split, ``current bandit`` (the Thompson allocation implied by the
    data, see :func:`bandit_allocation`) and, when ``score_<arm>`` columns exist for every arm,
    ``greedy on score`` (always the arm with the highest model score). The DR reward model
    uses ``context_column`` when given.

    Raises
    ------
    InvalidInputError
        When a column is missing or a propensity is invalid.
    """
    from experiments.source import connect, read_columns

    con = connect(path)
    names = {str(r[0]) for r in con.execute("DESCRIBE units").fetchall()}
    cols = [arm_column, reward, pscore_column, *([context_column] if context_column else [])]
    data = read_columns(path, cols)
    arm_values = data[arm_column].astype(str)
    arms, actions = np.unique(arm_values, return_inverse=True)
    arms_t = tuple(str(a) for a in arms)
    acts = actions.astype(np.int64)
    rewards = np.nan_to_num(data[reward].astype(np.float64))
    pscores = data[pscore_column].astype(np.float64)
    k, n = len(arms_t), acts.size
    ctx = None
    if context_column:
        _, ctx_codes = np.unique(data[context_column].astype(str), return_inverse=True)
        ctx = ctx_codes.astype(np.int64)
    policies = {
        "uniform": uniform_policy(n, k),
        "current bandit": np.broadcast_to(bandit_allocation(acts, rewards, k), (n, k)).copy(),
    }
    score_cols = [f"score_{a}" for a in arms_t]
    if all(c in names for c in score_cols):
        scores = read_columns(path, score_cols)
        policies["greedy on score"] = greedy_policy(
            np.column_stack([scores[c].astype(np.float64) for c in score_cols])
        )
    _validate(acts, rewards, pscores, k)
    q = reward_model(acts, rewards, k, ctx)
    return evaluate_policies(
        acts, rewards, pscores, policies, arms=arms_t, q_hat=q, rng=rng, n_bootstrap=n_bootstrap
    )
