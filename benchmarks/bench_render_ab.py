"""Small render-path changes measured against each other in one process, ways interleaved.

On a shared 2-core machine the speed drifts by ±20 % from one minute to the next, more than a
change of a few percent to a decision. This script decides with every way in the same process,
on the engine ``inboxlab serve`` builds (same stores, models, writer), alternating blocks of
decisions between the ways (forward, then backward), and reports each way's median per block
and its median ratio to the baseline over the blocks, so that drift falls on every way alike.

Ways:

``as it is`` (the baseline)
    the code as it is, with the default read budget (50 ms: SQLite reads stopped at the
    deadline);
``hour columns looked up name by name``
    as before the send-time rows skipped the hour columns: every name of the send-time
    model looked up in the recipient's row, which lacks the hour ones, so the lookup falls
    back to one name at a time;
``trees via lleaves.predict``
    compiled trees called through ``lleaves.Model.predict`` from 4 rows up, LightGBM's
    single-row path below (as before the direct call);
``budget 0``
    reads unbounded, inline.

Usage (from the repository root; the demo comes from ``inboxlab demo``)::

    python benchmarks/bench_render_ab.py --demo /tmp/demo1 [--block 192] [--blocks 12]
        [--gap-ms 5] [--group 16]

``--gap-ms`` sleeps before each decision (or group), as between the requests of a steady
200/s on two workers; ``--group`` decides that many requests together
(``DecisionEngine.decide_together``, as the server does under load). The figures are the
median wall time of a decision and the calling thread's CPU per decision (the writer thread,
shared by every way, is left out).
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

BASELINE = "as it is"


def _via_predict(self: Any, x: Any, *, threads: int = 1) -> Any:
    """The compiled trees through ``lleaves.Model.predict``, as before the direct call."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(self._model.predict(x, n_jobs=max(1, threads)), dtype=np.float64)


def _child(block: int, blocks: int, gap: float, group: int) -> None:
    from inboxlab.errors import ConflictError
    from inboxlab.experiment import ExperimentDefinition
    from inboxlab.settings import get_settings
    from serving import decide
    from serving.app import create_app
    from serving.decide import DecisionEngine
    from serving.schemas import DecisionRequest
    from serving.scoring import compiled, trees

    direct, hourly, native = trees.NativeTrees.raw, decide._HOURLY, compiled.NATIVE_ROWS

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
            # way: (engine, tree call, fewest rows for it, send-time columns left to fill)
            ways: dict[str, tuple[DecisionEngine, Callable[..., Any], int, frozenset[str]]] = {
                BASELINE: (bounded, direct, native, hourly),
                "hour columns looked up name by name": (bounded, direct, native, frozenset()),
                "trees via lleaves.predict": (bounded, _via_predict, 4, hourly),
                "budget 0": (unbounded, direct, native, hourly),
            }
            warm = 600
            n = warm + block * blocks * len(ways)
            requests = [DecisionRequest.model_validate(_decision_body(i)) for i in range(n)]
            for request in requests[:warm]:
                unbounded.decide(request)
            served.writer.flush()
            at = 0
            cpu: dict[str, list[float]] = {way: [] for way in ways}
            wall: dict[str, list[float]] = {way: [] for way in ways}
            for b in range(blocks):
                for way in list(ways) if b % 2 == 0 else list(reversed(ways)):
                    eng, raw, native_rows, later = ways[way]
                    trees.NativeTrees.raw = raw  # type: ignore[method-assign]
                    compiled.NATIVE_ROWS = native_rows
                    decide._HOURLY = later
                    took = []
                    started = time.thread_time()
                    for i in range(warm + at, warm + at + block, group):
                        if gap:
                            time.sleep(gap)
                        t = time.perf_counter()
                        if group == 1:
                            eng.decide(requests[i])
                        else:
                            eng.decide_together(requests[i : i + group])
                        took.append((time.perf_counter() - t) / group)
                    cpu[way].append((time.thread_time() - started) / block * 1e3)
                    wall[way].append(statistics.median(took) * 1e3)
                    at += block
                    served.writer.flush()
            trees.NativeTrees.raw = direct  # type: ignore[method-assign]
            compiled.NATIVE_ROWS, decide._HOURLY = native, hourly

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
        _child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("/tmp/demo1"))
    parser.add_argument("--block", type=int, default=192, help="decisions per block")
    parser.add_argument("--blocks", type=int, default=12, help="blocks per way")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="sleep before each decision")
    parser.add_argument("--group", type=int, default=1, help="requests decided together")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="inboxlab-bench-"))
    try:
        env, _ = prepare(args.demo, scratch)
        env["PYTHONWARNINGS"] = "ignore"
        child = [__file__, "--child", str(args.block), str(args.blocks), str(args.gap_ms / 1e3)]
        child.append(str(args.group))
        result = run_child(child, env, timeout=3600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"gap between decisions: {args.gap_ms} ms, groups of {args.group}, "
        f"{args.blocks} blocks of {args.block} a way"
    )
    print("| way | wall ms (median) | thread CPU ms | wall / baseline | CPU / baseline |")
    print("|---|---:|---:|---:|---:|")
    for way, r in result.items():
        print(
            f"| {way} | {r['wall_ms']:.3f} | {r['cpu_ms']:.3f} | "
            f"{r['wall_ratio']:.3f} | {r['cpu_ratio']:.3f} |"
        )


if __name__ == "__main__":
    main()
