"""Small render-path changes measured against each other in one process, ways interleaved.

On a shared 2-core machine the speed drifts by ±20 % from one minute to the next, more than a
change of a few percent to a decision. This script decides with every way in the same process,
on the engine ``inboxlab serve`` builds (same stores, models, writer), alternating blocks of
decisions between the ways (forward, then backward), and reports each way's median per block
and its median ratio to the baseline over the blocks, so that drift falls on every way alike.

Ways:

``trees via lleaves.predict, budget 0``
    the baseline: compiled trees called through ``lleaves.Model.predict`` from 4 rows up,
    LightGBM's single-row path below (the code before the direct call), reads unbounded;
``trees called directly, budget 0``
    :class:`serving.scoring.trees.NativeTrees` as it is, reads unbounded;
``trees called directly, budget 50 ms``
    as it is, with the default read budget (SQLite reads stopped at the deadline).

Usage (from the repository root; the demo comes from ``inboxlab demo``)::

    python benchmarks/bench_render_ab.py --demo /tmp/demo1 [--block 200] [--blocks 12]
        [--gap-ms 5]

``--gap-ms`` sleeps before each decision, as between the requests of a steady 200/s on two
workers; the figures are the median wall time of a decision and the calling thread's CPU per
decision (the writer thread, shared by every way, is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
from bench_decisions import EXPERIMENT, VARIANTS, _decision_body, prepare
from child import run_child

BASELINE = "trees via lleaves.predict, budget 0"


def _via_predict(self: Any, x: Any, *, threads: int = 1) -> Any:
    """The compiled trees through ``lleaves.Model.predict``, as before the direct call."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(self._model.predict(x, n_jobs=max(1, threads)), dtype=np.float64)


def _child(block: int, blocks: int, gap: float) -> None:
    from inboxlab.errors import ConflictError
    from inboxlab.experiment import ExperimentDefinition
    from inboxlab.settings import get_settings
    from serving.app import create_app
    from serving.decide import DecisionEngine
    from serving.schemas import DecisionRequest
    from serving.scoring import compiled, trees

    direct = trees.NativeTrees.raw

    async def run() -> dict[str, Any]:
        settings = get_settings()
        app = create_app(settings)
        async with app.router.lifespan_context(app) as state:
            served = state["resources"].engine  # type: ignore[index]
            arms = [{"id": v, "control": v == "a"} for v in VARIANTS]
            with suppress(ConflictError):
                served.experiments.create(
                    ExperimentDefinition.model_validate(
                        {"id": EXPERIMENT, "type": "bandit", "arms": arms}
                    )
                )

            def engine(budget_ms: float) -> DecisionEngine:
                d = settings.decisions.model_copy(update={"budget_ms": budget_ms})
                return DecisionEngine(
                    settings.model_copy(update={"decisions": d}),
                    served.store,
                    served.experiments,
                    served.features,
                    served.models,
                    np.random.default_rng(1),
                    writer=served.writer,
                )

            unbounded, bounded = engine(0.0), engine(50.0)
            ways: dict[str, tuple[DecisionEngine, Callable[..., Any], int]] = {
                BASELINE: (unbounded, _via_predict, 4),
                "trees called directly, budget 0": (unbounded, direct, 1),
                "trees called directly, budget 50 ms": (bounded, direct, 1),
            }
            warm = 600
            n = warm + block * blocks * len(ways)
            requests = [DecisionRequest.model_validate(_decision_body(i)) for i in range(n)]
            for request in requests[:warm]:
                unbounded.decide(request)
            served.writer.flush()
            at = warm
            cpu: dict[str, list[float]] = {way: [] for way in ways}
            wall: dict[str, list[float]] = {way: [] for way in ways}
            for b in range(blocks):
                for way in list(ways) if b % 2 == 0 else list(reversed(ways)):
                    eng, raw, native_rows = ways[way]
                    trees.NativeTrees.raw = raw  # type: ignore[method-assign]
                    compiled.NATIVE_ROWS = native_rows
                    took = []
                    started = time.thread_time()
                    for request in requests[at : at + block]:
                        if gap:
                            time.sleep(gap)
                        t = time.perf_counter()
                        eng.decide(request)
                        took.append(time.perf_counter() - t)
                    cpu[way].append((time.thread_time() - started) / block * 1e3)
                    wall[way].append(statistics.median(took) * 1e3)
                    at += block
                    served.writer.flush()
            trees.NativeTrees.raw = direct  # type: ignore[method-assign]

            def ratio(values: dict[str, list[float]], way: str) -> float:
                pairs = zip(values[way], values[BASELINE], strict=True)
                return statistics.median(a / b for a, b in pairs)

            return {
                way: {
                    "cpu_ms": statistics.median(cpu[way]),
                    "wall_ms": statistics.median(wall[way]),
                    "cpu_ratio": ratio(cpu, way),
                    "wall_ratio": ratio(wall, way),
                }
                for way in ways
            }

    print(json.dumps(asyncio.run(run())))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("/tmp/demo1"))
    parser.add_argument("--block", type=int, default=200, help="decisions per block")
    parser.add_argument("--blocks", type=int, default=12, help="blocks per way")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="sleep before each decision")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="inboxlab-bench-"))
    try:
        env, _ = prepare(args.demo, scratch)
        env["PYTHONWARNINGS"] = "ignore"
        child = [__file__, "--child", str(args.block), str(args.blocks), str(args.gap_ms / 1e3)]
        result = run_child(child, env, timeout=3600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"gap between decisions: {args.gap_ms} ms, {args.blocks} blocks of {args.block} a way")
    print("| way | wall ms (median) | thread CPU ms | wall / baseline | CPU / baseline |")
    print("|---|---:|---:|---:|---:|")
    for way, r in result.items():
        print(
            f"| {way} | {r['wall_ms']:.3f} | {r['cpu_ms']:.3f} | "
            f"{r['wall_ratio']:.3f} | {r['cpu_ratio']:.3f} |"
        )


if __name__ == "__main__":
    main()
