from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from serving.scoring import trees as trees_module
from serving.scoring.compiled import FAST_ROWS, NATIVE_ROWS, CompiledModel
from serving.scoring.trees import NativeTrees, compile_trees
from tests.serving.models import planted_pipeline
from training.specs import ModelKind


def _booster(params: dict[str, Any], *, categorical: bool, rounds: int = 30) -> lgb.Booster:
    """A binary booster on 6 columns, the first one categorical when asked, with missing
    values in every column."""
    rng = np.random.default_rng(3)
    n = 3_000
    x = rng.normal(size=(n, 6))
    x[:, 0] = rng.integers(0, 12, n)
    x[rng.random(x.shape) < 0.15] = np.nan
    logit = np.nan_to_num(x[:, 1]) - np.isnan(x[:, 2]) + (np.nan_to_num(x[:, 0]) % 3 == 1)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    data = lgb.Dataset(
        x, label=y, categorical_feature=[0] if categorical else "auto", free_raw_data=False
    )
    merged = {"objective": "binary", "verbose": -1, "num_leaves": 15, **params}
    return lgb.train(merged, data, num_boost_round=rounds)


def _probe(k: int, n: int = 4_000) -> np.ndarray:
    rng = np.random.default_rng(8)
    x = rng.normal(scale=2.0, size=(n, k))
    x[:, 0] = rng.integers(-3, 20, n)  # unseen and negative category codes
    x[rng.random(x.shape) < 0.2] = np.nan
    x[::7, 1] = 0.0
    x[::11] = np.nan  # whole rows missing
    return x


@pytest.mark.parametrize(
    "params, categorical",
    [
        ({}, False),
        ({}, True),
        ({"zero_as_missing": True}, False),
        ({"use_missing": False}, False),
        ({"max_cat_to_onehot": 32}, True),  # one-vs-rest category splits
    ],
)
def test_compiled_trees_equal_booster_predict_to_the_bit(
    params: dict[str, Any], categorical: bool, tmp_path: Path
) -> None:
    booster = _booster(params, categorical=categorical)
    trees = compile_trees(booster, cache_dir=tmp_path)
    assert trees is not None
    x = _probe(booster.num_feature())
    expected = booster.predict(x, raw_score=True)
    np.testing.assert_array_equal(trees.raw(x), expected)
    np.testing.assert_array_equal(trees.raw(x, threads=2), expected)


def test_the_direct_call_reads_any_layout_and_single_rows(tmp_path: Path) -> None:
    # The compiled function is handed a pointer: a strided, column-major or integer matrix
    # must be read as its values, one row at a time as well as all together.
    booster = _booster({}, categorical=True)
    trees = compile_trees(booster, cache_dir=tmp_path)
    assert trees is not None
    x = _probe(booster.num_feature(), n=64)
    expected = booster.predict(x, raw_score=True)
    np.testing.assert_array_equal(trees.raw(x[::2]), expected[::2])
    np.testing.assert_array_equal(trees.raw(np.asfortranarray(x)), expected)
    for i in (0, 17, 63):
        np.testing.assert_array_equal(trees.raw(x[i : i + 1]), expected[i : i + 1])
    whole = np.nan_to_num(x, nan=-1.0).astype(np.int64)
    expected_int = booster.predict(whole.astype(np.float64), raw_score=True)
    np.testing.assert_array_equal(trees.raw(whole), expected_int)


def test_more_trees_than_a_cache_block_still_sum_in_lightgbms_order(tmp_path: Path) -> None:
    # lleaves sums blocks of 34 trees by default, which can move the last bit.
    booster = _booster({"num_leaves": 4}, categorical=True, rounds=120)
    trees = compile_trees(booster, cache_dir=tmp_path)
    assert trees is not None
    x = _probe(booster.num_feature(), n=20_000)
    np.testing.assert_array_equal(trees.raw(x), booster.predict(x, raw_score=True))


def test_compiled_code_is_cached_and_reused(tmp_path: Path) -> None:
    booster = _booster({}, categorical=True)
    first = compile_trees(booster, cache_dir=tmp_path)
    assert first is not None
    cached = sorted(tmp_path.iterdir())
    assert [p.name for p in cached] == [f"{first.key}.o"]
    modified = cached[0].stat().st_mtime_ns
    second = compile_trees(booster, cache_dir=tmp_path)
    assert second is not None and second.key == first.key
    assert sorted(tmp_path.iterdir()) == cached and cached[0].stat().st_mtime_ns == modified
    x = _probe(booster.num_feature())
    np.testing.assert_array_equal(second.raw(x), booster.predict(x, raw_score=True))
    # another model gets another entry
    other = compile_trees(_booster({}, categorical=False), cache_dir=tmp_path)
    assert other is not None and other.key != first.key
    assert len(list(tmp_path.iterdir())) == 2


def test_an_unwritable_cache_still_compiles(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    booster = _booster({}, categorical=False)
    trees = compile_trees(booster, cache_dir=blocker / "trees")
    assert trees is not None
    x = _probe(booster.num_feature())
    np.testing.assert_array_equal(trees.raw(x), booster.predict(x, raw_score=True))


def test_a_failed_compilation_leaves_booster_predict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pipeline = planted_pipeline(ModelKind.SEND_TIME)

    def fail(*_: Any) -> NativeTrees:
        raise RuntimeError("no LLVM here")

    monkeypatch.setattr(trees_module, "_compile", fail)
    model = CompiledModel(pipeline, native=True, cache_dir=tmp_path)
    assert model.trees is None
    x = _probe(len(model.features), n=FAST_ROWS + 5)
    expected = model.booster.predict(x, raw_score=True)
    np.testing.assert_array_equal(model.raw_matrix(x), expected)


def test_compiled_trees_that_disagree_are_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    booster = _booster({}, categorical=False)
    raw = NativeTrees.raw

    def off_by_a_bit(self: NativeTrees, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
        return np.nextafter(raw(self, x, threads=threads), np.inf)

    monkeypatch.setattr(NativeTrees, "raw", off_by_a_bit)
    assert compile_trees(booster, cache_dir=tmp_path) is None


def test_wrong_width_is_refused(tmp_path: Path) -> None:
    booster = _booster({}, categorical=False)
    trees = compile_trees(booster, cache_dir=tmp_path)
    assert trees is not None
    with pytest.raises(ValueError, match="6 columns"):
        trees.raw(np.zeros((3, 5)))
    assert trees.raw(np.zeros((0, 6))).shape == (0,)


@pytest.mark.parametrize("kind", list(ModelKind))
def test_compiled_model_with_native_trees_equals_the_pipeline(
    kind: ModelKind, tmp_path: Path
) -> None:
    pipeline = planted_pipeline(kind)
    native = CompiledModel(pipeline, native=True, cache_dir=tmp_path)
    plain = CompiledModel(pipeline)
    assert native.trees is not None and plain.trees is None
    x = _probe(len(native.features), n=2_000)
    steps = pipeline.calibrated_classifiers_[0].estimator.estimator.named_steps  # type: ignore[attr-defined]
    categories = (
        steps["prepare"].named_transformers_["categorical"].categories_
        if (native.categorical)
        else []
    )
    for j, cats in enumerate(categories):  # codes of known categories, -1 for unknown ones
        x[:, j] = np.floor(np.abs(np.nan_to_num(x[:, j], nan=-1.0))) % (len(cats) + 1) - 1
    # every path of raw_matrix (the fast single rows, the compiled trees, Booster.predict)
    expected = native.booster.predict(x, raw_score=True)
    for n in (1, NATIVE_ROWS - 1, NATIVE_ROWS, FAST_ROWS, FAST_ROWS + 1, len(x)):
        np.testing.assert_array_equal(native.raw_matrix(x[:n]), expected[:n])
        np.testing.assert_array_equal(plain.raw_matrix(x[:n]), expected[:n])
    # and the probabilities are the registered pipeline's
    frame = pd.DataFrame(x[:300], columns=list(native.features))
    for name, cats in zip(native.categorical, categories, strict=True):
        codes = frame[name].to_numpy(dtype=int)
        frame[name] = [cats[c] if c >= 0 else "unseen" for c in codes]
    expected_p = pipeline.predict_proba(frame)[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(native.predict_matrix(x[:300]), expected_p, atol=1e-9)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(trees_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
