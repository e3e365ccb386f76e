"""The Endpoints pane on the simulated cluster, driven by keys as a user would: rows of every kind and state, the
detail view with live figures, invoke (once, streamed, bad JSON, not ready), a load run, scale, delete, logs, YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.tui import HyperdeskApp
from tests.plugins.endpoints import NAMESPACE, create, jumpstart
from tests.test_jobs_pane import cell_texts
from tests.plugins.tui import record_notifications
from tests.test_tui_navigation import wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")


def _app(handle, **settings) -> HyperdeskApp:
    return HyperdeskApp(Settings(all_namespaces=True, **settings),
                        kubeconfig=load_kubeconfig(str(handle.kubeconfig_path)))


async def _open(pilot, app, name: str) -> None:
    await pilot.press("5")
    table = app.pane("endpoints").table
    await wait_for(pilot, lambda: name in cell_texts(table, "NAME"), timeout=20)
    table.move_cursor(row=cell_texts(table, "NAME").index(name))


async def test_rows_detail_metrics_logs_and_yaml(serving_cluster) -> None:
    from app.screens.endpoint_detail import EndpointDetailScreen
    from app.screens.logs import LogsScreen
    from app.screens.yaml_view import YamlScreen

    app = _app(serving_cluster)
    async with app.run_test(size=(220, 50)) as pilot:
        await _open(pilot, app, "too-big")
        table = app.pane("endpoints").table
        await wait_for(pilot, lambda: len(cell_texts(table, "NAME")) == 5)
        states = dict(zip(cell_texts(table, "NAME"), [s.strip() for s in cell_texts(table, "STATE")]))
        assert states == {"deepseek-small": "DeploymentComplete", "llama3-8b": "DeploymentComplete", "clip": "Ready",
                          "too-big": "DeploymentFailed", "broken": "FailedToLoad"}
        ready = dict(zip(cell_texts(table, "NAME"), cell_texts(table, "READY")))
        assert ready["llama3-8b"] == "1/1" and ready["too-big"] == "0/1"
        await pilot.press("S")  # by state: failures first
        assert {s.strip() for s in cell_texts(table, "STATE")[:2]} == {"DeploymentFailed", "FailedToLoad"}

        table.move_cursor(row=cell_texts(table, "NAME").index("too-big"))
        await pilot.press("d")
        assert isinstance(app.screen, EndpointDetailScreen)
        await wait_for(pilot, lambda: "Why:" in str(app.screen.query_one("#detail-summary").render()))
        summary = str(app.screen.query_one("#detail-summary").render())
        assert "Why: InstanceTypeNotAvailable: Instance type ml.g5.48xlarge is not available" in summary
        events = app.screen.query_one("#detail-events")
        assert any("DeploymentFailed" in str(events.get_row_at(i)) for i in range(events.row_count))
        await pilot.press("escape")

        table.move_cursor(row=cell_texts(table, "NAME").index("llama3-8b"))
        await pilot.press("d")
        screen = app.screen
        await wait_for(pilot, lambda: "requests" in screen.metrics_line, timeout=10)
        assert screen.metrics_line.startswith("1 pod(s): ")
        pods = screen.query_one("#detail-pods")
        assert pods.row_count == 1 and "ready" in str(pods.get_row_at(0)[2]) and str(pods.get_row_at(0)[4]) == "1"
        assert "maxReplicaCount: 4" in str(screen.query_one("#endpoint-autoscaling").render())

        await pilot.press("l")
        assert isinstance(app.screen, LogsScreen)
        logs = app.screen
        await wait_for(pilot, lambda: any("Model llama3-8b-instruct loaded" in line for line in logs.buffer), timeout=10)
        await pilot.press("escape", "y")
        assert isinstance(app.screen, YamlScreen)
        await wait_for(pilot, lambda: "kind: InferenceEndpointConfig" in app.screen.yaml_text)


async def test_invoke_stream_bad_json_load_run_and_not_ready(serving_cluster) -> None:
    from textual.widgets import Input, TextArea

    from app.screens.endpoint_invoke import InvokeScreen

    app = _app(serving_cluster)
    async with app.run_test(size=(200, 50)) as pilot:
        await _open(pilot, app, "clip")
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, InvokeScreen)
        assert '"messages"' in screen.query_one("#invoke-body", TextArea).text  # the OpenAI chat template first
        prompt = " ".join(["hello"] * 200)  # the simulated model streams its answer over about 860 ms
        screen.query_one("#invoke-body", TextArea).text = (
            '{"model": "clip", "stream": true, "messages": [{"role": "user", "content": "%s"}]}' % prompt)
        await pilot.press("ctrl+s")
        # shown as it arrives: part of the answer is on screen while the stream is still going
        await wait_for(pilot, lambda: "streaming…" in screen.status_text and screen.response_text, timeout=10)
        partial = screen.response_text
        await wait_for(pilot, lambda: screen.status_text.startswith("200 from the model server"), timeout=10)
        assert screen.response_text.startswith("[demo completion from clip]")
        assert partial and len(partial) < len(screen.response_text) and screen.response_text.startswith(partial)

        await pilot.press("ctrl+t")  # the KServe v1 template and path
        assert screen.query_one("#invoke-path", Input).value == "/v1/models/clip:predict"
        screen.query_one("#invoke-body", TextArea).text = '{"instances": ["a",]}'
        await pilot.press("ctrl+s")
        assert screen.status_text == "invalid JSON at line 1 column 20: Expecting value — nothing was sent"

        screen.query_one("#invoke-body", TextArea).text = '{"instances": ' + str(["x"] * 40).replace("'", '"') + "}"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.status_text.startswith("500 from the model server"), timeout=10)
        assert "CUDA out of memory" in screen.status_text

        await pilot.press("ctrl+t")  # KServe v2, 200 times, 20 at a time
        screen.query_one("#invoke-requests", Input).value = "200"
        screen.query_one("#invoke-concurrency", Input).value = "20"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.status_text.startswith("load run done"), timeout=60)
        assert screen.status_text == "load run done: 200/200 ok"
        assert "200 requests, concurrency 20" in screen.response_text and "p99" in screen.response_text
        await pilot.press("escape")

        await _open(pilot, app, "broken")
        await pilot.press("i")
        screen = app.screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "not ready" in screen.status_text)
        assert "broken is not ready (FailedToLoad, 0/1 replicas ready)" in screen.status_text
        assert "nothing was sent" in screen.status_text


async def test_scale_and_delete_through_the_watch(bare_cluster, demo_kubectl) -> None:
    from app.screens.dialogs import ChoiceScreen, ConfirmScreen
    from app.screens.endpoint_detail import EndpointDetailScreen

    kubectl = demo_kubectl(bare_cluster)
    create(bare_cluster, jumpstart("pane-model"))
    bare_cluster.advance(90)
    app = _app(bare_cluster)
    async with app.run_test(size=(200, 45)) as pilot:
        await _open(pilot, app, "pane-model")
        table = app.pane("endpoints").table
        await wait_for(pilot, lambda: cell_texts(table, "READY") == ["1/1"])
        await pilot.press("s")
        assert isinstance(app.screen, ChoiceScreen)
        from textual.widgets import OptionList

        await wait_for(pilot, lambda: bool(app.screen.query(OptionList))
                       and app.screen.query_one(OptionList).highlighted == 1)
        await pilot.press("down", "enter")  # from 1 (now, highlighted) to 2
        await wait_for(pilot, lambda: cell_texts(table, "READY") == ["1/2"], timeout=10)
        assert kubectl.json("get", "jumpstartmodel", "pane-model", "-n", NAMESPACE)["spec"]["replicas"] == 2
        bare_cluster.advance(90)
        await wait_for(pilot, lambda: cell_texts(table, "READY") == ["2/2"], timeout=10)

        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: [s.strip() for s in cell_texts(table, "STATE")] == ["DeletionPending"], timeout=10)
        bare_cluster.advance(4)
        await wait_for(pilot, lambda: [s.strip() for s in cell_texts(table, "STATE")] == ["DeletionInProgress"], timeout=10)
        await pilot.press("d")  # the detail view stays open while the endpoint goes
        screen = app.screen
        assert isinstance(screen, EndpointDetailScreen)
        bare_cluster.advance(30)
        await wait_for(pilot, lambda: "no longer exists" in str(screen.query_one("#detail-summary").render()),
                       timeout=10)
        await wait_for(pilot, lambda: screen.metrics_line == "the endpoint no longer exists", timeout=10)
        await pilot.press("escape")
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == [], timeout=10)
        assert kubectl.run("get", "jumpstartmodel", "pane-model", "-n", NAMESPACE, check=False).returncode == 1


async def test_a_failed_deletion_is_red_and_says_why(bare_cluster, demo_kubectl) -> None:
    import json

    from app.screens.dialogs import ConfirmScreen
    from app.screens.endpoint_detail import EndpointDetailScreen

    kubectl = demo_kubectl(bare_cluster)
    create(bare_cluster, jumpstart("pane-stuck"))
    bare_cluster.advance(90)
    pod = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app=pane-stuck")["items"][0]["metadata"]["name"]
    kubectl("patch", "pod", pod, "-n", NAMESPACE, "--type", "merge", "-p",
            json.dumps({"metadata": {"finalizers": ["example.com/hold"]}}))
    app = _app(bare_cluster)
    async with app.run_test(size=(200, 45)) as pilot:
        await _open(pilot, app, "pane-stuck")
        table = app.pane("endpoints").table
        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: [s.strip() for s in cell_texts(table, "STATE")] == ["DeletionPending"], timeout=10)
        bare_cluster.advance(70)
        await wait_for(pilot, lambda: [s.strip() for s in cell_texts(table, "STATE")] == ["DeletionFailed"], timeout=10)
        labels = [str(c.label) for c in table.columns.values()]
        cell = table.get_row_at(0)[labels.index("STATE")]
        assert "red" in str(cell.style)

        await pilot.press("d")
        assert isinstance(app.screen, EndpointDetailScreen)
        await wait_for(pilot, lambda: "Why:" in str(app.screen.query_one("#detail-summary").render()))
        summary = str(app.screen.query_one("#detail-summary").render())
        assert "Why: DeletionTimedOut: Model server pods still present 60s after deletion began" in summary
        assert f"{pod} (finalizers: example.com/hold)" in summary
        events = app.screen.query_one("#detail-events")
        assert any("DeletionFailed" in str(events.get_row_at(i)) for i in range(events.row_count))
        await pilot.press("escape")

        kubectl("patch", "pod", pod, "-n", NAMESPACE, "--type", "json", "-p",
                json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]))
        bare_cluster.advance(1)
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == [], timeout=10)


async def test_readonly_refuses_scale_delete_and_deploy(serving_cluster) -> None:
    from app.screens.dialogs import ChoiceScreen

    app = _app(serving_cluster, readonly=True)
    notes = record_notifications(app)
    async with app.run_test(size=(200, 45)) as pilot:
        await _open(pilot, app, "clip")
        for key in ("s", "ctrl+d", "n"):
            await pilot.press(key)
            assert not isinstance(app.screen, ChoiceScreen) and app.screen.query("#panes"), key
        assert sum("read-only" in n for n in notes.messages()) == 3


async def test_deploy_a_manifest_from_the_pane(bare_cluster, tmp_path, monkeypatch) -> None:
    import yaml

    from app.screens.endpoint_actions import ManifestPathScreen
    from tests.plugins.endpoints import inference_service

    monkeypatch.chdir(tmp_path)  # short relative paths: every character is a key press
    good = Path("isvc.yaml")
    good.write_text(yaml.safe_dump(inference_service("from-pane")))
    bad = Path("bad.yaml")
    bad.write_text("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: x\n")
    mixed = Path("mixed.yaml")  # an endpoint and something else: a deploy takes endpoint kinds only
    mixed.write_text(yaml.safe_dump_all([inference_service("not-this"), {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "side", "namespace": NAMESPACE}}]))
    app = _app(bare_cluster)
    notes = record_notifications(app)
    async with app.run_test(size=(200, 45)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: app.engine is not None, timeout=20)
        for path in (bad, mixed, good):
            await pilot.press("n")
            assert isinstance(app.screen, ManifestPathScreen)
            await pilot.press(*str(path), "enter")
        table = app.pane("endpoints").table
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["from-pane"], timeout=10)
        messages = notes.messages()
        assert any(f"{bad}:4: invalid YAML" in m for m in messages), messages
        assert any(f"{mixed} holds ConfigMap/side" in m and "nothing was sent" in m for m in messages), messages
        assert any(f"submitted InferenceService/{NAMESPACE}/from-pane" in m for m in messages), messages
