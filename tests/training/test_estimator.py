from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.estimator import make_lightgbm, positive_proba
from training.specs import ModelKind, spec_for


def _noisy_frame(n: int = 6_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``affinity`` raises the odds but noisily; ``other`` is unrelated."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "variant_id": rng.choice(["v0", "v1"], n).astype(object),
            "affinity": rng.random(n),
            "other": rng.normal(size=n),
        }
    )
    # A non-monotone truth: a bump in the middle, so an unconstrained model dips somewhere.
    logit = -1.0 + 2.0 * x["affinity"] - 3.0 * np.exp(-(((x["affinity"] - 0.6) / 0.05) ** 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return x, y


def _along_affinity(model: object, x: pd.DataFrame) -> np.ndarray:
    grid = x.iloc[[0] * 101].copy()
    grid["affinity"] = np.linspace(0.0, 1.0, 101)
    return positive_proba(model, grid)


def test_monotone_columns_are_mapped_to_the_prepared_matrix_order() -> None:
    pipe = make_lightgbm(["a", "b", "c"], ["cat"], {"monotone": {"c": 1, "a": -1}})
    assert pipe[-1].get_params()["monotone_constraints"] == [0, -1, 0, 1]
    assert "monotone" not in pipe[-1].get_params()


def test_a_monotone_constraint_holds_in_the_fitted_model() -> None:
    x, y = _noisy_frame()
    params = {"n_estimators": 60, "min_child_samples": 20}
    free = make_lightgbm(["affinity", "other"], ["variant_id"], params).fit(x, y)
    tied = make_lightgbm(
        ["affinity", "other"], ["variant_id"], {**params, "monotone": {"affinity": 1}}
    ).fit(x, y)
    assert np.any(np.diff(_along_affinity(free, x)) < 0)  # the data alone would dip
    assert np.all(np.diff(_along_affinity(tied, x)) >= 0)


@pytest.mark.parametrize(
    ("monotone", "message"),
    [({"nope": 1}, "nope"), ({"affinity": 2}, "1 or -1")],
)
def test_bad_monotone_constraints_are_refused_by_name(
    monotone: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_lightgbm(["affinity"], [], {"monotone": monotone})


def test_the_send_time_spec_constrains_only_its_own_inputs() -> None:
    spec = spec_for(ModelKind.SEND_TIME)
    inputs = {*spec.context_numeric, *spec.context_categorical}
    assert set(spec.lgbm_params.get("monotone", {})) <= inputs
