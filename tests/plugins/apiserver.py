"""Fixtures for the embedded API server (app/demo/apiserver).

- `apiserver`: a `LocalApiServer` on the test's event loop (async tests; `apiserver.store` is directly usable).
- `apiserver_thread`: a server on its own loop in a thread (sync tests, kubectl, the sync client);
  `apiserver_thread.store` marshals calls onto the server loop.
- `kubectl`: runs the real kubectl binary against `apiserver_thread`, with a private discovery cache.
- `k8s_client`: a sync `kubernetes.client.ApiClient` configured from the written kubeconfig.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo.apiserver import LocalApiServer, ServerThread


@pytest.fixture
async def apiserver() -> AsyncIterator[LocalApiServer]:
    async with LocalApiServer() as server:
        yield server


@pytest.fixture
def apiserver_thread() -> Iterator[ServerThread]:
    with LocalApiServer.start_in_thread() as handle:
        yield handle


class Kubectl:
    """The kubectl binary, pointed at one server through its kubeconfig; arguments are passed as a list."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        binary = shutil.which("kubectl")
        if binary is None:
            raise RuntimeError("kubectl is not installed")
        self._base = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir)]

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._base, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed; returns its stdout."""
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running command (`get -w`, `logs -f`); the caller terminates it."""
        return subprocess.Popen(
            [*self._base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )


@pytest.fixture
def kubectl(apiserver_thread: ServerThread, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver_thread.kubeconfig_path, tmp_path / "kubectl-cache")


@pytest.fixture
def k8s_client(apiserver_thread: ServerThread) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(str(apiserver_thread.kubeconfig_path))
    yield api_client
    api_client.close()
