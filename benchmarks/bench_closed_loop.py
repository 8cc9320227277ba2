"""Decision quality in closed loop: a real ``inboxlab serve`` of the demo, learning from outcomes.

Run as a script from the project root, on a *copy* of a prepared demo (``inboxlab demo``)::

    INBOXLAB_DATA_DIR=/tmp/loop1/data \\
    INBOXLAB_MLFLOW__TRACKING_URI=sqlite:////tmp/loop1/mlflow.db \\
    INBOXLAB_MLFLOW__ARTIFACT_LOCATION=/tmp/loop1/artifacts \\
    .venv/bin/python benchmarks/bench_closed_loop.py [--campaigns 20] [--audience 4000] \\
        [--experiments loop-bandit,demo-content-bandit]

It starts ``inboxlab serve`` on a free loopback port (allocations refreshed every 0.5 s),
creates a non-contextual bandit ``loop-bandit`` beside the demo's contextual
``demo-content-bandit``, runs :class:`serving.loop.ClosedLoop` on each (a fresh copy of the
simulated world each time), prints the cumulative regret of Thompson sampling against the
uniform split and the oracles, and the open rate of the API's send times against the
historical fixed hour and the oracle hour, then stops the server.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from features.simulator import EmailEnvironment, GroundTruth
from serving.loop import ClosedLoop, LoopConfig, LoopResult

EXPERIMENT = {
    "id": "loop-bandit",
    "type": "bandit",
    "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
    "primary_metric": "click",
    "bandit": {"weight_floor": 0.01},
}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, timeout: float = 240.0) -> None:
    """Poll ``/healthz`` until the server answers (model loading takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise SystemExit(f"the server at {url} did not answer within {timeout:.0f} s")


def report(name: str, result: LoopResult, seconds: float) -> None:
    s = result.summary
    print(f"\n== {name} ({seconds:.0f} s) ==")
    for row in result.rows:
        alloc = " ".join(f"{row.allocation[a]:.2f}" for a in result.arms)
        print(
            f"{row.campaign_id}: sent {row.sent:5d} alloc {alloc} clicks {row.clicks:4d} "
            f"regret {row.regret:6.1f} uniform {row.regret_uniform:6.1f}"
        )
    print(f"emails {s.sent:,}; best single arm {s.best_arm}")
    print(
        f"regret vs per-recipient oracle: bandit {s.regret:.1f}, uniform {s.regret_uniform:.1f}"
        f" -> {100 * s.regret_reduction:.1f}% less (bandit/uniform "
        f"{s.regret / s.regret_uniform:.3f})"
    )
    print(
        f"regret vs best single arm: bandit {s.regret_vs_best_arm:.1f}, uniform "
        f"{s.regret_uniform_vs_best_arm:.1f} -> {100 * s.regret_reduction_vs_best_arm:.1f}% less"
    )
    print(
        f"open rate: API {s.open_rate_policy:.4f}, fixed {result.fixed_hour}:00 "
        f"{result.fixed_hour_basis} {s.open_rate_fixed:.4f}, oracle {s.open_rate_oracle:.4f}"
        f" -> {100 * s.oracle_lift_fraction:.1f}% of the oracle lift"
    )
    print(f"rewards credited: loop {sum(result.rewards.values())}, API {result.outcomes_counted}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--audience", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--experiments",
        default="loop-bandit,demo-content-bandit",
        help="comma-separated experiments to run, in order",
    )
    args = parser.parse_args()
    data_dir = Path(os.environ.get("INBOXLAB_DATA_DIR", "data"))
    truth = GroundTruth.load(data_dir / "truth")
    key = (data_dir / "dev-key").read_text().strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INBOXLAB_DECISIONS__ALLOCATION_REFRESH_SECONDS": "0.5"}
    cmd = [sys.executable, "-m", "uvicorn", "inboxlab.cli.serve:build_app", "--factory"]
    server = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_ready(url)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            if client.get(f"/v1/experiments/{EXPERIMENT['id']}").status_code == 404:
                client.post("/v1/experiments", json=EXPERIMENT).raise_for_status()
            for k, experiment in enumerate(args.experiments.split(",")):
                rng = np.random.default_rng([args.seed, k])
                config = LoopConfig(
                    experiment,
                    campaigns=args.campaigns,
                    audience=args.audience,
                    campaign_prefix=f"bench-{experiment}",
                )
                world = EmailEnvironment(truth, rng=np.random.default_rng([args.seed, 99]))
                started = time.perf_counter()
                result = ClosedLoop(client, world, config, rng=rng).run()
                report(experiment, result, time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
