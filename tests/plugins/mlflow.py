"""Fixtures for the Training pane: a real `mlflow server`, a TCP proxy to break it, and a real training loop.

- `mlflow_server` (module scope): the full `mlflow` package's server from its own virtual environment (its
  dependencies conflict with kubernetes>=37), SQLite backend in a temporary directory, on 127.0.0.1, started in its
  own process group with `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` and stopped by process group.
  The venv is `<repo>/.venv-mlflow` (made by `.ci/run`) or `$HYPERDESK_TEST_MLFLOW_VENV`; without it the test fails
  and says how to make it.
- `mlflow_proxy`: a TCP proxy in front of the server (`.uri`), which can go `down()` (connections are closed at
  once), `slow(seconds)` (bytes held that long) and `up()` again: faults on a real socket, nothing patched.
- `train(uri, experiment, run_name, ...)`: runs tests/plugins/mlflow_train.py (numpy SGD, `log_batch`) in the
  server's venv; returns the run id.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = Path(__file__).with_name("mlflow_train.py")


def mlflow_venv() -> Path:
    venv = Path(os.environ.get("HYPERDESK_TEST_MLFLOW_VENV") or REPO / ".venv-mlflow")
    if not (venv / "bin" / "mlflow").exists():
        pytest.fail(f"no MLflow server environment at {venv}: run .ci/run, or make it with "
                    f"`python3 -m venv {venv} && {venv}/bin/pip install mlflow` "
                    "(or point HYPERDESK_TEST_MLFLOW_VENV at one)", pytrace=False)
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.venv = mlflow_venv()
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "server.log"

    def start(self, timeout: float = 90.0) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "mlflow"), "server",
                 "--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}",
                 "--default-artifact-root", str(self.directory / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpProxy:
    """127.0.0.1:port -> target, one thread per connection pair. `down()` closes every connection and refuses new
    ones (accepts and closes at once), `slow(s)` holds each chunk s seconds, `hold()` keeps every request from the
    client until `up()` (`held` counts the requests waiting), `up()` restores."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.delay = 0.0
        self.is_down = False
        self.holding = False
        self.held = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self.is_down = True
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def hold(self) -> None:
        self.holding = True

    def up(self) -> None:
        self.is_down = False
        self.delay = 0.0
        self.holding = False

    def close(self) -> None:
        self._closed = True
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.is_down:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                if self.is_down:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is a and self.holding:
                        with self._lock:
                            self.held += 1
                        try:
                            while self.holding and not self.is_down:
                                time.sleep(0.02)
                        finally:
                            with self._lock:
                                self.held -= 1
                    if self.delay:
                        time.sleep(self.delay)
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.discard(a)
                self._open.discard(b)
            _close(a)
            _close(b)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def mlflow_proxy(mlflow_server: MlflowServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(mlflow_server.port)
    yield proxy
    proxy.close()


class Trainer:
    def __init__(self, venv: Path) -> None:
        self.python = venv / "bin" / "python"

    def __call__(self, uri: str, experiment: str, run_name: str, *, steps: int = 100, start: int = 0,
                 run_id: str | None = None, tags: dict[str, str] | None = None, bad: dict[int, str] | None = None,
                 end: str | None = None, lr: float = 0.05, seed: int = 0, system: bool = False,
                 only_system: bool = False, stepless: bool = False) -> str:
        argv = [str(self.python), "-P", str(TRAIN_SCRIPT), uri, experiment, run_name, "--steps", str(steps),
                "--start", str(start), "--lr", str(lr), "--seed", str(seed)]
        if run_id:
            argv += ["--run-id", run_id]
        for key, value in (tags or {}).items():
            argv += ["--tag", f"{key}={value}"]
        for step, value in (bad or {}).items():
            argv += ["--bad", f"{step}={value}"]
        if end:
            argv += ["--end", end]
        if system:
            argv.append("--system")
        if only_system:
            argv.append("--only-system")
        if stepless:
            argv.append("--stepless")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise AssertionError(f"training loop failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def train(mlflow_server: MlflowServer) -> Trainer:
    return Trainer(mlflow_server.venv)
