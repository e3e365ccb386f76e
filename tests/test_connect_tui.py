"""The connect dialog and the Tunnels view in the app, against the simulated cluster: `:connect` (what the Spaces
pane's `c` calls) opens the space's tunnel over pods/portforward, the page answers through it, the Tunnels view
lists it and closes it, and quitting asks first while it is open."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.screens.connect import ConnectScreen
from app.screens.dialogs import ConfirmScreen
from app.screens.tunnels import TunnelsScreen
from app.tui import HyperdeskApp
from tests.plugins.tui import closed_port
from tests.test_tui_navigation import wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")
SPACE = "hyperpod-ns-nlp/alice-notebook"


def fetch(url: str) -> str:
    return urllib.request.urlopen(url, timeout=20).read().decode()


async def test_connect_dialog_opens_the_tunnel_and_the_tunnels_view_closes_it(hyperpod_cluster, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0  # any free port: never the fixed 8888
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        spaces = app.pane("spaces")
        spaces.connections = {}  # the attribute the Spaces pane (issue #8) shows its CONNECTED column from
        app.run_command(f"connect {SPACE}")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        assert spaces.connections == {SPACE: f"{dialog.view.local} api"}
        assert dialog.view.url.startswith("http://127.0.0.1:") and dialog.view.route == "api portforward"
        assert not dialog.view.login_node
        page = await asyncio.to_thread(fetch, dialog.view.url)
        assert "Demo JupyterLab" in page and SPACE in page
        await pilot.press("c")  # copies the URL (OSC 52 through the driver)
        assert app.clipboard == dialog.view.url
        # another route that cannot be reached: said so, and the working tunnel is kept
        await pilot.press("r", *f"me@127.0.0.1:{closed_port()}", "enter")
        await wait_for(pilot, lambda: "cannot reach 127.0.0.1 over SSH" in dialog.view.error, timeout=20)
        assert dialog.view.state == "open" and dialog.view.route.startswith("api portforward (kept")
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, dialog.view.url)
        await pilot.press("escape")
        assert not isinstance(app.screen, ConnectScreen) and len(app.tunnels) == 1

        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, TunnelsScreen), timeout=5)
        table = app.screen.table
        await wait_for(pilot, lambda: table.row_count == 1, timeout=5)
        labels = [str(c.label) for c in table.columns.values()]
        row = dict(zip(labels, (str(c) for c in table.get_row_at(0))))
        assert (row["NAME"], row["ROUTE"], row["STATE"]) == ("alice-notebook", "api portforward", "open")
        assert row["LOCAL"] == dialog.view.local and row["IN"].endswith("B") and row["IN"] != "0 B"
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)
        assert spaces.connections == {}
        await wait_for(pilot, lambda: app.screen.table.row_count == 0, timeout=5)
        await pilot.press("escape")


async def test_a_stopped_or_unknown_space_says_why(hyperpod_cluster):
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0  # any free port: never the fixed 8888
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command("connect hyperpod-ns-nlp/nope")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConnectScreen)
        assert any("no space hyperpod-ns-nlp/nope" in n.message for n in app._notifications)
        assert len(app.tunnels) == 0


async def test_quitting_asks_while_a_tunnel_is_open(hyperpod_cluster):
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0  # any free port: never the fixed 8888
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.connect_space(SPACE)
        await wait_for(pilot, lambda: len(app.tunnels) == 1, timeout=20)
        url = app.connect_sessions[SPACE].tunnel.url
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, url)
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
    with pytest.raises(OSError):
        await asyncio.to_thread(fetch, url)


async def test_c_in_the_spaces_pane_connects_and_the_pane_shows_the_tunnel(hyperpod_cluster, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0  # any free port: never the fixed 8888
    async with app.run_test(size=(220, 45)) as pilot:
        await pilot.press("1")
        table = app.pane("spaces").table
        labels = [str(c.label) for c in table.columns.values()]

        def row_of(name: str) -> int | None:
            return next((i for i in range(table.row_count)
                         if str(table.get_row_at(i)[labels.index("NAME")]) == name), None)

        await wait_for(pilot, lambda: row_of("alice-notebook") is not None, timeout=30)
        table.move_cursor(row=row_of("alice-notebook"))
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, dialog.view.url)
        await pilot.press("escape")
        connected = [c for c in labels if c.startswith("CONNECT")][0]
        await wait_for(pilot, lambda: str(table.get_row_at(row_of("alice-notebook"))[labels.index(connected)])
                       == f"{dialog.view.local} api", timeout=5)
        await pilot.press("c")  # again: the same tunnel, not a second one
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        assert len(app.tunnels) == 1 and app.screen.view.local == dialog.view.local
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)


async def test_connect_name_uses_the_namespace_on_show(hyperpod_cluster, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    app = HyperdeskApp(Settings(namespace="hyperpod-ns-nlp"),
                       kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command("connect alice-notebook")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        assert dialog.view.target == "workspace hyperpod-ns-nlp/alice-notebook:8888"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)
