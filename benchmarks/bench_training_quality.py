"""Model quality against the simulator's ground truth, and propensity on the real CDNOW log.

Runs the whole pipeline on a simulated world (simulate → event log → feature build →
engagement and send-time training), then judges the models on a prospective holdout day sent
through the simulated world (see :mod:`training.evaluation`), and finally the CDNOW propensity
task (see :mod:`training.cdnow`) when ``lifetimes`` is installed::

    .venv/bin/python benchmarks/bench_training_quality.py                      # 100k × 90 days
    .venv/bin/python benchmarks/bench_training_quality.py --recipients 5000 --days 45
    .venv/bin/python benchmarks/bench_training_quality.py --only engagement   # skip the others

Everything is written under a temporary directory; ``--json FILE`` also saves the figures.
Exits non-zero when the engagement AUC ratio, calibration or send-time lift miss their targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from features.events import EventLog
from features.simulator import SimulationConfig
from inboxlab.settings import MlflowSettings, Settings
from training.cdnow import evaluate_cdnow, import_cdnow
from training.evaluation import (
    evaluate_against_truth,
    evaluate_engagement_against_truth,
    evaluate_send_time_against_truth,
)

TARGET_AUC_RATIO = 0.95
TARGET_CALIBRATION = 0.01
TARGET_LIFT_SHARE = 0.70


def _simulated(recipients: int, days: int, seed: int, work: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=work / "data",
        mlflow=MlflowSettings(
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}", artifact_location=str(work / "a")
        ),
    )
    config = SimulationConfig(recipients=recipients, days=days, seed=seed)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    report = evaluate_against_truth(settings, config, seed=seed, progress=progress)
    return {
        "recipients": recipients,
        "days": days,
        "seed": seed,
        "rows_engagement": report.rows_engagement,
        "rows_send_time": report.rows_send_time,
        "engagement_holdout_auc": report.engagement_holdout_auc,
        "send_time_holdout_auc": report.send_time_holdout_auc,
        "engagement": asdict(report.engagement),
        "send_time": asdict(report.send_time),
        "seconds": report.seconds,
    }


def _send_time_only(recipients: int, days: int, seed: int, work: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work / "data")
    config = SimulationConfig(recipients=recipients, days=days, seed=seed)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    report = evaluate_send_time_against_truth(settings, config, seed=seed, progress=progress)
    return {
        "recipients": recipients,
        "days": days,
        "seed": seed,
        "rows_send_time": report.rows_send_time,
        "send_time_holdout_auc": report.send_time_holdout_auc,
        "send_time": asdict(report.send_time),
        "seconds": report.seconds,
    }


def _engagement_only(recipients: int, days: int, seed: int, work: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work / "data")
    config = SimulationConfig(recipients=recipients, days=days, seed=seed)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    report = evaluate_engagement_against_truth(settings, config, seed=seed, progress=progress)
    return {
        "recipients": recipients,
        "days": days,
        "seed": seed,
        "rows_engagement": report.rows_engagement,
        "engagement_holdout_auc": report.engagement_holdout_auc,
        "engagement": asdict(report.engagement),
        "seconds": report.seconds,
    }


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--only", choices=["send-time", "engagement"], default=None, help="judge only this model"
    )
    args = parser.parse_args(argv)
    if args.only == "engagement":
        with tempfile.TemporaryDirectory(prefix="inboxlab-quality-") as tmp:
            eng_only = _engagement_only(args.recipients, args.days, args.seed, Path(tmp))
        text = json.dumps({"simulated": eng_only}, indent=2, default=float)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        met = eng_only["engagement"]
        return 0 if met["auc_ratio"] >= TARGET_AUC_RATIO and met["ece"] < TARGET_CALIBRATION else 1
    if args.only == "send-time":
        with tempfile.TemporaryDirectory(prefix="inboxlab-quality-") as tmp:
            only = _send_time_only(args.recipients, args.days, args.seed, Path(tmp))
        print(json.dumps({"simulated": only}, indent=2, default=float))
        if args.json:
            args.json.write_text(json.dumps({"simulated": only}, indent=2, default=float) + "\n")
        return 0 if only["send_time"]["lift_share"] >= TARGET_LIFT_SHARE else 1
    with tempfile.TemporaryDirectory(prefix="inboxlab-quality-") as tmp:
        work = Path(tmp)
        simulated = _simulated(args.recipients, args.days, args.seed, work)
        figures = {"simulated": simulated, "cdnow": _cdnow(work)}
    text = json.dumps(figures, indent=2, default=float)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    eng, st = simulated["engagement"], simulated["send_time"]
    ok = (
        eng["auc_ratio"] >= TARGET_AUC_RATIO
        and eng["ece"] < TARGET_CALIBRATION
        and st["lift_share"] >= TARGET_LIFT_SHARE
    )
    print("targets met" if ok else "targets missed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
