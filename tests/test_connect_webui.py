"""The WorkspaceConnection web-ui URL (issue #9): the simulated jupyter-k8s answers it, hyperdesk asks for it, and a
browser's GET through it reaches the space's page. Real servers, real sockets, real `hyperdesk` processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.cluster.connection import ClusterConnection
from app.demo.apiserver.local import LocalApiServer
from app.tunnels.targets import TargetError
from app.tunnels.webui import NOT_SERVED, web_ui_url

ROOT = Path(__file__).resolve().parents[1]


async def _url(kubeconfig: Path, namespace: str, name: str, kind: str = "web-ui") -> str:
    connection = ClusterConnection([kubeconfig], None)
    try:
        return await web_ui_url(connection, namespace, name, kind)
    finally:
        await connection.close()


async def test_a_running_space_gives_a_url_whose_page_is_the_space(hyperpod_cluster):
    url = await _url(hyperpod_cluster.kubeconfig_path, "hyperpod-ns-nlp", "alice-notebook")
    assert url.startswith(hyperpod_cluster.url + "/api/v1/namespaces/hyperpod-ns-nlp/pods/")
    with urllib.request.urlopen(url, timeout=10) as response:  # anonymous, as a browser would
        page = response.read().decode()
    assert response.status == 200
    assert "Demo JupyterLab" in page and "hyperpod-ns-nlp/alice-notebook" in page


async def test_a_stopped_or_unknown_space_is_refused_with_its_reason(hyperpod_cluster):
    with pytest.raises(TargetError, match="carol-code-editor is not available"):
        await _url(hyperpod_cluster.kubeconfig_path, "hyperpod-ns-research", "carol-code-editor")
    with pytest.raises(TargetError, match='workspaces.workspace.jupyter.org "nope" not found'):
        await _url(hyperpod_cluster.kubeconfig_path, "hyperpod-ns-nlp", "nope")
    with pytest.raises(TargetError, match="vscode-remote is not offered by this cluster"):
        await _url(hyperpod_cluster.kubeconfig_path, "hyperpod-ns-nlp", "alice-notebook", "vscode-remote")
    with pytest.raises(TargetError, match="invalid space name") as bad:
        await _url(hyperpod_cluster.kubeconfig_path, "hyperpod-ns-nlp", "Bad;name")
    assert bad.value.exit_code == 2


async def test_a_cluster_without_the_api_says_it_does_not_serve_it(tmp_path):
    async with LocalApiServer() as server:  # no simulator: nothing answers WorkspaceConnection
        with pytest.raises(TargetError) as refused:
            await _url(server.kubeconfig_path, "default", "anything")
    assert str(refused.value) == NOT_SERVED
    # the three access reviews still answer
    async with LocalApiServer() as server:
        connection = ClusterConnection([server.kubeconfig_path], None)
        try:
            reply = await connection.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                             body={"apiVersion": "authentication.k8s.io/v1",
                                                   "kind": "SelfSubjectReview"})
        finally:
            await connection.close()
    assert reply["status"]["userInfo"]["username"]


def _hyperdesk(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("HYPERDESK_", "SSH_")) and k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    environ.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
                   XDG_DATA_HOME=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "app", "connect", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_prints_the_url_or_one_line_and_exit_1(hyperpod_cluster, tmp_path):
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    done = _hyperdesk("hyperpod-ns-nlp/alice-notebook", "--open", "web-ui", "--kubeconfig", kubeconfig,
                      tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    url = done.stdout.splitlines()[0]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert "Demo JupyterLab" in response.read().decode()
    assert "tunnel" not in done.stdout
    stopped = _hyperdesk("hyperpod-ns-research/carol-code-editor", "--open", "web-ui", "--kubeconfig", kubeconfig,
                         tmp_path=tmp_path)
    assert stopped.returncode == 1
    assert stopped.stderr.strip().count("\n") == 0 and "not available" in stopped.stderr
    bad = _hyperdesk("hyperpod-ns-nlp/Bad;name", "--open", "web-ui", "--kubeconfig", kubeconfig, tmp_path=tmp_path)
    assert bad.returncode == 2 and "not a valid space name" in bad.stderr
    readonly = _hyperdesk("hyperpod-ns-nlp/alice-notebook", "--open", "web-ui", "--readonly", "--kubeconfig",
                          kubeconfig, tmp_path=tmp_path)
    assert readonly.returncode == 2 and "read-only" in readonly.stderr


def test_the_cli_reads_the_space_as_connect_does_and_refuses_pods_and_services(hyperpod_cluster, tmp_path):
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    done = _hyperdesk("alice-notebook", "-n", "hyperpod-ns-nlp", "--open", "web-ui", "--kubeconfig", kubeconfig,
                      tmp_path=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("http"), done.stderr
    for ref in ("pod/alice-notebook", "svc/alice-notebook"):
        refused = _hyperdesk(ref, "-n", "hyperpod-ns-nlp", "--open", "web-ui", "--kubeconfig", kubeconfig,
                             tmp_path=tmp_path)
        assert refused.returncode == 2 and "--open web-ui needs a space" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""
    dotted = _hyperdesk("hyperpod.ns/alice-notebook", "--open", "web-ui", "--kubeconfig", kubeconfig,
                        tmp_path=tmp_path)  # a namespace is a DNS label: no dots
    assert dotted.returncode == 2 and "'hyperpod.ns' is not a valid namespace name" in dotted.stderr


async def test_a_namespace_with_a_dot_is_bad_input(hyperpod_cluster):
    with pytest.raises(TargetError) as refused:
        await _url(hyperpod_cluster.kubeconfig_path, "hyperpod.ns", "alice-notebook")
    assert refused.value.exit_code == 2


def test_the_cli_says_when_the_cluster_does_not_serve_it(apiserver_thread, tmp_path):
    done = _hyperdesk("default/x", "--open", "web-ui", "--kubeconfig", str(apiserver_thread.kubeconfig_path),
                      tmp_path=tmp_path)
    assert done.returncode == 1
    assert "does not serve WorkspaceConnection" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.usefixtures("isolated_home")
async def test_the_dialog_w_key_shows_the_web_ui_url(hyperpod_cluster, monkeypatch):
    from app.cluster.kubeconfig import load_kubeconfig
    from app.config import Settings
    from app.screens.connect import ConnectScreen
    from app.tui import HyperdeskApp
    from tests.test_tui_navigation import wait_for

    for name in ("SSH_CONNECTION", "SSH_CLIENT", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)  # a laptop without a graphical browser: w copies the URL
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    app.connect_local_port = 0
    async with app.run_test(size=(180, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and "workspaces" in app.engine.stores
                       and len(app.engine.stores["workspaces"].keys()) > 0, timeout=30)
        app.run_command("connect hyperpod-ns-nlp/alice-notebook")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectScreen), timeout=5)
        dialog = app.screen
        await pilot.press("w")
        await wait_for(pilot, lambda: dialog.view.web_ui.startswith("http"), timeout=20)
        url = dialog.view.web_ui
        assert url.startswith(hyperpod_cluster.url + "/api/v1/namespaces/hyperpod-ns-nlp/pods/")
        assert not dialog.view.web_ui_error and app.clipboard == url
        shown = lambda: app.export_screenshot().replace("&#160;", " ")  # noqa: E731
        row = re.compile(r"Web UI\s*</text><text [^>]*>" + re.escape(url[:60]))  # the row, with the URL
        await wait_for(pilot, lambda: row.search(shown()) is not None, timeout=5)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert "Demo JupyterLab" in response.read().decode()
        await pilot.press("escape")
