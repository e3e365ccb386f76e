"""The Endpoints pane: inference endpoints (HyperPod inference operator, KServe)."""

from __future__ import annotations

from app.screens.pane import Pane


class EndpointsPane(Pane):
    pane_id = "endpoints"
    title = "Endpoints"
    key = "5"
    columns = ("NAME", "NAMESPACE", "KIND", "MODEL", "STATE", "READY", "URL")
    purpose = "Inference endpoints, with invoke, load test and scale — coming soon."
    kinds = ("jumpstartmodels", "inferenceendpointconfigs", "inferenceservices", "pods")
