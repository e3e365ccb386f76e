"""`hyperdesk demo serve` and `hyperdesk demo` as processes: they use 127.0.0.1 only, and SIGINT, SIGTERM and quit
stop everything they started: no port left listening, no child process left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.plugins.apiserver import Kubectl


def listening(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def assert_all_gone(pid: int, ports: set[tuple[str, int]], children: list[psutil.Process]) -> None:
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert all(refused(port) for _, port in ports), f"still listening: {ports}"
    assert not [c for c in children if c.is_running()], "no child process outlives the demo"


@pytest.mark.parametrize(("scenario", "signum"), [("hyperpod", signal.SIGTERM), ("bare", signal.SIGINT)])
def test_demo_serve_runs_headless_and_stops_cleanly(tmp_path: Path, scenario: str, signum: signal.Signals) -> None:
    kubeconfig, mlflow_dir = tmp_path / "kubeconfig", tmp_path / "mlflow"
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "serve", "--scenario", scenario, "--kubeconfig", str(kubeconfig),
         "--mlflow-dir", str(mlflow_dir), "--speed", "20", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        assert lines[0].startswith("API server: http://127.0.0.1:")
        assert lines[1] == f"Kubeconfig: {kubeconfig}"
        assert lines[2] == f"MLflow: sqlite:///{mlflow_dir.resolve() / 'mlflow.db'}"
        assert lines[3].startswith(f"Scenario: {scenario} (seed 4, speed 20x)")
        kubectl = Kubectl(kubeconfig, tmp_path / "cache")
        assert len(kubectl("get", "nodes", "-o", "name").split()) == 8
        assert ("llama3-70b-pretrain" in kubectl("get", "hyperpodpytorchjobs", "-A")) == (scenario == "hyperpod")
        ports = listening(process.pid)
        assert ports and all(ip == "127.0.0.1" for ip, _ in ports), f"only loopback: {ports}"
        children = psutil.Process(process.pid).children(recursive=True)
    finally:
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    assert_all_gone(process.pid, ports, children)
    if scenario == "hyperpod":
        tracking = MlflowClient(tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}")
        names = {run.info.run_name for run in tracking.search_runs(
            [e.experiment_id for e in tracking.search_experiments()], max_results=100)}
        assert {"llama3-70b-pretrain", "mistral-7b-sft", "bert-ner-sweep"} <= names, "the store outlives the process"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "hyperdesk-demo-test", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("how", ["quit", "sigterm"])
def test_hyperdesk_demo_opens_the_tui_on_the_cluster_and_leaves_nothing_behind(tmp_path: Path, how: str) -> None:
    assert shutil.which("tmux"), "tmux is part of the test machine"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "KUBECONFIG": str(tmp_path / "no-kubeconfig"), "TERM": "xterm-256color"}
    command = f"exec {sys.executable} -m app demo --scenario bare --speed 10"
    subprocess.run(["tmux", "-L", "hyperdesk-demo-test", "new-session", "-d", "-s", "demo", "-x", "160", "-y", "45",
                    "-c", str(Path(__file__).resolve().parents[1]), command], env=env, check=True)
    try:
        pid = int(_tmux("display-message", "-p", "-t", "demo", "#{pane_pid}").strip())
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline:
            screen = _tmux("capture-pane", "-p", "-t", "demo")
            if "hyperdesk-demo" in screen and "connected" in screen:
                break
            time.sleep(0.2)
        assert "hyperdesk-demo" in screen and "connected" in screen, screen
        ports = listening(pid)
        assert ports and all(ip == "127.0.0.1" for ip, _ in ports)
        children = psutil.Process(pid).children(recursive=True)
        if how == "quit":
            _tmux("send-keys", "-t", "demo", "q")
        else:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.1)
        assert_all_gone(pid, ports, children)
    finally:
        subprocess.run(["tmux", "-L", "hyperdesk-demo-test", "kill-server"], capture_output=True)
