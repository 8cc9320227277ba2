"""A calibrated training pipeline compiled for the render path.

The registered model is ``CalibratedClassifierCV(FrozenEstimator(Pipeline(encode, LightGBM)))``.
Calling ``predict_proba`` on it costs ~250 µs per call in scikit-learn's validation and pandas
handling alone, so the render path instead reads the pieces out once — category codes, column
order, the LightGBM booster and the calibrator — and evaluates them on a NumPy matrix. The
booster compiled to native code scores every matrix, one decision's single row included,
when it could be compiled (:mod:`serving.scoring.trees`, bit-equal to LightGBM); otherwise
the few rows of one decision go through LightGBM's single-row fast path
(:mod:`serving.scoring.native`) and larger matrices through ``Booster.predict``. A test checks
each equals ``predict_proba`` of the original pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serving.columns import value_rows, values_of
from serving.scoring.native import RowScorer
from serving.scoring.trees import NativeTrees, compile_trees

__all__ = ["FAST_ROWS", "NATIVE_ROWS", "CompiledModel"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
#: Numeric names to look up in records, their getter, and their columns (``None``: all).
_Lookup = tuple[tuple[str, ...], Callable[[Mapping[str, Any]], tuple[Any, ...]], IntArray | None]

#: Matrices up to this many rows are scored row by row through LightGBM's fast single-row
#: path; larger ones through ``Booster.predict``, whose fixed set-up is then small beside
#: the trees. Measured on the demo's champions (loaded machine): the fast path costs ~5 µs
#: plus 2.5-4.5 µs a row, ``Booster.predict`` 80-145 µs plus 0.5-4 µs a row, a crossover
#: near 40 rows for the engagement model and far beyond for the send-time model.
FAST_ROWS = 32

#: With the booster compiled to native code (``native=True``), matrices of at least this
#: many rows go through it instead. Called directly (:class:`NativeTrees`), one row of the
#: demo's champions costs 1.1-1.6 µs against 6-13 µs through the single-row path, and 24
#: rows 1.4-8.4 µs against 32-84 µs: the compiled trees win from the first row.
NATIVE_ROWS = 1


class CompiledModel:
    """Positive-class probabilities of a calibrated inboxlab pipeline, without pandas.

    Parameters
    ----------
    calibrated
        A fitted ``CalibratedClassifierCV`` around a frozen ``Pipeline`` whose steps are
        ``prepare`` (a ``ColumnTransformer`` with ``categorical`` ordinal encoding and
        ``numeric`` passthrough) and ``model`` (an ``LGBMClassifier``).
    native
        Compile the booster's trees to native code for matrices of :data:`NATIVE_ROWS` rows
        or more (a few seconds once per model, then cached in ``cache_dir``).
    cache_dir
        Where compiled trees are kept between processes (``None``: not kept).
    """

    def __init__(
        self, calibrated: Any, *, native: bool = False, cache_dir: Path | None = None
    ) -> None:
        (fold,) = calibrated.calibrated_classifiers_  # one calibrator: FrozenEstimator
        pipeline = getattr(fold.estimator, "estimator", fold.estimator)
        prepare = pipeline.named_steps["prepare"]
        self._categories: dict[str, dict[Any, float]] = {}
        self.categorical: tuple[str, ...] = ()
        self.numeric: tuple[str, ...] = ()
        for name, transformer, columns in prepare.transformers_:
            if len(columns) == 0:  # an empty part is left unfitted by the ColumnTransformer
                continue
            if name == "categorical":
                self.categorical = tuple(columns)
                for col, cats in zip(columns, transformer.categories_, strict=True):
                    self._categories[col] = {v: float(i) for i, v in enumerate(cats)}
            elif name == "numeric":
                self.numeric = tuple(columns)
        self.booster = pipeline.named_steps["model"].booster_
        self._rows = RowScorer(self.booster)
        #: The booster compiled to native code; ``None`` when not asked for or not possible.
        self.trees: NativeTrees | None = (
            compile_trees(self.booster, cache_dir=cache_dir) if native else None
        )
        # scikit-learn calibrates LightGBM on its decision function, i.e. the raw score. The
        # calibrator is read out too: its predict() validates inputs at ~0.1 ms a call.
        self._calibrate = _calibration_function(fold.calibrators[0])
        self.features: tuple[str, ...] = (*self.categorical, *self.numeric)
        self._numeric_values = values_of(self.numeric)
        self._lookups: dict[frozenset[str], _Lookup] = {}
        self.index: dict[str, int] = {name: j for j, name in enumerate(self.features)}

    def matrix(self, columns: Mapping[str, Sequence[Any] | NDArray[Any]], n: int) -> FloatArray:
        """The model's input matrix from named columns of length ``n`` (scalars broadcast)."""
        x = np.empty((n, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.categorical):
            codes = self._categories[name]
            values = columns.get(name)
            if values is None or isinstance(values, str):
                x[:, j] = codes.get(values, -1.0)
            else:
                x[:, j] = [codes.get(v, -1.0) for v in values]
        offset = len(self.categorical)
        (numeric,) = value_rows(self.numeric, [columns], self._numeric_values)
        try:
            # One conversion of every numeric column at once (columns of length n, or
            # scalars when n is 1): far cheaper than one assignment per column. A missing
            # value (None) converts to NaN.
            block = np.array(numeric, dtype=np.float64)
            x[:, offset:] = block.T if block.ndim == 2 else block
        except (ValueError, TypeError):  # scalars mixed with columns: broadcast one by one
            for j, values in enumerate(numeric):
                x[:, offset + j] = np.nan if values is None else np.asarray(values, np.float64)
        return x

    def rows(
        self, records: Sequence[Mapping[str, Any]], later: frozenset[str] = frozenset()
    ) -> FloatArray:
        """The model's input matrix with one row per record (a mapping of scalar values).

        Equal to :meth:`matrix` of the same values as columns; a missing name is a missing
        value, an unknown category is ``-1``. Numeric names in ``later`` are not looked up
        in the records: missing values, for the caller to fill (the send time's hour
        columns), so that records holding every other name take one C-level call each.
        """
        x = np.empty((len(records), len(self.features)), dtype=np.float64)
        if not records:
            return x
        k = len(self.categorical)
        if k:
            codes = [(self._categories[c], c) for c in self.categorical]
            x[:, :k] = [[m.get(r.get(c), -1.0) for m, c in codes] for r in records]
        names, take, at = self._numeric_lookup(later)
        values = np.array(value_rows(names, records, take), dtype=np.float64)  # None is NaN
        if at is None:
            x[:, k:] = values
        else:
            x[:, k:] = np.nan
            x[:, at] = values.reshape(len(records), len(names))
        return x

    def _numeric_lookup(self, later: frozenset[str]) -> _Lookup:
        """The numeric names looked up without ``later``, their getter, and their columns in
        the matrix (``None``: every numeric column)."""
        found = self._lookups.get(later)
        if found is None:
            kept = [j for j, name in enumerate(self.numeric) if name not in later]
            names = tuple(self.numeric[j] for j in kept)
            at = None if len(kept) == len(self.numeric) else len(self.categorical) + np.array(kept)
            found = self._lookups[later] = (names, values_of(names), at)
        return found

    def raw_matrix(self, x: FloatArray, *, threads: int = 1) -> FloatArray:
        """LightGBM's raw score for a prepared matrix: the ranking before calibration.

        Rank by this, not by the probability: isotonic calibration is a step function, so
        many of a recipient's hours share one calibrated value and an argmax over them would
        pick the first hour of the window instead of the best. Every path gives the same
        numbers to the bit. ``threads`` is for large matrices; one by default, since the
        server's workers already keep every core busy.
        """
        n = x.shape[0]
        if self.trees is not None and n >= NATIVE_ROWS:
            return self.trees.raw(x, threads=threads)
        if n <= FAST_ROWS:
            return self._rows.raw(x)
        raw = self.booster.predict(x, raw_score=True, num_threads=threads)
        return np.asarray(raw, dtype=np.float64)

    def calibrate(self, raw: FloatArray) -> FloatArray:
        """Probabilities from raw scores."""
        return self._calibrate(np.asarray(raw, dtype=np.float64))

    def predict_matrix(self, x: FloatArray) -> FloatArray:
        """Calibrated probabilities for a prepared matrix."""
        return self.calibrate(self.raw_matrix(x))

    def predict(self, columns: Mapping[str, Sequence[Any] | NDArray[Any]], n: int) -> FloatArray:
        """Calibrated probabilities for ``n`` rows given as named columns."""
        return self.predict_matrix(self.matrix(columns, n))


def _calibration_function(calibrator: Any) -> Callable[[FloatArray], FloatArray]:
    """The calibrator as a plain NumPy function (isotonic or Platt's sigmoid)."""
    if hasattr(calibrator, "X_thresholds_"):  # IsotonicRegression, out_of_bounds="clip"
        xs = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
        ys = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
        return lambda raw: np.interp(raw, xs, ys)
    a, b = float(calibrator.a_), float(calibrator.b_)  # sklearn's _SigmoidCalibration
    return lambda raw: 1.0 / (1.0 + np.exp(a * raw + b))
