"""Allocation from plain node and pod objects: quantities, requests, holders, strategies and health badges."""

from __future__ import annotations

from app.metrics.allocation import allocation, gpu_requests, holder_of, node_gpus, quantity
from app.metrics.collector import allocation_devices


def pod(name, node, resources, *, labels=None, owners=None, init=None, phase="Running", limits_only=False):
    spec_resources = {"limits": resources} if limits_only else {"requests": resources, "limits": resources}
    return {"metadata": {"name": name, "namespace": "team-a", "labels": labels or {}, "ownerReferences": owners or []},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": spec_resources}],
                     "initContainers": init or []},
            "status": {"phase": phase}}


def node(name, labels, capacity):
    return {"metadata": {"name": name, "labels": labels},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def test_quantities():
    assert [quantity(v) for v in ("8", 8, "8000m", "1.0", "lots", "")] == [8, 8, 8, 1, 0, 0]


def test_requests_sum_containers_take_limits_alone_and_the_largest_init_container():
    p = pod("p", "n", {"nvidia.com/gpu": "2", "cpu": "4"}, limits_only=True,
            init=[{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "3"}}}])
    p["spec"]["containers"].append({"name": "d", "resources": {"requests": {"nvidia.com/mig-1g.10gb": "1"}}})
    assert gpu_requests(p) == {"nvidia.com/gpu": 3, "nvidia.com/mig-1g.10gb": 1}


def test_holders_from_labels_and_owners():
    assert holder_of(pod("w-0", "n", {}, labels={"HPJob": "llama"})).kind == "HyperPodPyTorchJob"
    assert holder_of(pod("w-0", "n", {}, labels={"training.kubeflow.org/job-name": "sft"})).name == "sft"
    assert holder_of(pod("nb", "n", {}, labels={"workspace.jupyter.org/workspace-name": "alice"})).kind == "Workspace"
    deployed = holder_of(pod("llm-5d8f-x", "n", {}, labels={"pod-template-hash": "5d8f"},
                             owners=[{"kind": "ReplicaSet", "name": "llm-5d8f", "controller": True}]))
    assert (deployed.kind, deployed.name) == ("Deployment", "llm")
    bare = holder_of(pod("lonely", "n", {}))
    assert (bare.kind, bare.name, bare.text) == ("Pod", "lonely", "team-a/lonely")


def test_single_and_mixed_strategies_and_terminal_pods():
    single = node("s", {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb",
                        "nvidia.com/mig.strategy": "single", "nvidia.com/mig.config.state": "pending"},
                  {"nvidia.com/gpu": "56", "cpu": "192"})
    mixed = node("m", {"nvidia.com/gpu.count": "8", "nvidia.com/mig.strategy": "mixed"},
                 {"nvidia.com/gpu": "0", "nvidia.com/mig-3g.40gb": "16"})
    cpu_only = node("c", {}, {"cpu": "64"})
    nodes = allocation([single, mixed, cpu_only], [
        pod("a", "s", {"nvidia.com/gpu": "2"}), pod("b", "m", {"nvidia.com/mig-3g.40gb": "1"}),
        pod("done", "m", {"nvidia.com/mig-3g.40gb": "4"}, phase="Succeeded")])
    assert set(nodes) == {"s", "m"}
    assert (nodes["s"].single_profile, nodes["s"].model, nodes["s"].allocated) == (
        "1g.10gb", "NVIDIA-H100-80GB-HBM3", {"nvidia.com/gpu": 2})
    assert nodes["s"].badges == ["MIG pending"]
    assert nodes["m"].allocated == {"nvidia.com/mig-3g.40gb": 1} and nodes["m"].profiles == ["3g.40gb"]
    devices = allocation_devices(nodes["s"])
    assert len(devices) == 56 and {d.mig_profile for d in devices} == {"1g.10gb"}
    assert [d.holder.pod for d in devices if d.holder] == ["a", "a"]
    assert len({d.key for d in devices}) == 56


def test_hyperpod_health_badges():
    broken = node_gpus(node("b", {"nvidia.com/gpu.count": "8",
                                  "sagemaker.amazonaws.com/node-health-status": "UnschedulablePendingReboot",
                                  "sagemaker.amazonaws.com/deep-health-check-status": "InProgress",
                                  "sagemaker.amazonaws.com/fault-type": "NvidiaGPUXidError"},
                           {"nvidia.com/gpu": "8"}))
    assert broken.badges == ["UnschedulablePendingReboot", "DeepHealthCheckInProgress", "NvidiaGPUXidError"]
