"""`hyperdesk demo serve`: run only the embedded API server, until SIGINT or SIGTERM.

    python -m app.demo.serve --scenario empty --port 8001 --kubeconfig /tmp/demo.kubeconfig

prints the server URL and the kubeconfig path, then serves. Scenario `empty` registers every kind and creates no
objects beyond the system namespaces a real cluster starts with. `--access users.yaml` adds token users with RBAC
rules (see `app/demo/apiserver/access.py`); the server then speaks HTTPS, since kubectl sends tokens over TLS only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import yaml

from .apiserver import LocalApiServer

SCENARIOS = ("empty",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperdesk demo serve",
        description="Run hyperdesk's embedded Kubernetes API server on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="empty", help="what the cluster contains")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free port)")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="where to write the kubeconfig (default: a temporary file removed on exit)",
    )
    parser.add_argument(
        "--access", type=Path, default=None, help="YAML file of token users and their rules (default: anonymous)"
    )
    return parser


async def _serve(port: int, kubeconfig: Path | None, access: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with LocalApiServer(port=port, kubeconfig_path=kubeconfig, access=access) as server:
        print(f"API server: {server.url}", flush=True)
        print(f"Kubeconfig: {server.kubeconfig_path}", flush=True)
        await stop.wait()


def serve_main(argv: list[str]) -> int:
    """Entry point of `hyperdesk demo serve`; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_serve(args.port, args.kubeconfig, args.access))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        # The port is taken, a file cannot be written, the access file is not a users/rules document...
        print(f"hyperdesk demo serve: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
