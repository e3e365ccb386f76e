"""Snapshots of the Endpoints views from fixed objects: the pane, the detail view, and the invoke view with a response.

The objects are shaped as the HyperPod inference operator and KServe write them; rows and details come from them
through the same model functions the live pane uses, at a fixed clock. Behaviour on the simulated cluster is covered by
tests/test_endpoints_pane.py; these pin the layout.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.cluster.endpoints import InvokeResult
from app.config import Settings
from app.model.endpoints import endpoint_detail, endpoint_rows
from app.screens.endpoint_detail import EndpointDetailScreen
from app.screens.endpoint_invoke import InvokeScreen
from app.tui import HyperdeskApp
from tests.test_snapshots_jobs import ViewApp

pytestmark = pytest.mark.usefixtures("isolated_home")

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
NS = "hyperpod-ns-nlp"


def stamp(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, minutes: float, uid: str) -> dict:
    return {"name": name, "namespace": NS, "uid": uid, "creationTimestamp": stamp(minutes)}


def condition(type_: str, status: str, reason: str, message: str, minutes: float) -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": stamp(minutes)}


ARN = "arn:aws:sagemaker:us-west-2:123456789012:endpoint"
OBJECTS = {
    "jumpstartmodels": [
        {"kind": "JumpStartModel", "metadata": meta("deepseek-r1-distill", 240, "u1"),
         "spec": {"replicas": 2, "model": {"modelId": "deepseek-llm-r1-distill-qwen-1-5b", "modelVersion": "2.0.4"},
                  "server": {"instanceType": "ml.g5.12xlarge"},
                  "autoScalingSpec": {"minReplicaCount": 1, "maxReplicaCount": 4, "cooldownPeriod": 300}},
         "status": {"state": "DeploymentComplete", "selector": "app=deepseek-r1-distill",
                    "deploymentStatus": {"deploymentObjectOverallState": "DeploymentComplete",
                                         "reason": "NativeDeploymentObjectFound", "message": "Deployment is available",
                                         "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}},
                    "endpoints": {"sagemaker": {"state": "InService", "endpointArn": f"{ARN}/deepseek-r1-distill-ep"}},
                    "conditions": [condition("Ready", "True", "DeploymentComplete",
                                             "Endpoint deepseek-r1-distill-ep is in service", 232)]}},
        {"kind": "JumpStartModel", "metadata": meta("mixtral-8x22b", 12, "u2"),
         "spec": {"model": {"modelId": "huggingface-llm-mixtral-8x22b-instruct"},
                  "server": {"instanceType": "ml.p4de.24xlarge"}},
         "status": {"state": "DeploymentFailed",
                    "deploymentStatus": {"deploymentObjectOverallState": "DeploymentFailed",
                                         "reason": "InstanceTypeNotAvailable",
                                         "message": "Instance type ml.p4de.24xlarge is not available in the cluster"},
                    "conditions": [condition("Ready", "False", "DeploymentFailed",
                                             "Instance type ml.p4de.24xlarge is not available in the cluster", 11)]}},
    ],
    "inferenceendpointconfigs": [
        {"kind": "InferenceEndpointConfig", "metadata": meta("llama3-8b-instruct", 3, "u3"),
         "spec": {"modelName": "llama3-8b-instruct", "instanceType": "ml.g5.12xlarge", "replicas": 1,
                  "modelSourceConfig": {"modelSourceType": "s3", "modelLocation": "llama-3-8b-instruct",
                                        "s3Storage": {"bucketName": "demo-models"}}},
         "status": {"state": "DeploymentInProgress", "selector": "app=llama3-8b-instruct",
                    "deploymentStatus": {"deploymentObjectOverallState": "DeploymentInProgress",
                                         "message": "Waiting for model server pods: 0/1 ready",
                                         "status": {"replicas": 1, "readyReplicas": 0}}}},
    ],
    "inferenceservices": [
        {"kind": "InferenceService", "metadata": meta("clip-vit-l", 55, "u4"),
         "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 3,
                                "model": {"modelFormat": {"name": "huggingface"},
                                          "storageUri": "s3://demo-models/clip-vit-large-patch14"}}},
         "status": {"url": f"http://clip-vit-l.{NS}.example.com",
                    "conditions": [condition("Ready", "True", "", "", 50)]}},
    ],
}
PODS = [
    {"metadata": {"name": f"deepseek-r1-distill-6c9f8d7b5-{suffix}", "namespace": NS,
                  "labels": {"app": "deepseek-r1-distill"}},
     "spec": {"nodeName": node, "containers": [{"name": "model-server",
                                                "resources": {"requests": {"nvidia.com/gpu": "1"}}}]},
     "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    for suffix, node in (("b2xkq", "hyperpod-i-0295d3cac5cb5bde7"), ("t9wzm", "hyperpod-i-0a566edb6dfdf1905"))
] + [
    {"metadata": {"name": "clip-vit-l-predictor-7d4b9c6f8-xk2pq", "namespace": NS,
                  "labels": {"serving.kserve.io/inferenceservice": "clip-vit-l", "component": "predictor"}},
     "spec": {"nodeName": "hyperpod-i-074bf20f876ffc474", "containers": [{"name": "kserve-container"}]},
     "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
]
EVENTS = [
    {"metadata": {"name": "e1", "namespace": NS}, "involvedObject": {"kind": "JumpStartModel", "name": "deepseek-r1-distill",
                                                                       "namespace": NS},
     "type": "Normal", "reason": "DeploymentComplete", "message": "Endpoint deepseek-r1-distill-ep is in service",
     "lastTimestamp": stamp(232), "count": 1},
    {"metadata": {"name": "e2", "namespace": NS}, "involvedObject": {"kind": "Pod", "name": PODS[1]["metadata"]["name"],
                                                                       "namespace": NS},
     "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned to hyperpod-i-0a566edb6dfdf1905",
     "lastTimestamp": stamp(30), "count": 1},
]


def stores() -> dict[str, dict[str, dict]]:
    out = {store: {f"{NS}/{o['metadata']['name']}": o for o in objects} for store, objects in OBJECTS.items()}
    out["pods"] = {f"{NS}/{p['metadata']['name']}": p for p in PODS}
    out["events"] = {f"{NS}/{e['metadata']['name']}": e for e in EVENTS}
    return out


ROWS = {row.name: row for row in endpoint_rows(stores())}


def test_endpoints_pane(snap_compare) -> None:
    async def fill(pilot) -> None:
        pane = pilot.app.pane("endpoints")
        pane.table.set_rows(pane.rows(stores(), now=NOW))
        await pilot.pause()

    app = HyperdeskApp(Settings(), kubeconfig=None)
    assert snap_compare(app, press=["5"], run_before=fill, terminal_size=(200, 30))


class DetailApp(ViewApp):
    def on_mount(self) -> None:
        detail = endpoint_detail(ROWS["deepseek-r1-distill"], stores())

        async def metrics() -> str:
            return "2 pod(s): 1840 requests, 3 errors, 12.5 req/s, mean 212 ms, p50 ≤250 ms, p95 ≤500 ms, p99 ≤1000 ms"

        self.push_screen(EndpointDetailScreen(lambda: detail, metrics, now=lambda: NOW))


def test_endpoint_detail_view(snap_compare) -> None:
    async def settle(pilot) -> None:
        from tests.test_tui_navigation import wait_for

        screen = pilot.app.screen
        await wait_for(pilot, lambda: screen.metrics_line.startswith("2 pod(s)")
                       and screen.query_one("#detail-events").row_count > 0)
        await pilot.pause()

    assert snap_compare(DetailApp(), run_before=settle, terminal_size=(150, 48))


class InvokeApp(ViewApp):
    def on_mount(self) -> None:
        async def never(*args):  # the response is put on screen by the test; nothing is sent
            raise AssertionError("not sent in a snapshot")

        self.push_screen(InvokeScreen(ROWS["clip-vit-l"], never, never))


def test_invoke_view_with_a_response(snap_compare) -> None:
    async def answer(pilot) -> None:
        from textual.widgets import Input, TextArea

        screen = pilot.app.screen
        for widget in (*screen.query(Input), screen.query_one(TextArea)):
            widget.cursor_blink = False
        await pilot.press("ctrl+t")  # the KServe v1 template
        screen.show_result(InvokeResult(
            200, '{"predictions": ["[demo completion from clip-vit-l] MIG slices isolate memory and compute."]}',
            143.2, "application/json"))
        await pilot.pause()

    assert snap_compare(InvokeApp(), run_before=answer, terminal_size=(130, 40))
