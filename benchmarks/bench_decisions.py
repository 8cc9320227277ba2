"""Load benchmark of the decision API on loopback: ``inboxlab serve``, ``bentoml serve`` and
baselines (a bare FastAPI echo, ``mlflow models serve`` of the send-time model, and two
latency floors below FastAPI, ``floor_app.py``), one run.

Usage (from the repository root; the demo comes from ``inboxlab demo``)::

    python benchmarks/bench_decisions.py --demo /tmp/demo1 [--rate-seconds 30]
        [--wrk-seconds 15] [--batch 100000] [--batch-calls 1] [--only inboxlab,bare,asgi,raw,cpu]

The demo directory (``data/``, ``mlflow.db``, ``artifacts/``) is copied to a scratch directory
first and left untouched. Every server listens on 127.0.0.1 and is stopped at the end, also on
errors. Figures go to stdout as Markdown and to ``results.json`` in the scratch directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
from child import run_child
from constant_rate import run_constant_rate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = Path(__file__).with_name("decisions.lua")
HOST = "127.0.0.1"
EXPERIMENT = "bench-4arm"
VARIANTS = ["a", "b", "c", "d"]
# The echo baselines, by name (``--only``): what each measures, as the tables label it.
ECHOES = {
    "bare": "bare FastAPI echo",
    "asgi": "uvicorn ASGI echo, no framework",
    "raw": "uvloop + httptools echo, no ASGI (one process)",
}
RECIPIENTS = 10_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process in its own process group, with its peak resident memory."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    peak_rss: int = 0
    _sampling: bool = field(default=False, repr=False)

    def _tree(self) -> list[psutil.Process]:
        """The server process and its workers (empty once it has exited)."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def tree_rss(self) -> int:
        total = 0
        for proc in self._tree():
            with suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def tree_cpu(self) -> float:
        """CPU seconds (user + system) used so far by the server and its worker processes."""
        return sum(self.process_cpu().values())

    def process_cpu(self) -> dict[int, float]:
        """CPU seconds (user + system) used so far by each process of the tree, by pid,
        with its children that have exited (a batch process counts in its fork server's)."""
        out: dict[int, float] = {}
        for proc in self._tree():
            with suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system + t.children_user + t.children_system
        return out

    @contextmanager
    def sampling_rss(self) -> Iterator[None]:
        """Track the peak RSS of the process tree every 50 ms while inside."""
        self.peak_rss = self.tree_rss()
        self._sampling = True

        def loop() -> None:
            while self._sampling:
                self.peak_rss = max(self.peak_rss, self.tree_rss())
                time.sleep(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._sampling = False
            thread.join()


def launch(
    command: list[str], port: int, env: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``command`` (``{port}`` filled in) from the repository root in a process group of
    its own, its output to ``log``."""
    return subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of ``process``, SIGKILL what is left after 20 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def serve(
    name: str, command: list[str], env: dict[str, str], log_dir: Path, ready_path: str
) -> Iterator[Server]:
    """Start ``command`` (``{port}`` filled in), wait until ``ready_path`` answers 200, stop it."""
    port = _free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = launch(command, port, env, log)
    server = Server(name, process, port)
    try:
        deadline = time.monotonic() + 600  # a busy machine imports slowly
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log_dir / f'{name}.log'}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}{ready_path}", timeout=5) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in 600 s")
            time.sleep(0.5)
        print(f"  {name} ready on port {port}", file=sys.stderr)
        yield server
    finally:
        stop(process)
        log.close()


def _decision_body(i: int) -> dict[str, Any]:
    return {
        "recipient_id": f"r{i % RECIPIENTS:07d}",
        "campaign_id": "bench",
        "experiment_id": EXPERIMENT,
        "variants": VARIANTS,
    }


def _raw_post(port: int, path: str, body: bytes, key: str | None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] * 1e3


def constant_rate(port: int, key: str, rate: float, seconds: float) -> dict[str, Any]:
    """p50/p99 of decisions at a steady ``rate`` (after a short warm-up at the same rate)."""

    def make(i: int) -> bytes:
        return _raw_post(port, "/v1/decisions", json.dumps(_decision_body(i)).encode(), key)

    run_constant_rate(HOST, port, rate=rate, seconds=3, make=make)
    result = run_constant_rate(HOST, port, rate=rate, seconds=seconds, make=make)
    return {
        "rate": rate,
        "requests": len(result.scheduled),
        "statuses": result.statuses,
        "p50_ms": _ms(result.scheduled, 0.50),
        "p90_ms": _ms(result.scheduled, 0.90),
        "p99_ms": _ms(result.scheduled, 0.99),
        "max_ms": max(result.scheduled) * 1e3,
        "service_p50_ms": _ms(result.service, 0.50),
        "service_p99_ms": _ms(result.service, 0.99),
    }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def saturate(
    server: Server, path: str, seconds: float, connections: int, env: dict[str, str]
) -> dict[str, Any]:
    """``wrk`` at saturation: requests per second, latency percentiles, non-2xx answers, and
    the server's own CPU per request (its process tree's CPU time over the run divided by the
    requests served, so the load generator's share of the cores does not count)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    command += ["-s", str(LUA), f"http://{HOST}:{server.port}{path}"]
    cpu = server.tree_cpu()
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    cpu = server.tree_cpu() - cpu
    requests = re.search(r"(\d+) requests in", out)
    return {
        "command": " ".join(command),
        **_wrk_figures(out),
        "server_cpu_ms_per_request": cpu * 1e3 / int(requests.group(1))
        if requests
        else float("nan"),
    }


def _wrk_figures(out: str) -> dict[str, float]:
    """Requests/s, latency percentiles and maximum (ms) and non-2xx answers of wrk's
    ``--latency`` report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    latest = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50_ms": _wrk_ms(out, "50%"),
        "p90_ms": _wrk_ms(out, "90%"),
        "p99_ms": _wrk_ms(out, "99%"),
        "max_ms": float(latest.group(1)) * _UNITS[latest.group(2)] if latest else float("nan"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def wrk_environment(env: dict[str, str], key: str) -> dict[str, str]:
    """``env`` with what ``decisions.lua`` reads: the API key and the benchmark experiment."""
    return {**env, "BENCH_KEY": key, "BENCH_EXPERIMENT": EXPERIMENT}


def paced(
    server: Server,
    path: str,
    rate: float,
    seconds: float,
    env: dict[str, str],
    threads: int = 2,
    warmup: bool = True,
) -> dict[str, Any]:
    """``wrk`` on an open schedule of ``rate`` requests/s (``decisions.lua``'s ``BENCH_RATE``):
    latency percentiles from a C client, whose own share of each request is smaller than the
    asyncio client's of :func:`constant_rate`. Each of ``threads`` threads holds one
    connection (so the requests spread over the workers) and sends ``rate / threads`` per
    second; a short run at the same rate warms up first (unless ``warmup`` is false). wrk
    times a request from its sending, so a late answer delays the next send (at this rate,
    far from saturation, the answers come in well under the 1 / rate interval)."""
    paced_env = {**env, "BENCH_RATE": str(rate), "BENCH_THREADS": str(threads)}
    command = ["wrk", f"-t{threads}", f"-c{threads}", "--latency", "-s", str(LUA)]
    url = f"http://{HOST}:{server.port}{path}"
    if warmup:
        subprocess.run(
            [*command, "-d3s", url], env=paced_env, capture_output=True, check=True, timeout=60
        )
    out = subprocess.run(
        [*command, f"-d{seconds:.0f}s", url],
        env=paced_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return {
        "command": f"BENCH_RATE={rate:g} BENCH_THREADS={threads} {' '.join(command)} "
        f"-d{seconds:.0f}s {url}",
        "rate": rate,
        **_wrk_figures(out),
    }


def batch(server: Server, key: str, recipients: int, calls: int) -> dict[str, Any]:
    """``calls`` streamed batch calls of ``recipients`` each; wall time and peak RSS."""
    body = json.dumps({"decisions": [_decision_body(i) for i in range(recipients)]}).encode()
    lines = 0
    started = time.perf_counter()
    first_byte: float | None = None
    with server.sampling_rss(), httpx.Client(timeout=600) as client:
        for _ in range(calls):
            with client.stream(
                "POST",
                f"http://{HOST}:{server.port}/v1/decisions/batch",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            ) as response:
                response.raise_for_status()
                for chunk in response.iter_lines():
                    if first_byte is None:
                        first_byte = time.perf_counter() - started
                    lines += bool(chunk)
    seconds = time.perf_counter() - started
    return {
        "recipients": recipients * calls,
        "decisions_out": lines,
        "seconds": seconds,
        "first_line_s": first_byte,
        "per_second": lines / seconds,
        "peak_rss_mb": server.peak_rss / 2**20,
    }


def decide_cpu(env: dict[str, str], decisions: int, rounds: int) -> dict[str, Any]:
    """CPU per ``DecisionEngine.decide`` in one process, without HTTP (see :func:`_cpu_child`)."""
    return run_child([__file__, "--cpu-child", str(decisions), str(rounds)], env, timeout=900)


def _cpu_child(decisions: int, rounds: int) -> None:
    """Print the process CPU per decision of ``rounds`` rounds of ``decisions`` each (JSON).

    The engine is the one ``inboxlab serve`` runs (the app's lifespan builds it: group-commit
    writer, SQLite online store, the three champions). Process time counts the writer thread
    too; each round ends with a flush, so its decisions are committed inside the round. A first
    pass over the same recipients warms the feature cache, as a long-running server's is.
    """
    import asyncio
    import warnings

    warnings.filterwarnings("ignore")
    from inboxlab.errors import ConflictError
    from inboxlab.experiment import ExperimentDefinition
    from inboxlab.settings import get_settings
    from serving.app import create_app
    from serving.schemas import DecisionRequest

    async def run() -> dict[str, Any]:
        app = create_app(get_settings())
        async with app.router.lifespan_context(app) as state:
            engine = state["resources"].engine  # type: ignore[index]
            arms = [{"id": v, "control": v == "a"} for v in VARIANTS]
            definition = {"id": EXPERIMENT, "type": "bandit", "arms": arms}
            with suppress(ConflictError):
                engine.experiments.create(ExperimentDefinition.model_validate(definition))
            requests = [DecisionRequest.model_validate(_decision_body(i)) for i in range(decisions)]
            for request in requests:  # warm-up: feature cache, allocation, code paths
                engine.decide(request)
            engine.writer.flush()
            per_decision = []
            for _ in range(rounds):
                started = time.process_time()
                for request in requests:
                    engine.decide(request)
                engine.writer.flush()
                per_decision.append((time.process_time() - started) / decisions * 1e3)
        return {
            "decisions": decisions,
            "rounds_cpu_ms": per_decision,
            "cpu_ms": statistics.median(per_decision),
            "load": os.getloadavg(),
        }

    print(json.dumps(asyncio.run(run())))


def prepare(demo: Path, scratch: Path) -> tuple[dict[str, str], str]:
    """A copy of the demo and the environment pointing at it; returns (env, key)."""
    shutil.copytree(demo / "data", scratch / "data")
    shutil.copy2(demo / "mlflow.db", scratch / "mlflow.db")
    env = {
        **os.environ,
        "INBOXLAB_DATA_DIR": str(scratch / "data"),
        "INBOXLAB_MLFLOW__TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
        # Registered versions keep their absolute artifact paths inside the demo (read only).
        "INBOXLAB_MLFLOW__ARTIFACT_LOCATION": str(scratch / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
        "BENTOML_HOME": str(scratch / "bentoml"),
        "PYTHONWARNINGS": "ignore",
        # mlflow models serve runs ``uvicorn`` from PATH.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    key = (scratch / "data" / "dev-key").read_text().strip()
    return env, key


def mlflow_body(env: dict[str, str], scratch: Path) -> Path:
    """One row of the send-time champion's input example, as ``mlflow models serve`` reads it."""
    script = (
        "import json, sys, mlflow\n"
        "path = mlflow.artifacts.download_artifacts("
        "'models:/inboxlab-send-time@champion/serving_input_example.json', dst_path=sys.argv[1])\n"
        "d = json.load(open(path))\n"
        "d['dataframe_split']['data'] = d['dataframe_split']['data'][:1]\n"
        "d['dataframe_split'].pop('index', None)\n"
        "print(json.dumps(d))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(scratch)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    path = scratch / "mlflow_row.json"
    path.write_text(out.strip().splitlines()[-1])
    return path


def create_experiment(port: int, key: str) -> None:
    definition = {
        "id": EXPERIMENT,
        "type": "bandit",
        "arms": [{"id": v, "control": v == "a"} for v in VARIANTS],
    }
    response = httpx.post(
        f"http://{HOST}:{port}/v1/experiments",
        json=definition,
        headers={"Authorization": f"Bearer {key}"},
    )
    if response.status_code not in (201, 409):
        raise RuntimeError(f"creating the experiment failed: {response.text}")


def main() -> None:
    if sys.argv[1:2] == ["--cpu-child"]:
        _cpu_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("/tmp/demo1"))
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    parser.add_argument("--wrk-seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--batch-calls", type=int, default=1)
    parser.add_argument("--cpu-decisions", type=int, default=500)
    parser.add_argument("--cpu-rounds", type=int, default=5)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of inboxlab serve and the echoes, alternated (medians reported)",
    )
    parser.add_argument("--only", default="inboxlab,bentoml,bare,asgi,raw,mlflow,batch,cpu")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="uvicorn worker processes of inboxlab serve, the bare FastAPI echo and mlflow",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="inboxlab-bench-"))
    env, key = prepare(args.demo, scratch)
    wrk_env = wrk_environment(env, key)
    results: dict[str, Any] = {"machine": _machine(), "args": vars(args) | {"scratch": scratch}}
    logs = scratch
    print(f"scratch: {scratch}", file=sys.stderr)

    if "cpu" in only:
        results["decide_cpu"] = decide_cpu(env, args.cpu_decisions, args.cpu_rounds)
        print(f"  in process: {results['decide_cpu']}", file=sys.stderr)

    workers = ["--workers", str(args.workers)]
    uvicorn = [str(BIN / "uvicorn"), "--app-dir", "benchmarks"]
    uvicorn_args = ["--host", HOST, "--port", "{port}", "--log-level", "warning", *workers]
    uvicorn_args += ["--timeout-worker-healthcheck", "120"]
    # name: (server name, command, ready path, whether to saturate it). The echoes: the same
    # client, HTTP and uvicorn, no work, i.e. the floor of the steady-rate latency with the
    # framework the API is built on, below it without one, then without ASGI.
    measured = {
        "inboxlab": (
            "inboxlab-serve",
            [str(BIN / "inboxlab"), "serve", "--host", HOST, "--port", "{port}", *workers],
            "/readyz",
            True,
        ),
        "bare": ("bare-fastapi", [*uvicorn, "bare_app:app", *uvicorn_args], "/docs", True),
        "asgi": ("asgi-echo", [*uvicorn, "floor_app:asgi_echo", *uvicorn_args], "/", True),
        "raw": (
            "raw-echo",
            [sys.executable, "benchmarks/floor_app.py", "--port", "{port}"],
            "/",
            False,
        ),
    }
    with ExitStack() as running:
        servers = {
            name: running.enter_context(serve(label, command, env, logs, ready))
            for name, (label, command, ready, _) in measured.items()
            if name in only
        }
        if servers:
            time.sleep(2 * args.workers)  # the ready path answers from the first worker up
        if "inboxlab" in servers:
            create_experiment(servers["inboxlab"].port, key)
        results |= _rounds(servers, {n: m[3] for n, m in measured.items()}, args, wrk_env)
        if "inboxlab" in servers:
            results["inboxlab_idle_rss_mb"] = servers["inboxlab"].tree_rss() / 2**20
            if "batch" in only:
                results["batch"] = batch(servers["inboxlab"], key, args.batch, args.batch_calls)
                print(f"  batch: {results['batch']}", file=sys.stderr)

    if "bentoml" in only:
        bento = [str(BIN / "bentoml"), "serve", "serving.bento.service:Inboxlab"]
        bento += ["--host", HOST, "--port", "{port}"]
        with serve("bentoml-serve", bento, env, logs, "/readyz") as server:
            results["bentoml_rate"] = constant_rate(server.port, key, args.rate, args.rate_seconds)
            print(f"  rate: {results['bentoml_rate']}", file=sys.stderr)
            results["bentoml_wrk"] = saturate(
                server, "/v1/decisions", args.wrk_seconds, args.connections, wrk_env
            )
            print(f"  wrk: {results['bentoml_wrk']}", file=sys.stderr)

    if "mlflow" in only:
        row = mlflow_body(env, scratch)
        mlflow = [str(BIN / "mlflow"), "models", "serve", "-m"]
        mlflow += ["models:/inboxlab-send-time@champion", "--env-manager", "local"]
        mlflow += ["-h", HOST, "-p", "{port}", "-w", str(args.workers)]
        with serve("mlflow-serve", mlflow, env, logs, "/ping") as server:
            time.sleep(2 * args.workers)
            mlflow_env = {**wrk_env, "BENCH_BODY_FILE": str(row)}
            results["mlflow_wrk"] = saturate(
                server, "/invocations", args.wrk_seconds, args.connections, mlflow_env
            )
            print(f"  wrk: {results['mlflow_wrk']}", file=sys.stderr)

    (scratch / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(_markdown(results))


def _rounds(
    servers: dict[str, Server],
    saturated: dict[str, bool],
    args: argparse.Namespace,
    wrk_env: dict[str, str],
) -> dict[str, Any]:
    """Each server's steady-rate latency and saturation, measured in ``args.rounds`` rounds
    that alternate the servers' order (all of them running throughout, the idle ones
    asleep), so that the machine's drift falls on each alike. Per server and figure: the
    median over the rounds (``<name>_rate``, ``_paced``, ``_wrk``), and every round
    (``<name>_rounds``)."""
    key = wrk_env["BENCH_KEY"]
    names = list(servers)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else reversed(names):
            server = servers[name]
            print(f"  round {r + 1}/{args.rounds}: {name}", file=sys.stderr)
            got = {
                "rate": constant_rate(server.port, key, args.rate, args.rate_seconds),
                "paced": paced(server, "/v1/decisions", args.rate, args.rate_seconds, wrk_env),
            }
            if saturated[name]:
                got["wrk"] = saturate(
                    server, "/v1/decisions", args.wrk_seconds, args.connections, wrk_env
                )
            print(f"    {got}", file=sys.stderr)
            rounds[name].append(got)
    results: dict[str, Any] = {}
    for name, measured in rounds.items():
        results[f"{name}_rounds"] = measured
        for figure in measured[0]:
            results[f"{name}_{figure}"] = _median_figures([m[figure] for m in measured])
    if "inboxlab" in rounds:
        for base in ("bare", "asgi"):
            if saturated[base] and base in rounds:
                pairs = zip(rounds["inboxlab"], rounds[base], strict=True)
                results[f"inboxlab_over_{base}"] = [
                    ours["wrk"]["rps"] / theirs["wrk"]["rps"] for ours, theirs in pairs
                ]
    return results


def _median_figures(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure's median over ``measured``; counts (requests, non-2xx answers, answers
    by status) summed; the rest (the command) as in the first."""
    figures: dict[str, Any] = {}
    for name, value in measured[0].items():
        if name in ("requests", "non_2xx"):  # counts: summed
            figures[name] = sum(m[name] for m in measured)
        elif isinstance(value, (int, float)):
            figures[name] = statistics.median(m[name] for m in measured)
        elif isinstance(value, dict):
            figures[name] = dict(sum((Counter(m[name]) for m in measured), Counter()))
        else:
            figures[name] = value
    return figures


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "load_before": os.getloadavg(),
    }


def _markdown(r: dict[str, Any]) -> str:
    rows = ["| measurement | figure |", "|---|---|"]
    if "decide_cpu" in r:
        c = r["decide_cpu"]
        rounds = ", ".join(f"{v:.2f}" for v in c["rounds_cpu_ms"])
        rows.append(
            f"| in process, CPU ms per decision (median of rounds of {c['decisions']}) | "
            f"{c['cpu_ms']:.2f} ({rounds}) |"
        )
    for name in ("inboxlab", "bentoml", *ECHOES):
        label = ECHOES.get(name, f"{name} serve")
        if f"{name}_rounds" in r:
            label += f" (median of {len(r[f'{name}_rounds'])} rounds)"
        if f"{name}_rate" in r:
            rate = r[f"{name}_rate"]
            rows.append(
                f"| {label}, {rate['rate']:.0f} req/s steady: p50 / p99 / max (ms); "
                f"service p50 / p99 | "
                f"{rate['p50_ms']:.2f} / {rate['p99_ms']:.2f} / {rate['max_ms']:.1f}; "
                f"{rate['service_p50_ms']:.2f} / {rate['service_p99_ms']:.2f} "
                f"(statuses {rate['statuses']}) |"
            )
        if f"{name}_paced" in r:
            w = r[f"{name}_paced"]
            rows.append(
                f"| {label}, {w['rate']:.0f} req/s paced by wrk: p50 / p90 / p99 (ms), req/s | "
                f"{w['p50_ms']:.2f} / {w['p90_ms']:.2f} / {w['p99_ms']:.2f}, {w['rps']:.0f}, "
                f"non-2xx {w['non_2xx']} |"
            )
        if name not in ECHOES and f"{name}_wrk" in r:  # the echoes' rows follow
            w = r[f"{name}_wrk"]
            rows.append(
                f"| {label}, saturation (wrk): req/s, p50 / p99 (ms), server CPU ms "
                f"per request | {w['rps']:.0f}, {w['p50_ms']:.2f} / {w['p99_ms']:.2f}, "
                f"{w['server_cpu_ms_per_request']:.3f}, non-2xx {w['non_2xx']} |"
            )
    saturated = {
        f"{name}_wrk": label
        + (f" (median of {len(r[f'{name}_rounds'])} rounds)" if f"{name}_rounds" in r else "")
        for name, label in ECHOES.items()
    }
    for name, label in (saturated | {"mlflow_wrk": "mlflow models serve"}).items():
        if name in r:
            w = r[name]
            rows.append(
                f"| {label}, saturation (wrk): req/s, p50 / p99 (ms), server CPU ms per "
                f"request | {w['rps']:.0f}, {w['p50_ms']:.2f} / {w['p99_ms']:.2f}, "
                f"{w['server_cpu_ms_per_request']:.3f}, non-2xx {w['non_2xx']} |"
            )
    ours = r.get("inboxlab_wrk", {}).get("rps")
    for base, label in (("bare", "bare FastAPI"), ("asgi", "uvicorn ASGI echo")):
        if f"inboxlab_over_{base}" in r:
            each = r[f"inboxlab_over_{base}"]
            rows.append(
                f"| inboxlab / {label}, saturation: median of {len(each)} rounds (each) | "
                f"{statistics.median(each):.2f} ({', '.join(f'{x:.2f}' for x in each)}) |"
            )
    if ours and "mlflow_wrk" in r:
        rows.append(f"| inboxlab / mlflow models serve | {ours / r['mlflow_wrk']['rps']:.1f} |")
    if ours and "bentoml_wrk" in r:
        rows.append(f"| bentoml serve / inboxlab serve | {r['bentoml_wrk']['rps'] / ours:.2f} |")
    if "batch" in r:
        b = r["batch"]
        rows.append(
            f"| batch {b['recipients']:,} recipients: s, decisions/s, first line s, peak RSS MB | "
            f"{b['seconds']:.1f}, {b['per_second']:.0f}, {b['first_line_s']:.2f}, "
            f"{b['peak_rss_mb']:.0f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
