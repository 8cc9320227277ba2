"""Model quality against the simulator's ground truth, and propensity on the real CDNOW log.

Runs the whole pipeline on a simulated world (simulate → event log → feature build →
engagement and send-time training), then judges the models on prospective sends into the
simulated world (see :mod:`training.evaluation`: the engagement model on the day after the
history, the send-time model on each of the seven days after it), and finally the CDNOW
propensity task (see :mod:`training.cdnow`) when ``lifetimes`` is installed::

    .venv/bin/python benchmarks/bench_training_quality.py                      # 100k × 90 days
    .venv/bin/python benchmarks/bench_training_quality.py --recipients 5000 --days 45
    .venv/bin/python benchmarks/bench_training_quality.py --only engagement   # skip the others

Everything is written under a temporary directory; ``--json FILE`` also saves the figures.
``--world DIR`` keeps the simulated world (event log, features, ground truth) in ``DIR`` and
reuses it on the next run with the same size and seed, so that model changes can be compared
on one world without simulating and building features again.
Exits non-zero when the engagement AUC ratio, calibration or send-time lift (over the week)
miss their targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any

from features.events import EventLog
from features.simulator import GroundTruth, SimulationConfig
from inboxlab.settings import MlflowSettings, Settings
from training.cdnow import evaluate_cdnow, import_cdnow
from training.evaluation import (
    evaluate_against_truth,
    evaluate_engagement_against_truth,
    evaluate_send_time_against_truth,
    prepare_world,
)

TARGET_AUC_RATIO = 0.95
TARGET_CALIBRATION = 0.01
TARGET_LIFT_SHARE = 0.70


#: What each ``--only`` choice runs; ``None`` is the whole pipeline.
EVALUATORS: dict[str | None, Callable[..., Any]] = {
    None: evaluate_against_truth,
    "engagement": evaluate_engagement_against_truth,
    "send-time": evaluate_send_time_against_truth,
}


def _world(
    settings: Settings, config: SimulationConfig, cache: Path | None, progress: Any
) -> GroundTruth | None:
    """The prepared world of ``cache`` if it holds this config, else one prepared there.

    ``None`` without a cache: the evaluator prepares the world itself.
    """
    if cache is None:
        return None
    truth_dir = cache / "truth"
    if (truth_dir / "params.json").is_file():
        truth = GroundTruth.load(truth_dir)
        if truth.config != config:
            raise SystemExit(f"{cache} holds another world ({truth.config}); use another --world")
        progress(f"reusing the simulated world and features in {cache}")
        return truth
    truth = prepare_world(settings, config, progress)
    truth.save(truth_dir)
    return truth


def _simulated(
    evaluate: Callable[..., Any],
    recipients: int,
    days: int,
    seed: int,
    work: Path,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Run one evaluator on a simulated world (fresh, or the one in ``cache``).

    Returns the report's fields as plain values.
    """
    data_dir = (cache or work) / "data"
    settings = Settings(
        data_dir=data_dir,
        mlflow=MlflowSettings(
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}", artifact_location=str(work / "a")
        ),
    )
    config = SimulationConfig(recipients=recipients, days=days, seed=seed)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    truth = _world(settings, config, cache, progress)
    report = evaluate(settings, config, seed=seed, progress=progress, truth=truth)
    out: dict[str, Any] = {"recipients": recipients, "days": days, "seed": seed}
    for f in fields(report):
        if f.name != "config":
            value = getattr(report, f.name)
            out[f.name] = (
                asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
            )
    return out


def _targets_met(simulated: dict[str, Any]) -> bool:
    """Whether every model the run judged meets its target."""
    ok = True
    if (eng := simulated.get("engagement")) is not None:
        ok &= eng["auc_ratio"] >= TARGET_AUC_RATIO and eng["ece"] < TARGET_CALIBRATION
    if (st := simulated.get("send_time")) is not None:
        ok &= st["week_lift_share"] >= TARGET_LIFT_SHARE
    return bool(ok)


def _cdnow(work: Path) -> dict[str, Any] | None:
    if importlib.util.find_spec("lifetimes") is None:
        return None
    log = EventLog(work / "cdnow" / "events")
    import_cdnow(log)
    result = evaluate_cdnow(log)
    out = asdict(result)
    out["train_cutoff"] = result.train_cutoff.isoformat()
    out["cutoff"] = result.cutoff.isoformat()
    return out


def _plain(value: Any) -> Any:
    """JSON value of what :func:`json.dumps` does not know: dates, numpy numbers."""
    return value.isoformat() if isinstance(value, date) else float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--only", choices=["send-time", "engagement"], default=None, help="judge only this model"
    )
    parser.add_argument(
        "--world",
        type=Path,
        default=None,
        help="keep the simulated world and features in this directory and reuse them",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inboxlab-quality-") as tmp:
        work = Path(tmp)
        simulated = _simulated(
            EVALUATORS[args.only], args.recipients, args.days, args.seed, work, args.world
        )
        figures: dict[str, Any] = {"simulated": simulated}
        if args.only is None:
            figures["cdnow"] = _cdnow(work)
    text = json.dumps(figures, indent=2, default=_plain)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = _targets_met(simulated)
    print("targets met" if ok else "targets missed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
