from __future__ import annotations

import numpy as np
import pandas as pd

from serving.scoring.compiled import CompiledModel
from training.estimator import calibrate, make_lightgbm


def _fit(categorical: list[str], method: str) -> tuple[object, pd.DataFrame]:
    rng = np.random.default_rng(1)
    n = 4_000
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    if categorical:
        x.insert(0, "variant_id", rng.choice(["v0", "v1", "v2"], n).astype(object))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x["a"] - 1)))).astype(int)
    model = make_lightgbm(["a", "b"], categorical, {"n_estimators": 30}).fit(x, y)
    return calibrate(model, x, y, method=method), x  # type: ignore[arg-type]


def test_compiled_model_equals_the_pipeline_it_came_from() -> None:
    for categorical in ([], ["variant_id"]):
        for method in ("sigmoid", "isotonic"):
            model, x = _fit(categorical, method)
            x = x.head(500).copy()
            if categorical:
                x.loc[x.index[:5], "variant_id"] = "never-seen"
            compiled = CompiledModel(model)
            columns = {c: x[c].to_numpy() for c in x.columns}
            expected = model.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
            np.testing.assert_allclose(compiled.predict(columns, len(x)), expected, atol=1e-12)


def test_missing_columns_score_like_missing_values() -> None:
    model, _ = _fit(["variant_id"], "sigmoid")
    compiled = CompiledModel(model)
    nan_rows = pd.DataFrame({"variant_id": [None], "a": [np.nan], "b": [np.nan]}, dtype=object)
    expected = model.predict_proba(nan_rows.astype({"a": float, "b": float}))[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(compiled.predict({}, 1), expected, atol=1e-12)
