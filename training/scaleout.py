"""LightGBM on a Dask cluster: the same engagement pipeline, trained across workers.

:func:`fit_lightgbm_dask` trains ``lightgbm.DaskLGBMClassifier`` on a pandas or Dask frame and
returns an ordinary, in-process scikit-learn pipeline shaped like
:func:`training.estimator.make_lightgbm`'s: calibration, MLflow logging and serving take it
unchanged. :func:`fit_and_evaluate_dask` is :func:`training.fit.fit_and_evaluate` with the
LightGBM step moved to the cluster, so a run trained this way is logged like any other.

Only the boosting is distributed. The ordinal encoding is fitted on the distinct categorical
values (small whatever the row count), and calibration and the logistic baseline run on the
calibration and training windows in process, as they do without Dask.

Examples
--------
>>> from training.scaleout import fit_lightgbm_dask, local_client
>>> with local_client(n_workers=2) as client:  # doctest: +SKIP
...     pipeline = fit_lightgbm_dask(sends, "clicked", ["recency"], ["variant_id"], client=client)
>>> pipeline.predict_proba(sends[["variant_id", "recency"]])[:, 1]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from inboxlab.errors import InvalidInputError
from training.estimator import DEFAULT_LGBM_PARAMS, make_lightgbm
from training.fit import FitResult, fit_and_evaluate, model_input

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

__all__ = ["fit_and_evaluate_dask", "fit_lightgbm_dask", "local_client"]

Progress = Callable[[str], None]


@contextmanager
def local_client(n_workers: int = 2, threads_per_worker: int = 1) -> Iterator[Client]:
    """A client of a local in-process Dask cluster, closed on exit.

    Threads rather than processes: LightGBM keeps its network state per thread, so in-process
    workers train together over local sockets without pickling the data to subprocesses.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


def _distinct_levels(
    frame: pd.DataFrame | dd.DataFrame, categorical: Sequence[str]
) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    for c in categorical:
        values = frame[c].astype("string").fillna("missing")
        if not isinstance(values, pd.Series):
            # Per-partition de-duplication: Dask's own ``unique`` shuffles the whole column.
            values = values.map_partitions(pd.Series.drop_duplicates).compute()
        levels[c] = sorted({str(v) for v in values.unique()})
    return levels


def _fit_prepare(
    frame: pd.DataFrame | dd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[Any, pd.DataFrame]:
    """The pipeline's column transformer, fitted on one row per distinct category level.

    The ordinal encoder only learns the levels and numerics pass through, so a frame of the
    distinct levels fits the same transformer as the whole data would, without a full pass.
    Also returns the empty transformed frame Dask needs as ``meta``.
    """
    prepare = make_lightgbm(numeric, categorical).named_steps["prepare"]
    levels = _distinct_levels(frame, categorical)
    rows = max([1, *(len(v) for v in levels.values())])
    sample = pd.DataFrame(
        {
            **{c: np.resize(np.asarray(v, dtype=object), rows) for c, v in levels.items()},
            **{c: np.zeros(rows) for c in numeric},
        }
    )
    # Pandas output keeps feature names on the LightGBM input, so the model fitted on the
    # cluster and the one predicting in the pipeline see the same named columns.
    prepared = prepare.set_output(transform="pandas").fit_transform(
        sample[[*categorical, *numeric]]
    )
    return prepare, prepared.iloc[:0]


def fit_lightgbm_dask(
    frame: pd.DataFrame | dd.DataFrame,
    label: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    client: Client,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    partitions: int | None = None,
) -> Pipeline:
    """Train LightGBM with ``DaskLGBMClassifier`` and return an in-process pipeline.

    Parameters
    ----------
    frame
        Labelled rows (pandas or Dask) holding ``label`` and every feature column.
    label
        The binary target column.
    numeric, categorical
        Feature columns, as for :func:`training.estimator.make_lightgbm`.
    client
        Client of the Dask cluster to train on (see :func:`local_client`).
    params
        LightGBM parameters over :data:`training.estimator.DEFAULT_LGBM_PARAMS`.
    seed
        LightGBM's ``random_state``.
    partitions
        Partitions of a pandas ``frame`` once distributed; default two per worker, so every
        worker holds data (LightGBM needs each machine to have rows).

    Returns
    -------
    Pipeline
        ``prepare`` (ordinal encoding) then ``model``, a plain ``LGBMClassifier``.
    """
    import dask.dataframe as dd
    from lightgbm import DaskLGBMClassifier

    cols = [*categorical, *numeric]
    missing = [c for c in (*cols, label) if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"training frame lacks columns {missing}", field="features")
    if isinstance(frame, pd.DataFrame):
        if frame.empty:
            raise InvalidInputError("the training frame holds no rows", field="window")
        workers = len(client.scheduler_info()["workers"])
        data = dd.from_pandas(  # type: ignore[no-untyped-call]
            frame[[*cols, label]], npartitions=partitions or 2 * workers
        )
    else:
        data = frame[[*cols, label]]
    prepare, meta = _fit_prepare(data, numeric, categorical)

    def transform(part: pd.DataFrame) -> pd.DataFrame:
        out: pd.DataFrame = prepare.transform(model_input(part, numeric, categorical))
        out.index = part.index
        return out

    x = data[cols].map_partitions(transform, meta=meta)
    y = data[label].astype(int)
    # n_jobs is dropped: each worker trains with its own Dask thread count.
    merged = {**DEFAULT_LGBM_PARAMS, **(params or {}), "random_state": seed}
    merged.pop("n_jobs", None)
    model = DaskLGBMClassifier(client=client, **merged).fit(x, y)
    return Pipeline([("prepare", prepare), ("model", model.to_local())])


def fit_and_evaluate_dask(
    frame: pd.DataFrame,
    label: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    client: Client,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    holdout_days: int = 14,
    calibration_days: int = 7,
    progress: Progress | None = None,
) -> FitResult:
    """:func:`training.fit.fit_and_evaluate` with LightGBM trained on the Dask cluster.

    The result logs with :func:`training.tracking.log_training_run` like an in-process one.
    """
    result = fit_and_evaluate(
        frame,
        label,
        numeric,
        categorical,
        params=params,
        seed=seed,
        holdout_days=holdout_days,
        calibration_days=calibration_days,
        progress=progress,
        fit_lightgbm=lambda train: fit_lightgbm_dask(
            train, label, numeric, categorical, client=client, params=params, seed=seed
        ),
    )
    return dataclasses.replace(result, params={**result.params, "backend": "dask"})
