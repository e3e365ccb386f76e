"""Fixtures for driving the TUI headless: an isolated home, and a kubeconfig file factory."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, XDG dirs and KUBECONFIG inside tmp_path, so the developer's own files (~/.ssh/config, the runtime dir
    where tunnels are published) never leak into a test, nor a test's into them."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "HOME"):
        path = tmp_path / var.lower()
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    from app.tracking.client import _ENV_LOCK

    # Under the lock the tracking client holds while it sets MLFLOW_HTTP_* for one call: a poll thread still finishing
    # an earlier test's call must not see its fail-fast settings removed halfway (it would retry for minutes).
    with _ENV_LOCK:
        for var in [v for v in os.environ if v.startswith(("HYPERDESK_", "MLFLOW_HTTP_")) or v == "MLFLOW_TRACKING_URI"]:
            monkeypatch.delenv(var)
    return tmp_path


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_kubeconfig(path: Path, contexts: dict[str, str], current: str, namespaces: dict[str, str] | None = None) -> Path:
    """A kubeconfig with one cluster per context; `contexts` maps context name -> server URL."""
    namespaces = namespaces or {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": f"{n}-cluster", "cluster": {"server": url}} for n, url in contexts.items()],
        "users": [{"name": f"{n}-user", "user": {"token": "not-a-real-token"}} for n in contexts],
        "contexts": [
            {"name": n, "context": {"cluster": f"{n}-cluster", "user": f"{n}-user",
                                    **({"namespace": namespaces[n]} if n in namespaces else {})}}
            for n in contexts
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def wait_for(pilot, condition, timeout: float = 15.0) -> None:
    """Poll `condition()` between frames until it holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError("condition not reached in time")


@dataclass(frozen=True)
class Note:
    """One notification as the user reads it in its toast."""
    message: str
    title: str
    severity: str


class Notes(list):
    """Every notification an app raised since `record_notifications`, in order, whether or not its toast has
    expired yet. `clear()` forgets them (between steps of a test)."""

    def messages(self) -> list[str]:
        return [n.message for n in self]


def record_notifications(app) -> Notes:
    """Record what `app.notify` (Textual's public API, which every pane and screen calls) is asked to show: tests
    read these instead of Textual's private notification list, whose shape can change with any Textual release."""
    notes = Notes()
    notify = app.notify

    def recording(message, *, title: str = "", severity: str = "information", timeout=None, markup: bool = True):
        notes.append(Note(str(message), str(title), str(severity)))
        notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    app.notify = recording
    return notes
