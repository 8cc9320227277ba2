from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.ope import (
    bandit_allocation,
    evaluate_file,
    evaluate_policies,
    greedy_policy,
    reward_model,
    uniform_policy,
)
from inboxlab.errors import InvalidInputError

# Known world: 3 contexts x 3 arms of click probabilities; each context prefers another arm.
TRUTH = np.array([[0.10, 0.05, 0.02], [0.03, 0.12, 0.04], [0.05, 0.05, 0.09]])
CONTEXT_SHARE = np.array([0.5, 0.3, 0.2])
# Logging policy: context-dependent, every arm keeps at least 10 %.
LOGGING = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])


def _simulate(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ctx = rng.choice(3, size=n, p=CONTEXT_SHARE)
    u = rng.random(n)[:, None]
    action = (u > np.cumsum(LOGGING[ctx], axis=1)).sum(axis=1)
    click = (rng.random(n) < TRUTH[ctx, action]).astype(np.int8)
    noisy = TRUTH[ctx] + rng.normal(0, 0.01, (n, 3))
    return pd.DataFrame(
        {
            "arm": np.array(["a", "b", "c"])[action],
            "click": click,
            "pscore": LOGGING[ctx, action],
            "tier": ctx,
            **{f"score_{arm}": noisy[:, j] for j, arm in enumerate("abc")},
        }
    )


def test_estimators_recover_known_policy_values_in_simulation(
    write_table: Callable[..., Path],
) -> None:
    df = _simulate(200_000, seed=1)
    res = evaluate_file(
        write_table(df),
        reward="click",
        context_column="tier",
        rng=np.random.default_rng(2),
        n_bootstrap=300,
    )
    uniform_truth = float(CONTEXT_SHARE @ TRUTH.mean(axis=1))
    greedy_truth = float(CONTEXT_SHARE @ TRUTH.max(axis=1))  # the noise never flips the argmax
    assert res.arms == ("a", "b", "c")
    for policy, truth in (("uniform", uniform_truth), ("greedy on score", greedy_truth)):
        for est in ("ips", "snips", "dr"):
            e = res.get(policy, est)
            assert e.ci_low < truth < e.ci_high, (policy, est, e, truth)
            assert e.value == pytest.approx(truth, abs=0.004)
    ips, dr = res.get("greedy on score", "ips"), res.get("greedy on score", "dr")
    # With a good context model DR is never noisier than IPS (here click noise dominates).
    assert dr.ci_high - dr.ci_low <= 1.1 * (ips.ci_high - ips.ci_low)


def test_bootstrap_intervals_have_nominal_coverage() -> None:
    truth = float(CONTEXT_SHARE @ TRUTH.mean(axis=1))
    rng = np.random.default_rng(3)
    hits = 0
    runs = 40
    for seed in range(runs):
        df = _simulate(5_000, seed=100 + seed)
        acts = df["arm"].map({"a": 0, "b": 1, "c": 2}).to_numpy(np.int64)
        r = df["click"].to_numpy(np.float64)
        res = evaluate_policies(
            acts,
            r,
            df["pscore"].to_numpy(),
            {"uniform": uniform_policy(len(df), 3)},
            arms=["a", "b", "c"],
            rng=rng,
            n_bootstrap=200,
        )
        e = res.get("uniform", "snips")
        hits += e.ci_low < truth < e.ci_high
    assert 0.85 <= hits / runs <= 1.0


def test_ips_equals_naive_loop() -> None:
    rng = np.random.default_rng(4)
    n = 500
    acts = rng.integers(0, 2, n)
    p = np.where(acts == 0, 0.4, 0.6)
    r = rng.random(n)
    pi = np.column_stack([np.full(n, 0.7), np.full(n, 0.3)])
    res = evaluate_policies(acts, r, p, {"x": pi}, arms=["a", "b"], rng=rng, n_bootstrap=20)
    ips = sum(pi[i, acts[i]] / p[i] * r[i] for i in range(n)) / n
    w = [pi[i, acts[i]] / p[i] for i in range(n)]
    q = reward_model(acts, r, 2)
    dr = sum((pi[i] * q[i]).sum() + w[i] * (r[i] - q[i, acts[i]]) for i in range(n)) / n
    assert res.get("x", "ips").value == pytest.approx(ips)
    assert res.get("x", "snips").value == pytest.approx(sum(w[i] * r[i] for i in range(n)) / sum(w))
    assert res.get("x", "dr").value == pytest.approx(dr)


def test_greedy_and_bandit_policies_are_distributions() -> None:
    g = greedy_policy(np.array([[0.2, 0.9, 0.1]]))
    assert g.tolist() == [[0.0, 1.0, 0.0]]
    alloc = bandit_allocation(np.array([0, 0, 1, 1, 2]), np.array([1.0, 0.0, 1.0, 1.0, 0.0]), 4)
    assert alloc.sum() == pytest.approx(1.0)
    assert alloc[3] > 0  # an arm never played keeps a chance


def test_policy_that_never_matches_logged_choices_is_warned() -> None:
    acts = np.zeros(1000, dtype=np.int64)
    acts[:3] = 1
    res = evaluate_policies(
        acts,
        np.ones(1000),
        np.full(1000, 0.5),
        {"only-b": np.tile([0.0, 1.0], (1000, 1))},
        arms=["a", "b"],
        rng=np.random.default_rng(0),
        n_bootstrap=20,
    )
    assert any("effective sample size" in w for w in res.warnings)


@pytest.mark.parametrize(
    ("pscores", "policy", "match"),
    [
        (np.array([0.5, 0.0]), np.full((2, 2), 0.5), "pscore"),
        (np.array([0.5, 1.2]), np.full((2, 2), 0.5), "pscore"),
        (np.array([0.5, 0.5]), np.full((2, 2), 0.4), "sum to 1"),
        (np.array([0.5, 0.5]), np.full((3, 2), 0.5), "shape"),
    ],
)
def test_invalid_inputs_are_rejected(pscores: np.ndarray, policy: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        evaluate_policies(
            np.array([0, 1]),
            np.array([1.0, 0.0]),
            pscores,
            {"p": policy},
            arms=["a", "b"],
            rng=np.random.default_rng(0),
        )
