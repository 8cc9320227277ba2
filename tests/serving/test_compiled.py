from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.scoring.compiled import FAST_ROWS, CompiledModel
from serving.scoring.native import RowScorer
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


def test_rows_of_records_equal_the_column_matrix() -> None:
    model, x = _fit(["variant_id"], "isotonic")
    compiled = CompiledModel(model)
    x = x.head(50).copy()
    x.loc[x.index[:3], "variant_id"] = "never-seen"
    x.loc[x.index[3], "a"] = np.nan
    records: list[dict[str, Any]] = x.to_dict("records")  # type: ignore[assignment]
    records[4].pop("b")  # a missing name is a missing value
    columns = {c: x[c].to_numpy() for c in x.columns}
    columns["b"] = columns["b"].copy()
    columns["b"][4] = np.nan
    np.testing.assert_array_equal(compiled.rows(records), compiled.matrix(columns, len(x)))
    np.testing.assert_array_equal(
        compiled.rows(records[:1]), compiled.matrix({k: v[0] for k, v in columns.items()}, 1)
    )
    assert compiled.rows([]).shape == (0, len(compiled.features))


def test_few_rows_score_through_the_fast_path_like_the_pipeline() -> None:
    # A decision's rows (up to FAST_ROWS) take LightGBM's single-row path, larger matrices
    # Booster.predict: both must give predict_proba of the registered pipeline.
    for categorical in ([], ["variant_id"]):
        model, x = _fit(categorical, "isotonic")
        x = x.head(FAST_ROWS + 1).copy()
        x.loc[x.index[1], "a"] = np.nan
        if categorical:
            x.loc[x.index[2], "variant_id"] = "never-seen"
        compiled = CompiledModel(model)
        expected = model.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        for n in (1, 3, FAST_ROWS, FAST_ROWS + 1):
            columns = {c: x[c].to_numpy()[:n] for c in x.columns}
            np.testing.assert_allclose(compiled.predict(columns, n), expected[:n], atol=1e-9)


def test_row_scorer_equals_booster_predict_bit_for_bit() -> None:
    model, x = _fit(["variant_id"], "sigmoid")
    compiled = CompiledModel(model)
    matrix = compiled.matrix({c: x[c].to_numpy() for c in x.columns}, len(x))
    matrix[::7, -1] = np.nan
    scorer = RowScorer(compiled.booster)
    expected = compiled.booster.predict(matrix, raw_score=True)
    np.testing.assert_array_equal(scorer.raw(matrix), expected)
    np.testing.assert_array_equal(scorer.raw(matrix[::3]), expected[::3])  # strided rows
    assert scorer.raw(matrix[:0]).shape == (0,)


def test_row_scorer_refuses_a_matrix_of_the_wrong_width() -> None:
    model, _ = _fit([], "sigmoid")
    scorer = RowScorer(CompiledModel(model).booster)
    with pytest.raises(ValueError, match="expected a matrix of 2 columns"):
        scorer.raw(np.zeros((2, 3)))


class _ByIndexOnly(dict[str, Any]):
    """A record that fails when read name by name (the slow path for partial records)."""

    def get(self, *_: Any) -> Any:
        raise AssertionError("read name by name")


def test_names_filled_later_are_left_missing_and_the_rest_read_in_one_call() -> None:
    model, x = _fit([], "isotonic")
    compiled = CompiledModel(model)
    records: list[dict[str, Any]] = x.head(20).to_dict("records")  # type: ignore[assignment]
    without_b = [{k: v for k, v in r.items() if k != "b"} for r in records]
    expected = compiled.rows(without_b)  # b missing: NaN, through the slow path
    assert np.isnan(expected[:, compiled.index["b"]]).all()
    fast = [_ByIndexOnly(r) for r in without_b]
    np.testing.assert_array_equal(compiled.rows(fast, frozenset({"b"})), expected)
    # Not looked up even where a record has it: the caller fills it.
    np.testing.assert_array_equal(compiled.rows(records, frozenset({"b", "zz"})), expected)
    np.testing.assert_array_equal(compiled.rows(records, frozenset({"zz"})), compiled.rows(records))
    assert compiled.rows([], frozenset({"b"})).shape == (0, len(compiled.features))
