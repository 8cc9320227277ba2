"""Training throughput: a point-in-time training set of ~1,000,000 labelled sends plus LightGBM.

Setup (not timed): simulate a history with about a million sends, import it, build the
feature tables (``--work DIR`` keeps them and reuses them on the next run). Timed,
``--rounds`` times each, in one process, each step split into its parts:

* ``training set``: :func:`training.dataset.build_training_set` for the engagement model
  (labelling in DuckDB, then the point-in-time feature join and the request-time columns);
* ``fit``: :func:`training.fit.fit_and_evaluate` as ``inboxlab train`` runs it — time split
  and model inputs, LightGBM with early stopping, the logistic baseline, calibration of both,
  holdout evaluation;
* once: logging the run to MLflow (plots, holdout, both models) with
  :func:`training.tracking.log_training_run`, reported beside the budget;
* baseline in the same run, so the ratio holds on a loaded machine too: reading the same
  training set back from Parquet with pyarrow.

::

    .venv/bin/python benchmarks/bench_training.py                     # ~1M sends, 3 rounds
    .venv/bin/python benchmarks/bench_training.py --recipients 10000 --rounds 1
    .venv/bin/python benchmarks/bench_training.py --work /tmp/w --threads 1   # keep the world;
                                                                              # 1 LightGBM thread

Prints medians with the holdout AUC and the number of trees, and exits non-zero when training
set + fit misses the 3-minute budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from features.simulator import SimulationConfig
from inboxlab.settings import MlflowSettings, Settings
from training.dataset import TrainingSet, build_training_set, service_features
from training.evaluation import prepare_world
from training.fit import FitResult, fit_and_evaluate
from training.specs import ModelKind, spec_for
from training.tracking import fingerprint, log_training_run

BUDGET_SECONDS = 180.0


class Marks:
    """Seconds between the progress messages of one call, by the message's first words."""

    def __init__(self) -> None:
        self.at: list[tuple[str, float]] = []

    def __call__(self, message: str) -> None:
        self.at.append((message, time.perf_counter()))

    def parts(self, start: float, end: float, names: dict[str, str]) -> dict[str, float]:
        """``{part: seconds}``; a part runs from its message to the next (or ``end``)."""
        out: dict[str, float] = {}
        first = self.at[0][1] if self.at else end
        if first > start:
            out["before the first step"] = first - start
        for i, (message, at) in enumerate(self.at):
            nxt = self.at[i + 1][1] if i + 1 < len(self.at) else end
            name = next((v for k, v in names.items() if message.startswith(k)), message)
            out[name] = out.get(name, 0.0) + nxt - at
        return out


SET_PARTS = {"labelling": "labels (DuckDB)", "joining": "feature join + context"}
FIT_PARTS = {
    "fitting LightGBM": "LightGBM (early stopping)",
    "fitting the logistic": "logistic baseline",
    "calibrating": "calibration",
    "evaluating": "holdout evaluation",
}


def _timed_parts(
    fn: Callable[[Marks], Any], names: dict[str, str]
) -> tuple[float, dict[str, float], Any]:
    marks = Marks()
    start = time.perf_counter()
    out = fn(marks)
    end = time.perf_counter()
    return end - start, marks.parts(start, end, names), out


def _prepared(work: Path, recipients: int, days: int) -> Settings:
    settings = Settings(
        data_dir=work / "data",
        mlflow=MlflowSettings(
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}", artifact_location=str(work / "mlruns")
        ),
    )
    marker = work / "world.json"
    wanted = {"recipients": recipients, "days": days, "seed": 7}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"reusing the world in {work}")
        return settings
    if settings.data_dir.exists():
        raise SystemExit(f"{settings.data_dir} holds another world; use an empty --work")
    start = time.perf_counter()
    prepare_world(settings, SimulationConfig(recipients=recipients, days=days, seed=7))
    marker.write_text(json.dumps(wanted))
    print(f"setup (simulate, import, features): {time.perf_counter() - start:.1f} s")
    return settings


def _print_parts(title: str, runs: list[tuple[float, dict[str, float]]]) -> float:
    total = statistics.median(t for t, _ in runs)
    print(f"{title:36} {total:8.2f} s   ({', '.join(f'{t:.1f}' for t, _ in runs)})")
    for name in runs[0][1]:
        part = statistics.median(p.get(name, 0.0) for _, p in runs)
        print(f"    {name:32} {part:8.2f} s")
    return total


def run(settings: Settings, rounds: int, work: Path, threads: int | None = None) -> int:
    """Time the training set and the fit ``rounds`` times; print medians; 0 when in budget."""
    spec = spec_for(ModelKind.ENGAGEMENT)
    set_runs, fit_runs, result = [], [], None

    # The first call imports the Feast repository (tens of seconds on a loaded machine):
    # a one-off cost of the process, not of building a training set.
    service_features(spec.feature_service)

    def build(marks: Marks) -> TrainingSet:
        return build_training_set(settings, spec, progress=marks)

    for _ in range(rounds):
        t, parts, data = _timed_parts(build, SET_PARTS)
        set_runs.append((t, parts))
        frame = data.frame

        def fit(marks: Marks, d: TrainingSet = data) -> FitResult:
            return fit_and_evaluate(
                d.frame,
                spec.label,
                d.numeric,
                d.categorical,
                params={"n_jobs": threads} if threads else None,
                seed=0,
                progress=marks,
            )

        t, parts, result = _timed_parts(fit, FIT_PARTS)
        fit_runs.append((t, parts))
        del data
    assert isinstance(result, FitResult)
    cols = [*result.features, spec.label]
    start = time.perf_counter()
    log_training_run(settings, spec, result, data_fingerprint=fingerprint(frame[cols]))
    t_log = time.perf_counter() - start
    path = work / "training_set.parquet"
    frame[cols].to_parquet(path)
    reads = []
    for _ in range(rounds):
        start = time.perf_counter()
        pq.read_table(path)
        reads.append(time.perf_counter() - start)
    t_read = statistics.median(reads)

    model = result.model.calibrated_classifiers_[0].estimator.estimator[-1]
    load = os.getloadavg()
    print(
        f"labelled sends: {len(frame):,} ({int(frame[spec.label].sum()):,} clicks, "
        f"{len(result.features)} features); load average {load[0]:.1f} {load[1]:.1f}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )
    t_set = _print_parts("training set (median)", set_runs)
    t_fit = _print_parts("fit_and_evaluate (median)", fit_runs)
    total = t_set + t_fit
    print(f"{'total':36} {total:8.2f} s   (budget {BUDGET_SECONDS:.0f} s)")
    print(
        f"holdout AUC {result.metrics['roc_auc']:.4f} (baseline "
        f"{result.baseline_metrics['roc_auc']:.4f}), ECE {result.metrics['ece']:.4f}, "
        f"{model.booster_.num_trees()} trees"
    )
    print(f"{'MLflow logging (once, not in budget)':36} {t_log:8.2f} s")
    print(
        f"{'pyarrow read of the set':36} {t_read:8.2f} s   (training set / read = "
        f"{t_set / t_read:.0f})"
    )
    return 0 if total < BUDGET_SECONDS else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 100,000 recipients × 35 days ≈ 12 campaigns × 90% audience, less the censored last one:
    # about 1.0M labelled sends.
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="keep (and reuse) the world here")
    parser.add_argument(
        "--threads", type=int, default=None, help="LightGBM threads (default: the model's, 2)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inboxlab-bench-training-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        settings = _prepared(work, args.recipients, args.days)
        code = run(settings, args.rounds, work, args.threads)
    print("budget met" if code == 0 else "budget MISSED", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
