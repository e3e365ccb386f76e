"""Snapshots of the Spaces views from fixed plain data: the pane, the new-space form and the detail view.

The views on the simulated cluster are covered by tests/test_spaces_pane.py; these pin the layout.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from app.model.spaces import space_detail, space_rows, template_info
from app.screens.space_views import SpaceDetailScreen, SpaceFormScreen
from app.screens.spaces import SpacesPane
from themes import BUILTIN, STYLESHEET

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
TEMPLATE_NS = "jupyter-k8s-system"


def stamp(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_: str, status: str, reason: str, message: str, minutes: float) -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp(minutes)}


def template(name: str, display: str, app: str, image: str) -> dict:
    return {"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "WorkspaceTemplate",
            "metadata": {"name": name, "namespace": TEMPLATE_NS},
            "spec": {"displayName": display, "appType": app, "defaultImage": image, "allowedImages": [image],
                     "defaultResources": {"requests": {"cpu": "2", "memory": "8Gi"}},
                     "resourceBounds": {"resources": {"cpu": {"min": "1", "max": "16"},
                                                      "memory": {"min": "2Gi", "max": "128Gi"},
                                                      "nvidia.com/gpu": {"min": "0", "max": "1"}}},
                     "primaryStorage": {"defaultSize": "20Gi", "minSize": "5Gi", "maxSize": "200Gi"},
                     "defaultIdleShutdown": {"enabled": True, "idleTimeoutInMinutes": 120}}}


IMAGE = "public.ecr.aws/sagemaker/sagemaker-distribution:2.4-gpu"
TEMPLATES = {
    f"{TEMPLATE_NS}/sagemaker-jupyter-template": template("sagemaker-jupyter-template", "SageMaker JupyterLab",
                                                          "jupyterlab", IMAGE),
    f"{TEMPLATE_NS}/sagemaker-code-editor-template": template("sagemaker-code-editor-template", "SageMaker Code Editor",
                                                              "code-editor", IMAGE.replace("gpu", "cpu")),
}


def ws(name: str, ns: str, display: str, owner: str, *, desired: str, conditions: list[dict], age: float,
       resources: dict, template_name: str = "sagemaker-jupyter-template", queue: bool = True,
       annotations: dict | None = None, url: bool = False) -> dict:
    labels = {"workspace.jupyter.org/template-name": template_name}
    if queue:
        labels |= {"kueue.x-k8s.io/queue-name": f"{ns}-localqueue", "kueue.x-k8s.io/priority-class":
                   "experimentation-priority"}
    status: dict = {"conditions": conditions}
    if url:
        status["accessURL"] = f"https://spaces.demo.hyperpod.local/workspaces/{ns}/{name}/"
    return {"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": stamp(age), "labels": labels,
                         "annotations": {"workspace.jupyter.org/created-by": owner, **(annotations or {})}},
            "spec": {"displayName": display, "desiredStatus": desired, "image": IMAGE,
                     "templateRef": {"name": template_name, "namespace": TEMPLATE_NS},
                     "idleShutdown": {"enabled": True, "idleTimeoutInMinutes": 240},
                     "resources": {"requests": resources}, "storage": {"size": "50Gi"}},
            "status": status}


RUNNING = [cond("Available", "True", "ResourcesReady", "Workspace is ready", 40),
           cond("Progressing", "False", "ResourcesReady", "Workspace is ready", 40),
           cond("Degraded", "False", "NoError", "No errors detected", 42),
           cond("Stopped", "False", "DesiredStateRunning", "Workspace is running", 42)]
WORKSPACES = [
    ws("alice-notebook", "hyperpod-ns-nlp", "Alice's GPU notebook", "alice@example.com", desired="Running",
       conditions=RUNNING, age=42, resources={"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"}, url=True),
    ws("bob-mig-lab", "hyperpod-ns-vision", "Bob's MIG lab", "bob@example.com", desired="Running", conditions=[
        cond("Available", "False", "ComputeNotReady", "Waiting for pod: 0/8 nodes are available", 3),
        cond("Progressing", "True", "ComputeNotReady", "Waiting for pod: 0/8 nodes are available", 3)],
       age=3, resources={"cpu": "4", "memory": "16Gi", "nvidia.com/mig-2g.20gb": "1"}),
    ws("carol-code-editor", "hyperpod-ns-research", "Carol's Code Editor", "carol@example.com", desired="Stopped",
       conditions=[cond("Stopped", "True", "DesiredStateStopped", "Workspace is stopped", 300)], age=600,
       resources={"cpu": "2", "memory": "8Gi"}, template_name="sagemaker-code-editor-template", queue=False),
    ws("dan-eda", "hyperpod-ns-research", "Dan's data exploration", "dan@example.com", desired="Stopped",
       conditions=[cond("Stopped", "False", "DesiredStateStopped", "Workspace is stopping", 0.2)], age=90,
       resources={"cpu": "2", "memory": "8Gi"}),
    ws("erin-tiny", "hyperpod-ns-nlp", "Erin's scratch", "erin@example.com", desired="Running", conditions=[
        cond("Degraded", "True", "ComputeError", "Container workspace keeps crashing (OOMKilled: JupyterLab needs "
             "2Gi, exit code 137, 3 restarts)", 5)], age=20, resources={"cpu": "1", "memory": "1Gi"}, queue=False),
    ws("frank-lora", "hyperpod-ns-nlp", "Frank's LoRA debug", "frank@example.com", desired="Stopped", conditions=[
        cond("Stopped", "True", "Preempted", "Workspace preempted due to resource contention", 8)], age=70,
       resources={"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
       annotations={"workspace.jupyter.org/preemption-reason": "Workspace preempted due to resource contention"}),
]
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "workspace-alice-notebook-7c9d8b6f5-x2k4q", "namespace": "hyperpod-ns-nlp",
                    "labels": {"workspace.jupyter.org/workspace-name": "alice-notebook"}},
       "spec": {"nodeName": "hyperpod-i-0a1b2c3d4e5f60718"},
       "status": {"phase": "Running", "containerStatuses": [{"name": "workspace", "restartCount": 0}]}}
EVENTS = {
    "hyperpod-ns-nlp/e1": {"metadata": {"name": "e1", "namespace": "hyperpod-ns-nlp"},
                           "involvedObject": {"kind": "Pod", "name": POD["metadata"]["name"], "namespace": "hyperpod-ns-nlp"},
                           "type": "Normal", "reason": "Pulling", "message": f'Pulling image "{IMAGE}"',
                           "lastTimestamp": stamp(41), "count": 1},
    "hyperpod-ns-nlp/e2": {"metadata": {"name": "e2", "namespace": "hyperpod-ns-nlp"},
                           "involvedObject": {"kind": "Pod", "name": POD["metadata"]["name"], "namespace": "hyperpod-ns-nlp"},
                           "type": "Normal", "reason": "Started", "message": "Started container workspace",
                           "lastTimestamp": stamp(40), "count": 1},
}
STORES = {
    "workspaces": {f"{w['metadata']['namespace']}/{w['metadata']['name']}": w for w in WORKSPACES},
    "workspacetemplates": TEMPLATES,
    "pods": {"hyperpod-ns-nlp/" + POD["metadata"]["name"]: POD},
    "events": EVENTS,
}


class ViewApp(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self) -> None:
        super().__init__()
        self.register_theme(BUILTIN["hyperdesk-dark"])
        self.theme = "hyperdesk-dark"


class PaneApp(ViewApp):
    def compose(self) -> ComposeResult:
        yield SpacesPane()

    def on_mount(self) -> None:
        pane = self.query_one(SpacesPane)
        pane.now = lambda: NOW
        pane.connections = {"hyperpod-ns-nlp/alice-notebook": "127.0.0.1:18888 ssh"}
        pane.activity = {"hyperpod-ns-nlp/alice-notebook": NOW - timedelta(minutes=12)}
        pane.table.set_rows(pane.rows(STORES))
        pane.show_notice("Your JupyterLab and Code Editor spaces on the cluster.")
        pane.focus()


class DetailApp(ViewApp):
    def on_mount(self) -> None:
        activity = {"hyperpod-ns-nlp/alice-notebook": NOW - timedelta(minutes=12)}
        row = next(r for r in space_rows(STORES, activity=activity) if r.name == "alice-notebook")
        detail = space_detail(row, STORES)
        self.push_screen(SpaceDetailScreen(lambda: detail, now=lambda: NOW))


class FormApp(ViewApp):
    def on_mount(self) -> None:
        templates = sorted((template_info(t) for t in TEMPLATES.values()), key=lambda t: t.key, reverse=True)
        self.push_screen(SpaceFormScreen(
            templates, namespace="hyperpod-ns-nlp", namespaces=["hyperpod-ns-nlp", "hyperpod-ns-vision"],
            gpu_offer={"nvidia.com/gpu": 24, "nvidia.com/mig-1g.10gb": 9, "nvidia.com/mig-2g.20gb": 2},
            queues={"hyperpod-ns-nlp": ["hyperpod-ns-nlp-localqueue"]},
            priorities=["experimentation-priority", "training-priority"], owner="alice@example.com"))


@pytest.mark.usefixtures("isolated_home")
def test_spaces_pane(snap_compare) -> None:
    assert snap_compare(PaneApp(), terminal_size=(200, 16))


@pytest.mark.usefixtures("isolated_home")
def test_space_detail_view(snap_compare) -> None:
    assert snap_compare(DetailApp(), terminal_size=(150, 40))


@pytest.mark.usefixtures("isolated_home")
def test_new_space_form_with_a_problem(snap_compare) -> None:
    async def fill(pilot) -> None:
        form = pilot.app.screen
        for field in form.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
        form.query_one("#f-name", Input).value = "alice-sweep"
        form.query_one("#f-cpu", Input).value = "32"
        await pilot.pause()

    assert snap_compare(FormApp(), terminal_size=(160, 48), run_before=fill)
