"""`hyperdesk demo serve` (`serve_main`, run as `python -m app.demo.serve`): a standalone server process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.plugins.apiserver import Kubectl


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_runs_until_sigterm_and_kubectl_can_use_it(tmp_path: Path) -> None:
    port = _free_port()
    kubeconfig = tmp_path / "demo.kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.demo.serve",
            "--scenario",
            "empty",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"API server: http://127.0.0.1:{port}"
        assert process.stdout.readline().strip() == f"Kubeconfig: {kubeconfig}"
        kubectl = Kubectl(kubeconfig, tmp_path / "cache")
        assert kubectl("config", "current-context").strip() == "hyperdesk-demo"
        assert kubectl("get", "namespaces", "-o", "name").split() == [
            "namespace/default",
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system",
        ]
        assert kubectl.run("get", "pods", "-A").stderr.strip() == "No resources found"
        assert "workloads" in kubectl("api-resources", "-o", "name")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_serve_rejects_unknown_scenarios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.demo.serve", "--scenario", "nope"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr


def test_serve_with_token_users_speaks_https(tmp_path: Path) -> None:
    access = tmp_path / "users.yaml"
    access.write_text(
        "anonymous: false\n"
        "users:\n"
        "- {name: ops, token: ops-token, rules: [{verbs: [list], apiGroups: [''], resources: [namespaces]}]}\n"
    )
    kubeconfig = tmp_path / "demo.kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.demo.serve", "--kubeconfig", str(kubeconfig), "--access", str(access)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("API server: https://127.0.0.1:")
        process.stdout.readline()
        kubectl = Kubectl(kubeconfig, tmp_path / "cache")
        assert "namespace/default" in kubectl("get", "namespaces", "-o", "name").split()
        assert kubectl.run("get", "pods", check=False).stderr.startswith(
            'Error from server (Forbidden): pods is forbidden: User "ops"'
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_serve_reports_a_bad_access_file(tmp_path: Path) -> None:
    access = tmp_path / "users.yaml"
    access.write_text("users: [{token: no-name}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "app.demo.serve", "--access", str(access)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "hyperdesk demo serve:" in result.stderr
