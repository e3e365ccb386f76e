"""`hyperdesk demo serve`: run the simulated cluster headless, for kubectl and scripts, until SIGINT or SIGTERM.

    hyperdesk demo serve --scenario hyperpod --port 8001 --kubeconfig /tmp/demo.kubeconfig --mlflow-dir /tmp/mlflow
    python -m app.demo.serve --scenario bare

prints the server URL, the kubeconfig path and the MLflow tracking URI, then serves. Scenarios (see
`app/demo/sim/scenario.py`): `hyperpod` (the default) is a HyperPod cluster with task governance and a half hour of
history; `bare` has the same nodes, queues and controllers but no jobs, spaces or endpoints, for users and tests to
submit their own; `empty` is the API server alone, with the system namespaces a real cluster starts with.
`--speed X` runs simulated time X times faster than real time; `--seed N` picks the scenario's random choices.
`--access users.yaml` adds token users with RBAC rules (see `app/demo/apiserver/access.py`); the server then speaks
HTTPS, since kubectl sends tokens over TLS only. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import yaml

from .sim.scenario import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperdesk demo serve",
        description="Run hyperdesk's simulated cluster (an embedded Kubernetes API server) on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="hyperpod", help="what the cluster contains")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free port)")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="where to write the kubeconfig (default: a temporary file removed on exit)",
    )
    parser.add_argument(
        "--mlflow-dir",
        type=Path,
        default=None,
        help="directory of the MLflow store the simulated training logs to (default: a temporary one removed on exit)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenario's random choices (default: 0)")
    parser.add_argument(
        "--access", type=Path, default=None, help="YAML file of token users and their rules (default: anonymous)"
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    from .sim.cluster import DemoCluster

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    cluster = DemoCluster(
        args.scenario, seed=args.seed, speed=args.speed, port=args.port, kubeconfig=args.kubeconfig,
        mlflow_dir=args.mlflow_dir, access=args.access,
    )
    async with cluster:
        print(f"API server: {cluster.url}", flush=True)
        print(f"Kubeconfig: {cluster.kubeconfig_path}", flush=True)
        if cluster.mlflow_uri:
            print(f"MLflow: {cluster.mlflow_uri}", flush=True)
        print(f"Scenario: {args.scenario} (seed {args.seed}, speed {args.speed:g}x); stop with Ctrl-C", flush=True)
        print(f"Try: kubectl --kubeconfig {cluster.kubeconfig_path} get nodes,pods,workloads,clusterqueues -A", flush=True)
        await stop.wait()


def serve_main(argv: list[str]) -> int:
    """Entry point of `hyperdesk demo serve`; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.speed < 0:
        print("hyperdesk demo serve: --speed must not be negative", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        # The port is taken, a file cannot be written, the access file is not a users/rules document...
        print(f"hyperdesk demo serve: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
