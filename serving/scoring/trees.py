"""LightGBM boosters compiled to native code.

``Booster.predict`` walks each tree through LightGBM's generic node arrays: about 2.2 µs a
row for the demo's send-time champion (78 trees) on a lightly loaded core, which made it the
largest single cost of a batch of decisions (13 candidate hours a recipient). lleaves
translates the trees into LLVM IR, one branch per node, and compiles them for the host CPU:
0.45 µs a row for the same model, with the GIL released during the call, and about 7 µs a
call, so it also beats LightGBM's single-row path from a few rows on.

The trees are compiled without lleaves' cache blocking (``fblocksize`` = the number of
trees): every row's raw score is then the sum of its leaves in LightGBM's tree order, equal
to ``Booster.predict(raw_score=True)`` to the bit (blocking sums groups of trees first and
can move the last bit, enough to flip an argmax between two near-equal hours). Each compiled
model is checked against ``Booster.predict`` on a probe matrix before it is used.

A single-threaded call goes straight to the compiled entry function with pointers to the
input and output arrays. ``lleaves.Model.predict`` around it converts and checks its input and
builds the output for every call: about 10 µs, against 1.1–1.6 µs for the call itself on one
row of the demo's champions, which made it slower than LightGBM's single-row path for the few
rows of one decision.

Compiling the send-time champion takes a few seconds, so the object code is cached on disk
under a key made of the model text, the lleaves and llvmlite versions and the host CPU; a
process that finds the key loads it in milliseconds. Anything that fails — lleaves missing,
a model it cannot translate, a probe that disagrees — leaves the caller on
``Booster.predict``, with a warning in the log.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["NativeTrees", "compile_trees"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: Rows of the matrix each compiled model is checked on against ``Booster.predict``.
PROBE_ROWS = 512

_DOUBLES = ctypes.POINTER(ctypes.c_double)


class NativeTrees:
    """Raw scores of a binary LightGBM booster from its trees compiled to native code.

    Build one with :func:`compile_trees`. Thread-safe: the compiled function keeps no state.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 3))
    >>> data = lgb.Dataset(x, label=x[:, 0] > 0)
    >>> booster = lgb.train({"objective": "binary", "verbose": -1}, data, num_boost_round=50)
    >>> trees = compile_trees(booster, cache_dir=None)
    >>> bool(np.array_equal(trees.raw(x), booster.predict(x, raw_score=True)))
    True
    """

    def __init__(self, model: Any, n_feature: int, key: str) -> None:
        self._model = model
        # void forest_root(double* rows, double* out, int start, int end), compiled with
        # float64 inputs and outputs (lleaves' default); it releases the GIL while it runs.
        # An lleaves without this attribute fails _compile: Booster.predict is used instead.
        self._entry: Any = model._c_entry_func
        self.n_feature = n_feature
        #: The cache key of the compiled code (a hash of the model and the compiler).
        self.key = key

    def raw(self, x: FloatArray, *, threads: int = 1) -> FloatArray:
        """Raw scores (log-odds) of the rows of ``x``, shape ``(n, n_feature)``."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_feature:
            raise ValueError(f"expected a matrix of {self.n_feature} columns, got shape {x.shape}")
        n = x.shape[0]
        if threads > 1 and n > 1:  # lleaves splits the rows over a thread pool
            return np.asarray(self._model.predict(x, n_jobs=threads), dtype=np.float64)
        out = np.empty(n, dtype=np.float64)
        if n:
            self._entry(x.ctypes.data_as(_DOUBLES), out.ctypes.data_as(_DOUBLES), 0, n)
        return out


def compile_trees(booster: Any, *, cache_dir: Path | None) -> NativeTrees | None:
    """``booster`` compiled to native code, or ``None`` when it cannot be (see the module).

    Parameters
    ----------
    booster : lightgbm.Booster
        A trained binary booster.
    cache_dir
        Where compiled object code is kept between processes; ``None`` compiles every time.
    """
    try:
        trees = _compile(booster, cache_dir)
    except Exception as exc:  # any failure keeps Booster.predict: slower, never wrong
        logger.warning("LightGBM trees not compiled, Booster.predict is used: %s", exc)
        return None
    if not _agrees(trees, booster):
        logger.warning("compiled trees %s disagree with Booster.predict; not used", trees.key)
        return None
    return trees


def _compile(booster: Any, cache_dir: Path | None) -> NativeTrees:
    import lleaves
    import llvmlite.binding as llvm

    if booster.num_model_per_iteration() != 1:
        raise ValueError("only binary (one output per row) boosters are compiled")
    text = booster.model_to_string()
    n_trees = booster.num_trees()
    # The object code is specific to the model, the compiler and the CPU it was built for.
    identity = "\n".join(
        (
            metadata.version("lleaves"),
            metadata.version("llvmlite"),
            llvm.get_host_cpu_name(),
            llvm.get_host_cpu_features().flatten(),
            text,
        )
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    with tempfile.TemporaryDirectory(prefix="inboxlab-trees-") as scratch:
        model_file = Path(scratch) / "model.txt"
        model_file.write_text(text)
        model = lleaves.Model(model_file=str(model_file))
        options: dict[str, Any] = {"raw_score": True, "fblocksize": max(1, n_trees)}
        if cache_dir is None:
            model.compile(**options)
        else:
            _compile_cached(model, options, cache_dir / f"{key}.o")
    return NativeTrees(model, int(booster.num_feature()), key)


def _compile_cached(model: Any, options: dict[str, Any], cached: Path) -> None:
    """Compile ``model``, loading its object code from ``cached`` or saving it there."""
    if cached.exists():
        model.compile(cache=str(cached), **options)
        return
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # an unwritable cache costs the compilation time, nothing else
        logger.warning("compiled trees not cached in %s: %s", cached.parent, exc)
        model.compile(**options)
        return
    # Written beside the final name and renamed into place: a process that finds the file
    # never reads half of one.
    partial = cached.with_name(f"{cached.stem}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        model.compile(cache=str(partial), **options)
        partial.replace(cached)
    finally:
        partial.unlink(missing_ok=True)


def _agrees(trees: NativeTrees, booster: Any) -> bool:
    """Whether the compiled trees give ``Booster.predict``'s raw scores to the bit on a
    probe: values around zero and across wide ranges, small integers (category codes, with
    ``-1`` for an unknown category) and missing values in every column."""
    rng = np.random.default_rng(0)
    n, k = PROBE_ROWS, trees.n_feature
    probe = rng.normal(scale=10.0, size=(n, k))
    probe[::4] = rng.integers(-1, 40, size=probe[::4].shape)
    probe[1::4] *= 1_000.0
    probe[rng.random((n, k)) < 0.1] = np.nan
    expected = np.asarray(booster.predict(probe, raw_score=True, num_threads=1))
    return bool(np.array_equal(trees.raw(probe), expected))
