"""Start-up cost: `hyperdesk --version` and the time until the TUI's first frame is on the terminal.

Run by hand: `.venv/bin/python benchmarks/startup.py [--runs N]`. Targets on a 2-core machine:
`--version` under 0.2 s, first frame under 0.6 s. Peers in the same run: a bare interpreter start and
`kubectl version --client`, so the figures can be read against this machine's speed.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HYPERDESK = Path(sys.executable).with_name("hyperdesk")


def time_command(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_first_frame(runs: int, env: dict[str, str]) -> float:
    """Until the tab bar (drawn with the first frame) appears in the terminal's output."""
    samples = []
    for _ in range(runs):
        master, slave = pty.openpty()
        start = time.perf_counter()
        proc = subprocess.Popen([str(HYPERDESK)], stdin=slave, stdout=slave, stderr=slave, env=env,
                                start_new_session=True)
        os.close(slave)
        output = b""
        try:
            while b"Endpoints" not in output:
                if time.perf_counter() - start > 30:
                    raise SystemExit("no frame within 30 s")
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    output += os.read(master, 65536)
            samples.append(time.perf_counter() - start)
        finally:
            proc.kill()
            proc.wait()
            os.close(master)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="hyperdesk-bench-")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "45",
           "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home, "KUBECONFIG": os.path.join(home, "none")}

    python = time_command([sys.executable, "-c", "pass"], args.runs)
    version = time_command([str(HYPERDESK), "--version"], args.runs)
    frame = time_first_frame(args.runs, env)
    # With a kubeconfig the app also parses it and starts importing the kubernetes client in a thread.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = Path(home) / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
        f"clusters: [{{name: bench, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: bench, user: {token: t}}]\n"
        "contexts: [{name: bench, context: {cluster: bench, user: bench}}]\n"
    )
    frame_with_cluster = time_first_frame(args.runs, {**env, "KUBECONFIG": str(kubeconfig)})
    print(f"median of {args.runs} runs on {os.cpu_count()} cores")
    print(f"python -c pass                 {python * 1000:7.0f} ms")
    print(f"hyperdesk --version            {version * 1000:7.0f} ms   target < 200 ms   "
          f"{version / python:.1f}x a bare interpreter")
    if shutil.which("kubectl"):
        kubectl = time_command(["kubectl", "version", "--client"], args.runs)
        print(f"kubectl version --client       {kubectl * 1000:7.0f} ms   hyperdesk --version is "
              f"{version / kubectl:.2f}x of it")
    print(f"hyperdesk first frame          {frame * 1000:7.0f} ms   target < 600 ms   (no kubeconfig)")
    print(f"hyperdesk first frame          {frame_with_cluster * 1000:7.0f} ms   target < 600 ms   "
          f"(a kubeconfig whose cluster is down)")


if __name__ == "__main__":
    main()
