"""Batch decisions over HTTP: a whole audience through ``POST /v1/decisions/batch``.

Usage (from the repository root; the demo comes from ``inboxlab demo``)::

    python benchmarks/bench_batch.py --demo /tmp/demo1 --audience 100000 [--audience 1000000]

Each audience is sent in calls of at most ``MAX_BATCH`` (100,000) requests, one after the
other (``--concurrency C``: C calls at a time, as a send system with C connections would), to
``inboxlab serve`` on loopback (``--workers W`` uvicorn worker processes, default 1; 4
variants of a bandit, the default 24-hour window, the demo's three champion models, SQLite
decision store). Reported per audience: wall time from the first request to the last line,
decisions per second, time to the first streamed bytes (the first chunk's lines), and the
peak resident memory of the server process tree (sampled every 50 ms), which must not grow
with the audience. ``--singles-rate R``: single decisions at R per second meanwhile (``wrk``
on an open schedule), with their latency percentiles: what a batch costs the render path
of the same workers.

Baseline in the same run, in process: LightGBM alone scoring the send-time champion on the
same number of rows the batch scores (the allowed hours of every recipient), one thread —
the floor of any exact implementation that calls the model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from bench_decisions import (
    BIN,
    EXPERIMENT,
    HOST,
    Server,
    create_experiment,
    paced,
    prepare,
    serve,
    wrk_environment,
)
from child import run_child

MAX_BATCH = 100_000
VARIANTS = ["a", "b", "c", "d"]
DEMO_RECIPIENTS = 10_000


def _body(start: int, n: int) -> bytes:
    decisions = [
        {
            "recipient_id": f"r{i % DEMO_RECIPIENTS:07d}",
            "campaign_id": "bench-batch",
            "experiment_id": EXPERIMENT,
            "variants": VARIANTS,
        }
        for i in range(start, start + n)
    ]
    return json.dumps({"decisions": decisions}).encode()


def run_audience(
    server: Server,
    key: str,
    audience: int,
    concurrency: int = 1,
    call_size: int = MAX_BATCH,
    singles: tuple[float, float, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Decide ``audience`` recipients in calls of at most ``call_size``, ``concurrency`` calls
    at a time; time and memory. ``singles`` (rate, seconds, wrk environment): meanwhile,
    single decisions at that steady rate (:func:`bench_decisions.paced`), warmed up before
    the clock starts and then timed from the moment the calls are sent (parsing a call's
    body is part of what they may wait for); their latencies are reported with the run."""
    starts = list(range(0, audience, call_size))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lock = threading.Lock()
    counts = {"lines": 0, "sends": 0}
    first: list[float] = []

    # Bodies are made before the clock starts, as a load generator prepares its requests: the
    # client shares the two cores with the server and must not time its own JSON encoding.
    bodies = {s: _body(s, min(call_size, audience - s)) for s in starts}

    def call(start: int, started: float) -> None:
        body = bodies[start]
        lines = sends = 0
        with (
            httpx.Client(timeout=1800) as client,
            client.stream(
                "POST",
                f"http://{HOST}:{server.port}/v1/decisions/batch",
                content=body,
                headers=headers,
            ) as response,
        ):
            response.raise_for_status()
            # Lines are counted in the raw bytes (a complete line ends with a newline): the
            # client shares the two cores with the server, so it does as little as it can.
            tail = b""
            for chunk in response.iter_raw():
                if not first:
                    with lock:
                        first.append(time.perf_counter() - started)
                buffer = tail + chunk
                end = buffer.rfind(b"\n") + 1
                lines += buffer.count(b"\n", 0, end)
                sends += buffer.count(b'"action":"send"', 0, end)
                tail = buffer[end:]
            if tail.strip():
                raise RuntimeError(f"the response ended inside a line: {tail[:80]!r}")
        with lock:
            counts["lines"] += lines
            counts["sends"] += sends

    single: dict[str, Any] = {}

    def singles_meanwhile() -> None:
        assert singles is not None
        rate, seconds, env = singles
        single.update(paced(server, "/v1/decisions", rate, seconds, env, warmup=False))
        single["ended_s"] = time.perf_counter() - started

    if singles is not None:
        paced(server, "/v1/decisions", singles[0], 3, singles[2], warmup=False)

    with server.sampling_rss(), ThreadPoolExecutor(concurrency + 1) as pool:
        before = server.process_cpu()
        client_cpu = time.process_time()
        started = time.perf_counter()
        calls = [pool.submit(call, s, started) for s in starts]
        if singles is not None:
            calls.append(pool.submit(singles_meanwhile))
        for done in calls:
            done.result()
        seconds = time.perf_counter() - started
        after = server.process_cpu()
        client_cpu = time.process_time() - client_cpu
    # CPU seconds of each process during the run, busiest first (the workers, then the
    # supervising parent): how evenly the calls spread over the workers.
    by_process = sorted((t - before.get(pid, 0.0) for pid, t in after.items()), reverse=True)
    cpu = sum(by_process)
    lines = counts["lines"]
    return {
        "audience": audience,
        "calls": len(starts),
        "concurrency": concurrency,
        "decisions_out": lines,
        "sends": counts["sends"],
        "seconds": seconds,
        "per_second": lines / seconds,
        "us_per_decision": seconds / max(lines, 1) * 1e6,
        "server_cpu_us_per_decision": cpu / max(lines, 1) * 1e6,
        "client_cpu_us_per_decision": client_cpu / max(lines, 1) * 1e6,
        "process_cpu_s": by_process,
        "first_line_s": min(first) if first else None,
        "peak_rss_mb": server.peak_rss / 2**20,
        "load_after": os.getloadavg(),
        "singles": single or None,
    }


def model_floor(env: dict[str, str], rows: int, repeat: int = 3) -> dict[str, Any]:
    """Median seconds of the send-time champion on ``rows`` rows, one thread: through
    ``Booster.predict`` and through its trees compiled to native code (what the batch uses)."""
    script = (
        "import sys, time, json, numpy as np\n"
        "from inboxlab.settings import Settings\n"
        "from serving.scoring.models import ModelSet\n"
        "from training.specs import ModelKind\n"
        "m = ModelSet(Settings()); m.refresh()\n"
        "model = m.models[ModelKind.SEND_TIME].model\n"
        "b, trees = model.booster, model.trees\n"
        "rows, repeat = int(sys.argv[1]), int(sys.argv[2])\n"
        "x = np.random.default_rng(0).random((min(rows, 200_000), b.num_feature()))\n"
        "out = {'booster': [], 'compiled': []}\n"
        "for _ in range(repeat):\n"
        "    for name in out:\n"
        "        if name == 'compiled' and trees is None: continue\n"
        "        t = time.perf_counter(); done = 0\n"
        "        while done < rows:\n"
        "            part = x[: rows - done]\n"
        "            if name == 'booster': b.predict(part, raw_score=True, num_threads=1)\n"
        "            else: trees.raw(part)\n"
        "            done += len(part)\n"
        "        out[name].append(time.perf_counter() - t)\n"
        "print(json.dumps(out))\n"
    )
    import subprocess

    text = subprocess.run(
        [sys.executable, "-c", script, str(rows), str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout
    times = json.loads(text.strip().splitlines()[-1])
    return {
        "rows": rows,
        "median_s": statistics.median(times["booster"]),
        "runs": times["booster"],
        "compiled_median_s": statistics.median(times["compiled"]) if times["compiled"] else None,
    }


_IN_PROCESS = """
import json, os, statistics, sys, time
import numpy as np
from features.online import SqliteFeatureClient
from inboxlab.experiment import parse_definition
from inboxlab.settings import Settings
from serving.batch import BatchDecider, parse_batch
from serving.decide import DecisionEngine
from serving.scoring.models import ModelSet
from serving.store import DecisionStore
from serving.store.experiments import ExperimentStore

n, repeat, chunk = int(sys.argv[1]), int(sys.argv[2]), 2_000
settings = Settings()
store = DecisionStore(settings.decision_store_url)
store.create_schema()
models = ModelSet(settings)
models.refresh()
experiments = ExperimentStore(store.engine)
if experiments.get("bench-4arm") is None:
    arms = [{"id": v, "control": v == "a"} for v in "abcd"]
    experiments.create(parse_definition({"id": "bench-4arm", "type": "bandit", "arms": arms}))
engine = DecisionEngine(
    settings, store, experiments, SqliteFeatureClient(settings), models, np.random.default_rng()
)
items = [
    {"recipient_id": f"r{i % 10_000:07d}", "campaign_id": "bench-batch",
     "experiment_id": "bench-4arm", "variants": list("abcd")}
    for i in range(n)
]
requests = parse_batch(json.dumps({"decisions": items}).encode()).decisions
decider = BatchDecider(engine)

def groups():  # the render path's groups: validated records, response models, one per line
    for s in range(0, n, chunk):
        out = engine.decide_together(requests[s : s + chunk])
        b"".join(d.model_dump_json().encode() + b"\\n" for d in out)

def batch():
    for _ in decider.lines(requests):
        pass

groups(); batch()  # warm: caches, allocation, imports
result = {}
for name, run in (("groups", groups), ("batch", batch)):
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    result[name] = {"wall_s": wall, "cpu_s": cpu}
result["load"] = os.getloadavg()
print(json.dumps(result))
"""


def in_process(env: dict[str, str], n: int, repeat: int) -> dict[str, Any]:
    """The render path's work for groups (``decide_together`` per chunk of 2,000: validated
    records, the writer, one response model per line) against
    :class:`~serving.batch.BatchDecider`, in one process, same data."""

    result = run_child(["-c", _IN_PROCESS, str(n), str(repeat)], env, timeout=3600)
    result["n"] = n
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("/tmp/demo1"))
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="directory for the store copy, logs and results (kept); default: a temporary one, "
        "removed after a run that succeeds",
    )
    parser.add_argument("--audience", type=int, action="append", default=None)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument(
        "--allowed-hours",
        type=int,
        default=13,
        help="hours per recipient the model scores (24 minus the 11 quiet ones by default)",
    )
    parser.add_argument("--floor", action="store_true", help="also time the model floor")
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="only compare the render path's group work and the batch path on N decisions, "
        "in process (no server)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="inboxlab serve worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at a time")
    parser.add_argument(
        "--singles-rate",
        type=float,
        default=0.0,
        help="meanwhile, single decisions at this steady rate (wrk, paced); 0: none",
    )
    parser.add_argument("--singles-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.scratch is not None:
        _run(args, args.scratch)
        return
    # A temporary copy of the demo grows by gigabytes of decisions: removed once reported,
    # kept when the run fails (the server's log is in it).
    scratch = Path(tempfile.mkdtemp(prefix="inboxlab-batch-"))
    try:
        _run(args, scratch)
    except BaseException:
        print(f"run failed; scratch kept for its logs: {scratch}", file=sys.stderr)
        raise
    shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Path) -> None:
    audiences = args.audience or [100_000]
    env, key = prepare(args.demo, scratch)
    results: dict[str, Any] = {"load_before": os.getloadavg(), "runs": []}
    if args.in_process:
        results["in_process"] = in_process(env, args.in_process, args.repeat)
        print(_markdown(results))
        return
    command = [str(BIN / "inboxlab"), "serve", "--host", HOST, "--port", "{port}"]
    command += ["--workers", str(args.workers)]
    with serve("inboxlab-serve", command, env, scratch, "/readyz") as server:
        create_experiment(server.port, key)
        # Imports, caches, first allocation: one call per worker at once (the kernel decides
        # which worker accepts each connection, so each worker is likely, not sure, to get one).
        if args.warmup:
            n = args.warmup * args.workers
            run_audience(server, key, n, concurrency=args.workers, call_size=args.warmup)
        wrk_env = wrk_environment(env, key)
        singles = (args.singles_rate, args.singles_seconds, wrk_env) if args.singles_rate else None
        for audience in audiences:
            result = run_audience(
                server, key, audience, concurrency=args.concurrency, singles=singles
            )
            result["workers"] = args.workers
            print(f"  {result}", file=sys.stderr)
            results["runs"].append(result)
    if args.floor:
        biggest = max(audiences)
        results["floor"] = model_floor(env, biggest * args.allowed_hours)
    (scratch / "batch_results.json").write_text(json.dumps(results, indent=2))
    print(_markdown(results))


def _markdown(r: dict[str, Any]) -> str:
    rows = [
        "| audience | calls | workers | calls at a time | s | decisions/s | µs per decision "
        "| server CPU µs per decision | client CPU µs per decision | first line s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in r["runs"]:
        rows.append(
            f"| {run['audience']:,} | {run['calls']} | {run['workers']} | {run['concurrency']} "
            f"| {run['seconds']:.1f} | "
            f"{run['per_second']:,.0f} | {run['us_per_decision']:.0f} | "
            f"{run['server_cpu_us_per_decision']:.0f} | "
            f"{run.get('client_cpu_us_per_decision', float('nan')):.0f} | "
            f"{run['first_line_s']:.2f} | {run['peak_rss_mb']:,.0f} |"
        )
    for run in r["runs"]:
        if s := run.get("singles"):
            note = "" if s["ended_s"] <= run["seconds"] else " (the batch ended first)"
            rows.append(
                f"\nSingle decisions during the {run['audience']:,} batch, {s['rate']:.0f}/s "
                f"paced by wrk: p50 / p90 / p99 / max {s['p50_ms']:.2f} / {s['p90_ms']:.2f} / "
                f"{s['p99_ms']:.2f} / {s['max_ms']:.1f} ms, non-2xx {s['non_2xx']}{note}."
            )
    if "floor" in r:
        f = r["floor"]
        rows.append(
            f"\nModel floor: `Booster.predict` of {f['rows']:,} send-time rows, one thread: "
            f"{f['median_s']:.1f} s (median of {len(f['runs'])})."
        )
        if f.get("compiled_median_s") is not None:
            rows.append(f"The same trees compiled to native code: {f['compiled_median_s']:.1f} s.")
    if "in_process" in r:
        p = r["in_process"]
        rows.append("| path | wall µs / decision | CPU µs / decision |")
        rows.append("|---|---:|---:|")
        per = {}
        for name in ("groups", "batch"):
            wall = statistics.median(p[name]["wall_s"]) / p["n"] * 1e6
            cpu = statistics.median(p[name]["cpu_s"]) / p["n"] * 1e6
            per[name] = (wall, cpu)
            rows.append(f"| {name} | {wall:.0f} | {cpu:.0f} |")
        ratio = per["groups"][0] / per["batch"][0], per["groups"][1] / per["batch"][1]
        rows.append(f"| groups / batch | {ratio[0]:.1f}× | {ratio[1]:.1f}× |")
        rows.append(
            f"\n{p['n']:,} decisions, median of {len(p['batch']['wall_s'])}; load {p['load']}"
        )
    rows.append(f"\nLoad average before: {r['load_before']}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
