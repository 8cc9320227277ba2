"""Time from starting a server to its first ready answer: ``inboxlab serve`` against a bare
FastAPI app under the same uvicorn, in one run.

Usage (from the repository root; the demo comes from ``inboxlab demo``)::

    python benchmarks/bench_startup.py --demo /tmp/demo1 [--rounds 5] [--no-bytecode]

Each round starts ``inboxlab serve --workers 1`` on a copy of the demo and polls ``/readyz``
every 20 ms until it answers 200 (the lifespan has loaded the champion models and opened the
stores), then does the same for ``benchmarks/bare_app.py`` and its echo endpoint; the two
alternate. ``--no-bytecode`` points ``PYTHONPYCACHEPREFIX`` at an empty directory with
``PYTHONDONTWRITEBYTECODE=1``, so every module is compiled from source as in an environment
installed without bytecode. Medians go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_decisions import BIN, HOST, _free_port, launch, prepare, stop

POLL_SECONDS = 0.02


def time_to_ready(
    command: list[str], env: dict[str, str], probe: tuple[str, bytes | None], log: Path
) -> float:
    """Seconds from starting ``command`` (``{port}`` filled in) to a 200 from ``probe``
    (path, and a JSON body to POST, or None to GET)."""
    port = _free_port()
    path, body = probe
    start = time.perf_counter()
    with log.open("ab") as out:
        process = launch(command, port, env, out)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited; see {log}")
            request = urllib.request.Request(
                f"http://{HOST}:{port}{path}",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except (OSError, urllib.error.HTTPError):
                pass
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"{command[0]} not ready in 600 s; see {log}")
            time.sleep(POLL_SECONDS)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", type=Path, required=True, help="an `inboxlab demo` directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-bytecode", action="store_true", help="compile every module")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inboxlab-bench-") as tmp:
        scratch = Path(tmp)
        env, _ = prepare(args.demo, scratch)
        if args.no_bytecode:
            (scratch / "pycache").mkdir()
            env = {
                **env,
                "PYTHONPYCACHEPREFIX": str(scratch / "pycache"),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        servers = {
            "inboxlab serve": (
                [str(BIN / "inboxlab"), "serve", "--host", HOST, "--port", "{port}"],
                ("/readyz", None),
            ),
            "bare FastAPI": (
                [
                    *(str(BIN / "uvicorn"), "--app-dir", "benchmarks", "bare_app:app"),
                    *("--host", HOST, "--port", "{port}", "--log-level", "warning"),
                ],
                ("/v1/decisions", json.dumps({"recipient_id": "r0"}).encode()),
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in servers}
        for i in range(args.rounds):
            for name, (command, probe) in servers.items():
                took = time_to_ready(command, env, probe, scratch / "servers.log")
                seconds[name].append(took)
                print(f"  round {i + 1}: {name} ready in {took:.2f} s", file=sys.stderr)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print("| server | time to ready, median (s) | rounds (s) |")
    print("|---|---:|---|")
    for name, values in seconds.items():
        print(f"| {name} | {median[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    ratio = median["inboxlab serve"] / median["bare FastAPI"]
    print(f"| inboxlab / bare FastAPI | {ratio:.1f}× | |")


if __name__ == "__main__":
    main()
