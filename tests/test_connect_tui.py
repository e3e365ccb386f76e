"""The connect dialog and the Tunnels view in the app, against the simulated cluster: `:connect` (what the Spaces
pane's `c` calls) opens the space's tunnel over pods/portforward, the page answers through it, the Tunnels view
lists it and closes it, and quitting asks first while it is open."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
import yaml

from app.cluster import spaces
from app.cluster.connection import ClusterConnection
from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.screens.connect import ConnectScreen
from app.screens.dialogs import ConfirmScreen
from app.screens.tunnels import TunnelsScreen
from app.tui import HyperdeskApp
from tests.plugins.tui import closed_port, record_notifications, wait_for

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
    notes = record_notifications(app)
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command("connect hyperpod-ns-nlp/nope")
        await wait_for(pilot, lambda: any("no space hyperpod-ns-nlp/nope" in n.message for n in notes),
                       timeout=5)
        app.run_command("connect hyperpod-ns-research/carol-code-editor")  # a space of the scenario that is stopped
        await wait_for(pilot, lambda: any("space hyperpod-ns-research/carol-code-editor is stopped: start it first"
                                          in n.message for n in notes), timeout=5)
        assert not isinstance(app.screen, ConnectScreen)
        assert len(app.tunnels) == 0 and not app.connect_sessions


async def test_quitting_asks_while_a_tunnel_is_open(hyperpod_cluster):
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0  # any free port: never the fixed 8888
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.connect_space(SPACE)
        await wait_for(pilot, lambda: len(app.tunnels) == 1, timeout=20)
        url = app.connect_sessions[(app.context_name, SPACE)].tunnel.url
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


def two_contexts(cluster, path: Path) -> Path:
    """The demo cluster's kubeconfig with a second context, `other`, on the same cluster and user, in the space's
    namespace."""
    document = yaml.safe_load(cluster.kubeconfig_path.read_text())
    first = document["contexts"][0]
    document["contexts"].append({"name": "other", "context": {**first["context"], "namespace": SPACE.split("/")[0]}})
    path.write_text(yaml.safe_dump(document))
    return path


async def test_switching_context_closes_its_tunnels_and_connects_anew(hyperpod_cluster, tmp_path, monkeypatch):
    """`:ctx` closes the connection the old context's tunnels use: they are closed and said so, and `c` on a space
    of the same name in the new context opens a new tunnel, not the old context's dead one."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    kubeconfig = load_kubeconfig(str(two_contexts(hyperpod_cluster, tmp_path / "kubeconfig")))
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=kubeconfig)
    app.connect_local_port = 0
    first_context = app.context_name
    assert first_context != "other"
    notes = record_notifications(app)
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command(f"connect {SPACE}")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        old = app.screen
        await wait_for(pilot, lambda: old.view.state == "open", timeout=20)
        old_url = old.view.url
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, old_url)
        await pilot.press("escape")
        old_engine = app.engine
        app.run_command("ctx other")
        await wait_for(pilot, lambda: any(f"closed 1 tunnel of context {first_context}" in n.message
                                          for n in notes), timeout=10)
        assert len(app.tunnels) == 0
        with pytest.raises(OSError):
            await asyncio.to_thread(fetch, old_url)
        await wait_for(pilot, lambda: app.engine is not None and app.engine is not old_engine
                       and "workspaces" in app.engine.stores and len(app.engine.stores["workspaces"].keys()) > 0,
                       timeout=30)
        app.run_command(f"connect {SPACE}")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, dialog.view.url)
        assert list(app.connect_sessions) == [("other", SPACE)] and len(app.tunnels) == 1
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)


async def advance_until(pilot, cluster, connection: ClusterConnection, condition, limit: int = 120) -> None:
    """Move simulated time a second at a time until alice-notebook's row meets `condition`."""
    namespace, name = SPACE.split("/")
    rows: list = []
    for _ in range(limit):
        rows = [r for r in await spaces.fetch_spaces(connection, namespace) if r.name == name]
        if rows and condition(rows[0]):
            return
        cluster.advance(1)
        await pilot.pause(0.05)
    raise AssertionError(f"{SPACE} never got there: last {rows and (rows[0].status, rows[0].pods)}")


async def test_a_tunnel_follows_its_space_to_a_new_pod_on_the_same_port(hyperpod_cluster, monkeypatch):
    """The space is stopped and started (the simulator gives the new pod a new name): the tunnel says `error` while
    the space has no pod, in the dialog and the Spaces pane, then reaches the new pod on the same local port.
    Last in this module: alice-notebook runs again afterwards, on another pod."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    namespace, name = SPACE.split("/")
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        spaces_pane = app.pane("spaces")
        spaces_pane.connections = {}
        app.run_command(f"connect {SPACE}")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        first_pod, local, url = dialog.view.pod, dialog.view.local, dialog.view.url
        assert "Demo JupyterLab" in await asyncio.to_thread(fetch, url)

        connection = ClusterConnection([hyperpod_cluster.kubeconfig_path], None)
        try:
            await spaces.set_running(connection, namespace, name, False, readonly=False)
            await advance_until(pilot, hyperpod_cluster, connection,
                                lambda row: row.status == "Stopped" and not row.pods)
            with pytest.raises(OSError):
                await asyncio.to_thread(fetch, url)
            await wait_for(pilot, lambda: dialog.view.state == "error", timeout=10)
            assert "is stopped" in dialog.view.error or "is gone" in dialog.view.error
            await wait_for(pilot, lambda: spaces_pane.connections == {SPACE: f"{local} api error"}, timeout=10)

            await spaces.set_running(connection, namespace, name, True, readonly=False)
            await advance_until(pilot, hyperpod_cluster, connection,
                                lambda row: row.status == "Running" and bool(row.pods))
        finally:
            await connection.close()
        page = ""
        for _ in range(100):  # once the app's stores have seen the new pod
            try:
                page = await asyncio.to_thread(fetch, url)
                break
            except OSError:
                await pilot.pause(0.2)
        assert "Demo JupyterLab" in page and SPACE in page
        assert dialog.view.local == local
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=5)  # the dialog polls its view
        assert dialog.view.pod != first_pod
        await wait_for(pilot, lambda: spaces_pane.connections == {SPACE: f"{local} api"}, timeout=10)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)


async def test_trusting_a_key_that_cannot_be_written_says_why(hyperpod_cluster, asyncssh_server, ssh_keys,
                                                             isolated_home, monkeypatch):
    """`r` to a login node whose key is unknown, then `a`: ~/.ssh/known_hosts cannot be written (a link to a place
    in /proc, where no one can create a file). The dialog says so in one line; the tunnel stays on its route."""
    import shutil

    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh_dir = isolated_home / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    shutil.copy(ssh_keys.private, ssh_dir / "id_ed25519")
    (ssh_dir / "known_hosts").symlink_to("/proc/self/hyperdesk-known-hosts")
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0
    notes = record_notifications(app)
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command(f"connect {SPACE}")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.view.state == "open", timeout=20)
        await pilot.press("r", *f"root@127.0.0.1:{asyncssh_server.port}", "enter")
        await wait_for(pilot, lambda: bool(dialog.view.fingerprint), timeout=20)
        fingerprint = dialog.view.fingerprint
        await pilot.press("a")
        await wait_for(pilot, lambda: any(f"cannot trust {fingerprint}" in n.message for n in notes),
                       timeout=20)
        message = next(n.message for n in notes if "cannot trust" in n.message)
        assert str(ssh_dir / "known_hosts") in message and "\n" not in message
        assert dialog.view.state == "open" and dialog.view.route.startswith("api portforward")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.tunnels) == 0, timeout=10)
