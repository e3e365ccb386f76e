"""GPU test helpers: GPU nodes and pods to add to a simulated cluster, and one collector refresh over real sockets.

- `gpu_node(...)`: a Node as the GPU operator labels it (whole GPUs, or MIG under the single or mixed strategy),
  optionally without a dcgm-exporter or with the old/new exporter label names (see app/demo/sim/gpus.py).
- `gpu_pod(...)`: a pod already bound to a node, asking for GPUs or MIG slices.
- `collect(handle, ...)`: `GpuCollector.refresh()` against a demo cluster through its kubeconfig, as the pane does.
- `add_objects(handle, *objects)`: create them in the API server's store on its loop (nodes with their status, as a
  kubelet registers them), then let the simulator act.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.cluster.connection import ClusterConnection
from app.demo.sim.gpus import LABEL_STYLE_ANNOTATION, NO_EXPORTER_LABEL, mig_layout, profile_memory_mib
from app.metrics.collector import GpuCollector, GpuView


def gpu_node(name: str, *, count: int = 8, product: str = "NVIDIA-H100-80GB-HBM3", memory: int = 81559,
             strategy: str = "", mig_config: str = "", label_style: str | None = None,
             exporter: bool = True) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": "ml.p5.48xlarge",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.memory": str(memory),
        "nvidia.com/gpu.product": product,
        "sagemaker.amazonaws.com/node-health-status": "Schedulable",
    }
    capacity: dict[str, str] = {"cpu": "192", "memory": "2Ti", "pods": "110"}
    if strategy:
        labels.update({"nvidia.com/mig.strategy": strategy, "nvidia.com/mig.config": mig_config,
                       "nvidia.com/mig.config.state": "success"})
        layout = mig_layout(mig_config)
        if strategy == "single":
            profile, per_gpu = layout[0]
            labels["nvidia.com/gpu.product"] = f"{product}-MIG-{profile}"
            labels["nvidia.com/gpu.memory"] = str(profile_memory_mib(profile))
            capacity["nvidia.com/gpu"] = str(per_gpu * count)
        else:
            capacity["nvidia.com/gpu"] = "0"
            for profile, per_gpu in layout:
                capacity[f"nvidia.com/mig-{profile}"] = str(per_gpu * count)
    else:
        capacity["nvidia.com/gpu"] = str(count)
    if not exporter:
        labels[NO_EXPORTER_LABEL] = "false"
    annotations = {LABEL_STYLE_ANNOTATION: label_style} if label_style else {}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    }


def gpu_pod(name: str, namespace: str, node: str, resources: dict[str, int],
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    amounts = {k: str(v) for k, v in resources.items()}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "python:3.11",
                                                    "resources": {"requests": amounts, "limits": amounts}}]},
    }


def add_objects(handle: Any, *objects: dict[str, Any], settle: float = 5.0) -> None:
    store = handle.cluster.server.store
    for obj in objects:
        handle.call(store.put if obj["kind"] == "Node" else store.create, obj)
    handle.advance(settle)


def collect(handle: Any, *, kubeconfig: Path | None = None, collector: GpuCollector | None = None,
            now: float | None = None) -> GpuView:
    """One refresh, as the pane does it: nodes and pods listed, exporters found and scraped through the proxy."""
    collector = collector or GpuCollector()

    async def run() -> GpuView:
        connection = ClusterConnection([kubeconfig or handle.kubeconfig_path], None)
        try:
            nodes = (await connection.request("GET", "/api/v1/nodes"))["items"]
            pods = (await connection.request("GET", "/api/v1/pods"))["items"]
            return await collector.refresh(connection, nodes, pods, now=now)
        finally:
            await connection.close()

    return asyncio.run(run())
