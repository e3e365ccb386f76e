"""Allocation, with plain Kubernetes access: each GPU node's inventory, capacity and allocatable GPUs and MIG
slices, the pods that hold them and the job or space each pod belongs to. Works under the single and the mixed MIG
strategies: a resource is `nvidia.com/gpu` (whole GPUs, or slices under "single") or `nvidia.com/mig-<profile>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.metrics.model import GPU, MIG_PREFIX, Holder, NodeGpus, is_gpu_resource

TERMINAL = ("Succeeded", "Failed")

# Pod label -> the kind of the object that made the pod.
HOLDER_LABELS = (
    ("HPJob", "HyperPodPyTorchJob"),
    ("training.kubeflow.org/job-name", "PyTorchJob"),
    ("jobset.sigs.k8s.io/jobset-name", "JobSet"),
    ("batch.kubernetes.io/job-name", "Job"),
    ("job-name", "Job"),
    ("workspace.jupyter.org/workspace-name", "Workspace"),
    ("notebook-name", "Notebook"),
    ("serving.kserve.io/inferenceservice", "InferenceService"),
)


def quantity(value: Any) -> int:
    """A whole-number resource quantity ("8", 8, "8000m"); 0 when it is not one."""
    text = str(value).strip()
    try:
        if text.endswith("m"):
            return int(text[:-1]) // 1000
        return int(float(text))
    except ValueError:
        return 0


def holder_of(pod: Mapping[str, Any]) -> Holder:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    for label, kind in HOLDER_LABELS:
        if labels.get(label):
            return Holder(namespace, name, kind, labels[label])
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            kind, owner_name = owner.get("kind", ""), owner.get("name", "")
            if kind == "ReplicaSet" and labels.get("pod-template-hash"):
                return Holder(namespace, name, "Deployment", owner_name.rsplit("-", 1)[0])
            return Holder(namespace, name, kind, owner_name)
    return Holder(namespace, name, "Pod", name)


def gpu_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """The GPUs and MIG slices a pod asks for: containers summed (limits when no request), init containers max."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}

    def wanted(container: Mapping[str, Any]) -> dict[str, int]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {k: quantity(v) for k, v in merged.items() if is_gpu_resource(k) and quantity(v) > 0}

    for container in spec.get("containers") or []:
        for name, count in wanted(container).items():
            total[name] = total.get(name, 0) + count
    for container in spec.get("initContainers") or []:
        for name, count in wanted(container).items():
            total[name] = max(total.get(name, 0), count)
    return total


def node_gpus(node: Mapping[str, Any]) -> NodeGpus | None:
    """The GPU view of one Node object; None when it has no GPUs at all."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = node.get("status") or {}
    capacity = {k: quantity(v) for k, v in (status.get("capacity") or {}).items() if is_gpu_resource(k)}
    allocatable = {k: quantity(v) for k, v in (status.get("allocatable") or {}).items() if is_gpu_resource(k)}
    count = quantity(labels.get("nvidia.com/gpu.count", 0))
    if not count and not any(capacity.values()):
        return None
    ready = next((c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"), True)
    fault = labels.get("sagemaker.amazonaws.com/fault-reason") or labels.get("sagemaker.amazonaws.com/fault-type", "")
    return NodeGpus(
        name=meta.get("name", ""),
        product=labels.get("nvidia.com/gpu.product", ""),
        gpu_count=count or capacity.get(GPU, 0),
        gpu_memory_mib=quantity(labels.get("nvidia.com/gpu.memory", 0)),
        instance_type=labels.get("node.kubernetes.io/instance-type", ""),
        mig_strategy=labels.get("nvidia.com/mig.strategy", ""),
        mig_config=labels.get("nvidia.com/mig.config", ""),
        mig_config_state=labels.get("nvidia.com/mig.config.state", ""),
        health=labels.get("sagemaker.amazonaws.com/node-health-status", ""),
        deep_health=labels.get("sagemaker.amazonaws.com/deep-health-check-status", ""),
        fault=fault,
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
        ready=ready,
        capacity=capacity,
        allocatable=allocatable,
    )


def allocation(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> dict[str, NodeGpus]:
    """node name -> its GPUs, with the pods bound to it that hold GPUs or MIG slices."""
    result: dict[str, NodeGpus] = {}
    for node in nodes:
        gpus = node_gpus(node)
        if gpus is not None:
            result[gpus.name] = gpus
    for pod in pods:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = result.get(spec.get("nodeName") or "")
        if node is None or status.get("phase") in TERMINAL:
            continue
        wanted = gpu_requests(pod)
        if not wanted:
            continue
        node.claims.append((holder_of(pod), wanted))
        for resource, count in wanted.items():
            node.allocated[resource] = node.allocated.get(resource, 0) + count
    for node in result.values():
        node.claims.sort(key=lambda claim: (claim[0].namespace, claim[0].pod))
    return result


def profile_of(resource: str) -> str | None:
    return resource[len(MIG_PREFIX):] if resource.startswith(MIG_PREFIX) else None
