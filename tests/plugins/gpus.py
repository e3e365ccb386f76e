"""GPU test helpers: GPU nodes and pods to add to a simulated cluster, and one collector refresh over real sockets.

- `gpu_node(...)`: a Node as the GPU operator labels it (whole GPUs, or MIG under the single or mixed strategy),
  optionally without a dcgm-exporter or with the old/new exporter label names (see app/demo/sim/gpus.py).
- `gpu_pod(...)`: a pod already bound to a node, asking for GPUs or MIG slices.
- `collect(handle, ...)`: `GpuCollector.refresh()` against a demo cluster through its kubeconfig, as the pane does.
- `prometheus_server(handle, exporters)`: a real Prometheus scraping the exporters through the proxy; its URL.
- `add_objects(handle, *objects)`: create them in the API server's store on its loop (nodes with their status, as a
  kubelet registers them), then let the simulator act.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cluster.connection import ClusterConnection
from app.demo.sim.gpus import LABEL_STYLE_ANNOTATION, NO_EXPORTER_LABEL, mig_layout, profile_memory_mib
from app.metrics.collector import GpuCollector, GpuView
from tests.plugins.tui import closed_port


VIEWER: dict[str, Any] = {
    # a user who may list pods and nodes but not proxy to pods (no live figures)
    "anonymous": False,
    "users": [
        {"name": "admin", "token": "admin-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "viewer", "token": "viewer-token",
         "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "nodes"]}]},
    ],
}


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
            now: float | None = None, namespace: str | None = None) -> GpuView:
    """One refresh, as the pane does it: nodes and pods listed, exporters found and scraped through the proxy.
    `namespace`: the pods at hand are those of this namespace only (a pane scoped to it)."""
    collector = collector or GpuCollector()

    async def run() -> GpuView:
        connection = ClusterConnection([kubeconfig or handle.kubeconfig_path], None)
        try:
            nodes = (await connection.request("GET", "/api/v1/nodes"))["items"]
            path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
            pods = (await connection.request("GET", path))["items"]
            scope = f"namespace {namespace}" if namespace else "all namespaces"
            return await collector.refresh(connection, nodes, pods, now=now, pods_scope=scope)
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[[Any, list[str]], str]]:
    """A real Prometheus (Debian's `prometheus`) on 127.0.0.1 scraping dcgm-exporter pods through a demo cluster's
    `pods/proxy` every second: `url = prometheus_server(handle, ["gpu-operator/pod-a", ...])`."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed: .ci/run installs it (Debian: apt-get install prometheus)")
    started: list[subprocess.Popen[bytes]] = []

    def start(handle: Any, exporters: list[str], service_discovery: bool = False) -> str:
        """`service_discovery`: label each target as a ServiceMonitor does (the exporter's own `pod`, `namespace`,
        `container`, `service`, `endpoint`: dcgm's pod labels become `exported_*`), and give the series the
        exporter pod's name as `Hostname`, as an exporter without NODE_NAME does."""
        base = urllib.parse.urlsplit(handle.url)
        assert base.scheme == "http", "scraping through the proxy needs the demo cluster's plain-HTTP server"
        jobs = []
        for n, (ns, pod) in enumerate(e.split("/") for e in exporters):
            labels = {"__metrics_path__": f"/api/v1/namespaces/{ns}/pods/{pod}:9400/proxy/metrics"}
            job: dict[str, Any] = {"job_name": f"dcgm-{n}", "static_configs": [{"targets": [base.netloc],
                                                                              "labels": labels}]}
            if service_discovery:
                labels.update({"namespace": ns, "pod": pod, "container": "nvidia-dcgm-exporter",
                               "service": "nvidia-dcgm-exporter", "endpoint": "gpu-metrics"})
                job["metric_relabel_configs"] = [{"source_labels": ["Hostname"], "regex": ".+",
                                                  "target_label": "Hostname", "replacement": pod}]
            jobs.append(job)
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                                          "scrape_configs": jobs}))
        port = closed_port()
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return url
            except OSError:
                time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready in 30 s")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def first_h100(handle: Any) -> str:
    """The name of a healthy whole-GPU 8-GPU node of a demo cluster."""
    store = handle.cluster.server.store
    nodes = handle.call(store.list, "v1", "Node")
    items = nodes["items"] if isinstance(nodes, dict) else nodes
    return next(n["metadata"]["name"] for n in items
                if n["metadata"]["labels"].get("nvidia.com/gpu.count") == "8"
                and "mig.strategy" not in str(n["metadata"]["labels"])
                and n["metadata"]["labels"].get("sagemaker.amazonaws.com/node-health-status") == "Schedulable")
