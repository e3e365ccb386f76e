"""The app shell on a live cluster (the embedded API server): health, watched stores, scope and context switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.demo.apiserver import LocalApiServer
from app.tui import HyperdeskApp
from tests.test_tui_navigation import topbar_text, wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")


def two_contexts(server: LocalApiServer, path: Path) -> Path:
    """The server's kubeconfig with a second context, `other`, on the same server and namespace team-b."""
    doc = yaml.safe_load(server.kubeconfig_path.read_text())
    first = doc["contexts"][0]
    doc["contexts"].append({"name": "other", "context": {**first["context"], "namespace": "team-b"}})
    path.write_text(yaml.safe_dump(doc))
    return path


def notice(app: HyperdeskApp, pane: str) -> str:
    return str(app.pane(pane).query_one(".empty").render())


async def test_connects_watches_and_rescopes(apiserver: LocalApiServer, tmp_path: Path) -> None:
    for ns in ("team-a", "team-b"):
        apiserver.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for i in range(3):
        apiserver.store.create({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": f"p{i}", "namespace": "team-a" if i else "team-b"},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}})
    kubeconfig = load_kubeconfig(str(two_contexts(apiserver, tmp_path / "kubeconfig")))
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=kubeconfig)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.engine is not None and "pods 3" in notice(app, "gpus"))
        assert "connected" in topbar_text(app)
        assert "nodes 0" in notice(app, "gpus")

        await pilot.press("colon", *"ns team-a", "enter")
        await wait_for(pilot, lambda: "pods 2 (namespace team-a)" in notice(app, "gpus"))

        watches_before = len(apiserver.store.watchers())
        old_engine = app.engine
        await pilot.press("colon", *"ctx other", "enter")
        await wait_for(pilot, lambda: app.engine is not None and app.engine is not old_engine)
        await wait_for(pilot, lambda: "pods 1 (namespace team-b)" in notice(app, "gpus"))
        assert "ctx other" in topbar_text(app)
        await wait_for(pilot, lambda: len(apiserver.store.watchers()) == watches_before,
                       timeout=5.0)  # the old context's watches are gone, the new one's replace them


async def test_a_failing_discovery_is_a_state_and_is_retried(apiserver: LocalApiServer) -> None:
    def discovery(info) -> bool:
        return info.path == "/apis"

    apiserver.faults.fail(1.0, status=503, match=discovery)
    app = HyperdeskApp(Settings(), kubeconfig=load_kubeconfig(str(apiserver.kubeconfig_path)))
    app.probe_seconds = 0.3
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.health.state == "error")
        assert "cluster discovery failed" in topbar_text(app)
        apiserver.faults.clear()
        await wait_for(pilot, lambda: app.engine is not None and app.health.state == "connected")
        assert app.is_running
