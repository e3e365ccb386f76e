"""Snapshots of the connect dialog (on a laptop, on a login node, refusing an unknown host key) and the Tunnels
view, from fixed plain data. The live behaviour is covered by tests/test_connect_tui.py; these pin the layout."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Input

from app.screens.connect import ConnectScreen
from app.screens.tunnels import TunnelsScreen
from app.tunnels.manager import TunnelRow
from app.tunnels.session import ConnectView
from themes import BUILTIN, STYLESHEET

TARGET = "workspace hyperpod-ns-nlp/alice-notebook:8888"
POD = "workspace-alice-notebook-7d9c5b6f4-x2k8q"
LAPTOP = ConnectView(TARGET, POD, "open", "api portforward", "", "http://127.0.0.1:8888/", "127.0.0.1:8888",
                     vscode="Jupyter: Existing Jupyter Server → http://127.0.0.1:8888/")
LOGIN_NODE = ConnectView(TARGET, POD, "open", "ssh via login.hyperpod.example.com", "login.hyperpod.example.com",
                         "http://127.0.0.1:18888/", "127.0.0.1:18888",
                         note="local port 8888 was taken; using 18888", login_node=True,
                         laptop_command="ssh -N -L 18888:127.0.0.1:18888 alice@198.51.100.7",
                         vscode="Jupyter: Existing Jupyter Server → http://127.0.0.1:18888/")
REFUSED = ConnectView(TARGET, POD, "failed", "ssh via bastion.example.com", "bastion.example.com",
                      error="the host key of bastion.example.com port 22 is not known (server offered "
                            "SHA256:3vI0q6s2m1pQ3bQ7cYz9lKXfO0w9m6Yl7Zb2dN1rVtA); connection refused.",
                      fingerprint="SHA256:3vI0q6s2m1pQ3bQ7cYz9lKXfO0w9m6Yl7Zb2dN1rVtA")
TUNNELS = [
    TunnelRow("alice-notebook", TARGET, "127.0.0.1:8888", "api portforward", "open", 1_482_113, 20_480, 754.0, ""),
    TunnelRow("bob-mig-lab", "workspace hyperpod-ns-vision/bob-mig-lab:8888", "127.0.0.1:18889",
              "ssh via login.hyperpod.example.com", "reconnecting", 88_000, 4_100, 3_723.0,
              "the SSH connection to login.hyperpod.example.com was lost"),
]


class ViewApp(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.register_theme(BUILTIN["hyperdesk-dark"])
        self.theme = "hyperdesk-dark"
        self._factory = screen_factory

    def on_mount(self) -> None:
        self.push_screen(self._factory())


async def _still(pilot) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


@pytest.mark.usefixtures("isolated_home")
@pytest.mark.parametrize("view", [LAPTOP, LOGIN_NODE, REFUSED], ids=["laptop", "login_node", "unknown_host_key"])
def test_connect_dialog(snap_compare, view) -> None:
    app = ViewApp(lambda: ConnectScreen("Connect — hyperpod-ns-nlp/alice-notebook", lambda: view))
    assert snap_compare(app, run_before=_still, terminal_size=(120, 30))


@pytest.mark.usefixtures("isolated_home")
def test_tunnels_view(snap_compare) -> None:
    assert snap_compare(ViewApp(lambda: TunnelsScreen(lambda: TUNNELS)), terminal_size=(200, 16))
