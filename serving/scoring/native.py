"""LightGBM's single-row fast prediction, called through its C API.

``Booster.predict`` pays for its generality on every call: it converts parameters to a string
that the library parses again, builds a predictor, checks the matrix and allocates the
output — about 25 µs on an idle core (80-145 µs on the loaded benchmark machine) before a
single tree is evaluated, which is most of the cost of scoring the few rows of one decision.
LightGBM's C API has a path for exactly this case: ``LGBM_BoosterPredictForMatSingleRowFastInit``
parses the configuration once and ``LGBM_BoosterPredictForMatSingleRowFast`` then scores one
row with no set-up. The trees and the arithmetic are the library's own, so the scores are the
same numbers ``predict`` gives (a test checks equality).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["RowScorer"]

FloatArray = NDArray[np.float64]

_PREDICT_RAW_SCORE = 1  # C_API_PREDICT_RAW_SCORE
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64

# int LGBM_BoosterPredictForMatSingleRowFast(FastConfigHandle, const void* data,
#                                            int64_t* out_len, double* out_result)
_PredictRow = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)


class RowScorer:
    """Raw scores of a binary LightGBM booster, one C call per row and no per-call set-up.

    Parameters
    ----------
    booster : lightgbm.Booster
        A trained binary booster; kept alive as long as the scorer.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3))
    >>> data = lgb.Dataset(x, label=x[:, 0] > 0)
    >>> booster = lgb.train({"objective": "binary", "verbose": -1}, data, num_boost_round=5)
    >>> scorer = RowScorer(booster)
    >>> bool(np.array_equal(scorer.raw(x[:4]), booster.predict(x[:4], raw_score=True)))
    True
    """

    def __init__(self, booster: Any) -> None:
        from lightgbm.basic import _safe_call
        from lightgbm.libpath import _LIB

        if booster.num_model_per_iteration() != 1:
            raise ValueError("RowScorer scores binary (one output per row) boosters only")
        self._booster = booster
        self._ncol = int(booster.num_feature())
        self._lib = _LIB
        self._handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_RAW_SCORE),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # every iteration
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(self._ncol),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._safe_call = _safe_call
        self._predict_row = _PredictRow(("LGBM_BoosterPredictForMatSingleRowFast", _LIB))
        self._out_len = ctypes.c_int64(0)
        self._out_len_ptr = ctypes.addressof(self._out_len)
        # The fast configuration keeps per-call buffers: one caller at a time.
        self._lock = threading.Lock()

    def raw(self, x: FloatArray) -> FloatArray:
        """Raw scores (log-odds) of the rows of ``x``, shape ``(n, num_feature)``."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._ncol:
            raise ValueError(f"expected a matrix of {self._ncol} columns, got shape {x.shape}")
        n = x.shape[0]
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        stride = x.strides[0]
        row = x.ctypes.data
        result = out.ctypes.data
        predict, handle, out_len = self._predict_row, self._handle, self._out_len_ptr
        with self._lock:
            for i in range(n):
                code = predict(handle, row + i * stride, out_len, result + 8 * i)
                if code != 0:
                    self._safe_call(code)  # raises LightGBMError with the library's message
        return out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value is not None:
            self._lib.LGBM_FastConfigFree(handle)
            handle.value = None
