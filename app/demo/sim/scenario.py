"""The scenarios: what the simulated cluster holds at the start, and what its users submit over time.

`hyperpod` (the default) is a SageMaker HyperPod EKS cluster with task governance:

- Nodes: four `ml.p5.48xlarge` (8 x H100 80GB each; one `UnschedulablePendingReplacement` after a GPU fell off
  the bus), two `ml.p5.48xlarge` partitioned with MIG under the mixed strategy (`all-1g.10gb`, and
  `mixed-2-1g.10gb-1-2g.20gb-1-3g.40gb`), two `ml.g5.12xlarge` (4 x A10G each), with HyperPod's health labels.
- Task governance: teams `research`, `nlp` and `vision` in namespaces `hyperpod-ns-<team>`, each with a LocalQueue
  and a ClusterQueue in the cohort `hyperpod-cohort`, nominal quotas per flavor with borrowing and lending limits,
  and the WorkloadPriorityClasses `inference-priority` (90), `experimentation-priority` (80), `training-priority`
  (70) and `fine-tuning-priority` (50).
- Over the first half hour (simulated before the demo opens, see `PREROLL`): a 16-GPU HyperPodPyTorchJob
  pre-training run, a PyTorchJob fine-tune that crashes once on an NCCL timeout and restarts, a Job on A10Gs, a
  sweep on MIG slices that finishes, a JobSet on MIG slices, a 24-GPU job that can never fit its team's quota,
  notebooks (one idle on a whole GPU, one stopped by a Kueue preemption), a JumpStartModel and an InferenceEndpointConfig. Ninety seconds after the
  demo opens an experimentation job preempts the fine-tune; a KServe InferenceService comes up after thirty.

`bare` has the same nodes, namespaces, queues and priority classes and every controller running, but no jobs,
spaces or endpoints: users and tests submit their own. (`empty`, the API server alone, has no simulation.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import JobHints, World

CLUSTER = "demo-hyperpod"
CLUSTER_ID = "x7k2m9q4w1ab"
COHORT = "hyperpod-cohort"
TEAMS = ("research", "nlp", "vision")
PRIORITIES = (
    ("inference-priority", 90, "Inference endpoints: never preempted by training"),
    ("experimentation-priority", 80, "Interactive experiments and evaluations"),
    ("training-priority", 70, "Training runs"),
    ("fine-tuning-priority", 50, "Fine-tuning runs: first to yield their GPUs"),
)
P5, G5 = "ml.p5.48xlarge", "ml.g5.12xlarge"
P5_MIG = "ml.p5.48xlarge-mig"
MIG_RESOURCES = ("nvidia.com/mig-1g.10gb", "nvidia.com/mig-2g.20gb", "nvidia.com/mig-3g.40gb")
PREROLL = 1800.0  # simulated seconds of history before the demo opens

KUEUE = "kueue.x-k8s.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


def namespace(team: str) -> str:
    return f"hyperpod-ns-{team}"


def local_queue(team: str) -> str:
    return f"hyperpod-ns-{team}-localqueue"


def cluster_queue(team: str) -> str:
    return f"hyperpod-ns-{team}-clusterqueue"


# --- nodes -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    instance_type: str
    group: str
    mig_config: str = ""
    health: str = "Schedulable"
    deep_health: str = "Passed"
    fault: tuple[str, str] | None = None  # (fault type, fault reason)
    xid: dict[int, int] = field(default_factory=dict)


NODES = (
    NodeSpec(P5, "p5-training"),
    NodeSpec(P5, "p5-training"),
    NodeSpec(P5, "p5-training"),
    NodeSpec(P5, "p5-training", health="UnschedulablePendingReplacement", deep_health="Failed",
             fault=("NvidiaGPUXidError", "XID79-GPUFallenOffBus"), xid={3: 79}),
    NodeSpec(P5, "p5-mig", mig_config="all-1g.10gb"),
    NodeSpec(P5, "p5-mig", mig_config="mixed-2-1g.10gb-1-2g.20gb-1-3g.40gb"),
    NodeSpec(G5, "g5-dev"),
    NodeSpec(G5, "g5-dev"),
)

_SHAPES = {
    P5: {"cpu": 192, "memory_gi": 2048, "gpus": 8, "product": "NVIDIA-H100-80GB-HBM3", "gpu_memory": 81559,
         "family": "hopper", "efa": 32},
    G5: {"cpu": 48, "memory_gi": 192, "gpus": 4, "product": "NVIDIA-A10G", "gpu_memory": 23028, "family": "ampere", "efa": 0},
}


def node_object(world: World, index: int, spec: NodeSpec) -> dict[str, Any]:
    from .gpus import mig_layout, profile_memory_mib

    shape = _SHAPES[spec.instance_type]
    instance = "i-0" + world.rng.hex(16)
    name = f"hyperpod-{instance}"
    zone = "us-west-2b"
    ip = f"10.1.{16 + index * 8}.{world.rng.randint(10, 240)}"
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": spec.instance_type,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": spec.instance_type,
        "topology.kubernetes.io/region": "us-west-2",
        "topology.kubernetes.io/zone": zone,
        "sagemaker.amazonaws.com/cluster-name": CLUSTER,
        "sagemaker.amazonaws.com/compute-type": "hyperpod",
        "sagemaker.amazonaws.com/instance-group-name": spec.group,
        "sagemaker.amazonaws.com/node-health-status": spec.health,
        "sagemaker.amazonaws.com/deep-health-check-status": spec.deep_health,
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": shape["product"],
        "nvidia.com/gpu.count": str(shape["gpus"]),
        "nvidia.com/gpu.memory": str(shape["gpu_memory"]),
        "nvidia.com/gpu.family": shape["family"],
        "nvidia.com/mig.capable": "true" if spec.instance_type == P5 else "false",
    }
    if spec.fault:
        labels["sagemaker.amazonaws.com/fault-type"] = spec.fault[0]
        labels["sagemaker.amazonaws.com/fault-reason"] = spec.fault[1]
    capacity = {
        "cpu": str(shape["cpu"]),
        "memory": f"{shape['memory_gi'] * 1024 * 1024}Ki",
        "ephemeral-storage": "3905110864Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "737" if spec.instance_type == P5 else "234",
    }
    if shape["efa"]:
        capacity["vpc.amazonaws.com/efa"] = str(shape["efa"])
    if spec.mig_config:
        labels["nvidia.com/mig.strategy"] = "mixed"
        labels["nvidia.com/mig.config"] = spec.mig_config
        labels["nvidia.com/mig.config.state"] = "success"
        capacity["nvidia.com/gpu"] = "0"
        for profile, count in mig_layout(spec.mig_config):
            total = count * shape["gpus"]
            labels[f"nvidia.com/mig-{profile}.count"] = str(total)
            labels[f"nvidia.com/mig-{profile}.memory"] = str(profile_memory_mib(profile))
            capacity[f"nvidia.com/mig-{profile}"] = str(total)
    else:
        if spec.instance_type == P5:
            labels["nvidia.com/mig.config"] = "all-disabled"
            labels["nvidia.com/mig.config.state"] = "success"
        capacity["nvidia.com/gpu"] = str(shape["gpus"])
    allocatable = dict(capacity)
    allocatable["cpu"] = f"{shape['cpu'] * 1000 - 560}m"
    allocatable["memory"] = f"{shape['memory_gi'] * 1024 * 1024 - 5_000_000}Ki"
    node_spec: dict[str, Any] = {"providerID": f"aws:///{zone}/sagemaker/cluster/hyperpod-{CLUSTER_ID}-{instance}"}
    stamp = world.clock.timestamp(-86400 * 3)
    conditions = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    if spec.health != "Schedulable":
        node_spec["unschedulable"] = True
        node_spec["taints"] = [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": world.clock.timestamp(-3600)},
            {"key": "sagemaker.amazonaws.com/node-health-status", "value": spec.health, "effect": "NoSchedule"},
        ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": node_spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name},
                          {"type": "InternalDNS", "address": f"ip-{ip.replace('.', '-')}.us-west-2.compute.internal"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux", "osImage": "Amazon Linux 2",
                "kernelVersion": "5.10.234-225.895.amzn2.x86_64", "containerRuntimeVersion": "containerd://1.7.27",
                "kubeletVersion": "v1.32.3-eks-473151a", "kubeProxyVersion": "v1.32.3-eks-473151a",
                "machineID": world.rng.hex(32), "systemUUID": "ec2" + world.rng.hex(5) + "-" + world.rng.hex(4) + "-" +
                world.rng.hex(4) + "-" + world.rng.hex(4) + "-" + world.rng.hex(12), "bootID": world.rng.hex(8) + "-" +
                world.rng.hex(4) + "-" + world.rng.hex(4) + "-" + world.rng.hex(4) + "-" + world.rng.hex(12),
            },
        },
    }


# --- task governance -------------------------------------------------------------------------------------------------

# Nominal quota, borrowing limit, lending limit per team and (flavor, resource); None means no limit.
QUOTAS: dict[str, dict[tuple[str, str], tuple[Any, Any, Any]]] = {
    "research": {(P5, "nvidia.com/gpu"): (16, 8, 8), (P5, "cpu"): (576, None, None), (P5, "memory"): ("6Ti", None, None),
                 (G5, "nvidia.com/gpu"): (0, 4, None), (G5, "cpu"): (0, 48, None), (G5, "memory"): ("0", "192Gi", None),
                 (P5_MIG, "nvidia.com/mig-1g.10gb"): (24, 24, None), (P5_MIG, "nvidia.com/mig-2g.20gb"): (0, 4, None),
                 (P5_MIG, "nvidia.com/mig-3g.40gb"): (4, 4, None)},
    "nlp": {(P5, "nvidia.com/gpu"): (8, 8, 8), (P5, "cpu"): (288, None, None), (P5, "memory"): ("3Ti", None, None),
            (G5, "nvidia.com/gpu"): (4, 4, 2), (G5, "cpu"): (48, 48, None), (G5, "memory"): ("192Gi", "192Gi", None),
            (P5_MIG, "nvidia.com/mig-1g.10gb"): (24, 24, None), (P5_MIG, "nvidia.com/mig-2g.20gb"): (4, 4, None),
            (P5_MIG, "nvidia.com/mig-3g.40gb"): (0, 4, None)},
    "vision": {(P5, "nvidia.com/gpu"): (8, 8, 4), (P5, "cpu"): (288, None, None), (P5, "memory"): ("3Ti", None, None),
               (G5, "nvidia.com/gpu"): (4, 4, 2), (G5, "cpu"): (48, 48, None), (G5, "memory"): ("192Gi", "192Gi", None),
               (P5_MIG, "nvidia.com/mig-1g.10gb"): (24, 24, None), (P5_MIG, "nvidia.com/mig-2g.20gb"): (4, 4, None),
               (P5_MIG, "nvidia.com/mig-3g.40gb"): (4, 4, None)},
}


def _quota(flavor: str, resources: tuple[str, ...], team: str) -> dict[str, Any]:
    entries = []
    for resource in resources:
        nominal, borrowing, lending = QUOTAS[team][(flavor, resource)]
        entry: dict[str, Any] = {"name": resource, "nominalQuota": nominal}
        if borrowing is not None:
            entry["borrowingLimit"] = borrowing
        if lending is not None:
            entry["lendingLimit"] = lending
        entries.append(entry)
    return {"name": flavor, "resources": entries}


def governance_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for name, value, description in PRIORITIES:
        objects.append({"apiVersion": KUEUE, "kind": "WorkloadPriorityClass", "metadata": {"name": name},
                        "value": value, "description": description})
    for flavor, labels in ((P5, {"node.kubernetes.io/instance-type": P5}), (G5, {"node.kubernetes.io/instance-type": G5}),
                           (P5_MIG, {"node.kubernetes.io/instance-type": P5, "nvidia.com/mig.strategy": "mixed"})):
        objects.append({"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": flavor},
                        "spec": {"nodeLabels": labels}})
    core = ("cpu", "memory", "nvidia.com/gpu")
    for team in TEAMS:
        ns = namespace(team)
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"sagemaker.amazonaws.com/quota-allocation-team": team}}})
        objects.append({
            "apiVersion": KUEUE,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue(team), "labels": {"sagemaker.amazonaws.com/quota-allocation-team": team}},
            "spec": {
                "cohort": COHORT,
                "cohortName": COHORT,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "queueingStrategy": "BestEffortFIFO",
                "flavorFungibility": {"whenCanBorrow": "Borrow", "whenCanPreempt": "TryNextFlavor"},
                "preemption": {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any",
                               "borrowWithinCohort": {"policy": "Never"}},
                "resourceGroups": [
                    {"coveredResources": list(core), "flavors": [_quota(P5, core, team), _quota(G5, core, team)]},
                    {"coveredResources": list(MIG_RESOURCES), "flavors": [_quota(P5_MIG, MIG_RESOURCES, team)]},
                ],
                "stopPolicy": "None",
            },
        })
        objects.append({"apiVersion": KUEUE, "kind": "LocalQueue",
                        "metadata": {"name": local_queue(team), "namespace": ns},
                        "spec": {"clusterQueue": cluster_queue(team)}})
    objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "jupyter-k8s-system"}})
    for name, display, image, app in (
        ("sagemaker-jupyter-template", "SageMaker JupyterLab", "public.ecr.aws/sagemaker/sagemaker-distribution:2.4-gpu", "jupyterlab"),
        ("sagemaker-code-editor-template", "SageMaker Code Editor", "public.ecr.aws/sagemaker/sagemaker-distribution:2.4-cpu", "code-editor"),
    ):
        objects.append({
            "apiVersion": "workspace.jupyter.org/v1alpha1",
            "kind": "WorkspaceTemplate",
            "metadata": {"name": name, "namespace": "jupyter-k8s-system"},
            "spec": {
                "displayName": display, "appType": app, "defaultImage": image, "allowedImages": [image],
                "allowCustomImages": False,
                "defaultResources": {"requests": {"cpu": "2", "memory": "8Gi"}},
                "resourceBounds": {"resources": {"cpu": {"min": "1", "max": "16"}, "memory": {"min": "2Gi", "max": "128Gi"},
                                                 "nvidia.com/gpu": {"min": "0", "max": "1"}}},
                "primaryStorage": {"defaultSize": "20Gi", "minSize": "5Gi", "maxSize": "200Gi"},
                "defaultIdleShutdown": {"enabled": True, "idleTimeoutInMinutes": 120},
                "defaultAccessType": "OwnerOnly",
            },
        })
    return objects


# --- workloads of the hyperpod scenario -----------------------------------------------------------------------------


def _container(name: str, image: str, command: list[str], requests: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    gpu_limits = {k: v for k, v in requests.items() if k.startswith("nvidia.com/")}
    container: dict[str, Any] = {"name": name, "image": image, "command": command,
                                 "resources": {"requests": requests, **({"limits": gpu_limits} if gpu_limits else {})}}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return container


def _queued(team: str, name: str, priority: str, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace(team),
            "labels": {QUEUE_LABEL: local_queue(team), PRIORITY_LABEL: priority, **(extra_labels or {})}}


TRAIN_IMAGE = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker"
P5_SELECTOR = {"node.kubernetes.io/instance-type": P5}


def hpjob(team: str, name: str, priority: str, replicas: int, gpus: int, args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "sagemaker.amazonaws.com/v1",
        "kind": "HyperPodPyTorchJob",
        "metadata": _queued(team, name, priority),
        "spec": {
            "nprocPerNode": str(gpus),
            "runPolicy": {"cleanPodPolicy": "None", "jobMaxRetryCount": 3, "ttlSecondsAfterFinished": 86400,
                          "logMonitoringConfiguration": [{"name": "JobHangingDetection", "logPattern": r".*step (\d+).*",
                                                          "expectedRecurringFrequencyInSeconds": 600}]},
            "replicaSpecs": [{
                "name": "pods",
                "replicas": replicas,
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "nodeSelector": dict(P5_SELECTOR),
                        "containers": [_container("pytorch-job-container", TRAIN_IMAGE, ["hyperpodrun", "--nnodes", str(replicas),
                                                  "--nproc-per-node", str(gpus), "/workspace/train.py", *args],
                                                  {"nvidia.com/gpu": gpus, "cpu": "180", "memory": "1800Gi"})],
                    },
                },
            }],
        },
    }


def pytorchjob(team: str, name: str, priority: str, workers: int, gpus: int, args: list[str]) -> dict[str, Any]:
    def replica(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": {
            "nodeSelector": dict(P5_SELECTOR),
            "containers": [_container("pytorch", TRAIN_IMAGE, ["torchrun", f"--nproc-per-node={gpus}", "/workspace/sft.py", *args],
                                      {"nvidia.com/gpu": gpus, "cpu": "90", "memory": "900Gi"})]}}}

    specs = {"Master": replica(1)}
    if workers:
        specs["Worker"] = replica(workers)
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": _queued(team, name, priority),
            "spec": {"runPolicy": {"suspend": True, "cleanPodPolicy": "None"}, "nprocPerNode": str(gpus), "pytorchReplicaSpecs": specs}}


def batch_job(team: str, name: str, priority: str, pods: int, requests: dict[str, Any], selector: dict[str, str],
              command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _queued(team, name, priority),
            "spec": {"parallelism": pods, "completions": pods, "completionMode": "Indexed", "suspend": True, "backoffLimit": 4,
                     "template": {"spec": {"restartPolicy": "OnFailure", "nodeSelector": selector,
                                           "containers": [_container("trainer", TRAIN_IMAGE, command, requests)]}}}}


def jobset(team: str, name: str, priority: str, replicas: int, requests: dict[str, Any], command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": _queued(team, name, priority),
            "spec": {"suspend": True, "replicatedJobs": [{"name": "trainer", "replicas": replicas, "template": {"spec": {
                "parallelism": 1, "completions": 1, "backoffLimit": 0,
                "template": {"spec": {"restartPolicy": "Never",
                                      "containers": [_container("trainer", TRAIN_IMAGE, command, requests)]}}}}}]}}


def workspace(team: str, name: str, display: str, owner: str, *, running: bool, resources: dict[str, Any],
              node_selector: dict[str, str] | None = None, template: str = "sagemaker-jupyter-template",
              app_type: str = "jupyterlab") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "displayName": display, "appType": app_type, "desiredStatus": "Running" if running else "Stopped",
        "image": "public.ecr.aws/sagemaker/sagemaker-distribution:2.4-gpu", "ownershipType": "OwnerOnly",
        "accessType": "OwnerOnly", "templateRef": {"name": template, "namespace": "jupyter-k8s-system"},
        "idleShutdown": {"enabled": True, "idleTimeoutInMinutes": 240},
        "resources": resources, "storage": {"size": "50Gi", "mountPath": "/home/sagemaker-user"},
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "namespace": namespace(team),
                         "labels": {QUEUE_LABEL: local_queue(team), PRIORITY_LABEL: "experimentation-priority",
                                    "workspace.jupyter.org/template-name": template},
                         "annotations": {"workspace.jupyter.org/created-by": owner}},
            "spec": spec}


def preempted(obj: dict[str, Any]) -> dict[str, Any]:
    """A Workspace that Kueue preempted before the demo opened: jupyter-k8s stopped it and noted why."""
    from .workspaces import PREEMPTED_REASON, PREEMPTION_ANNOTATION

    obj["metadata"]["annotations"][PREEMPTION_ANNOTATION] = PREEMPTED_REASON
    return obj


@dataclass
class Submission:
    at: float
    make: Callable[[], dict[str, Any]]
    hints: JobHints | None = None


def hyperpod_timeline() -> list[Submission]:
    g5 = {"node.kubernetes.io/instance-type": G5}
    return [
        Submission(0, lambda: hpjob("research", "llama3-70b-pretrain", "training-priority", 2, 8,
                                    ["--model", "llama-3-70b", "--max-steps", "20000"]),
                   JobHints(total_steps=20000, step_seconds=6.0, model="llama-3-70b", learning_rate=1.5e-4, warmup_steps=200,
                            eval_every=100, checkpoint_every=100, initial_loss=11.2, final_loss=1.65,
                            tokens_per_step=96 * 1024, extra={"dataset": "fineweb-edu-350B", "global_batch_size": 24})),
        Submission(60, lambda: pytorchjob("nlp", "mistral-7b-sft", "fine-tuning-priority", 1, 4,
                                          ["--model", "mistral-7b-v0.3", "--max-steps", "3000"]),
                   JobHints(total_steps=3000, step_seconds=3.0, fail_at_step=150, model="mistral-7b-v0.3", learning_rate=2e-5,
                            warmup_steps=60, eval_every=50, checkpoint_every=50, initial_loss=1.9, final_loss=0.92,
                            tokens_per_step=224 * 1024, extra={"dataset": "ultrachat-200k"})),
        Submission(120, lambda: batch_job("vision", "vit-h-finetune", "training-priority", 2,
                                          {"nvidia.com/gpu": 2, "cpu": "20", "memory": "80Gi"}, g5,
                                          ["torchrun", "--nproc-per-node=2", "/workspace/finetune_vit.py", "--max-steps", "1200"]),
                   JobHints(total_steps=1200, step_seconds=2.5, model="vit-huge-patch14", learning_rate=5e-5, warmup_steps=40,
                            eval_every=60, checkpoint_every=100, initial_loss=6.9, final_loss=0.71, tokens_per_step=48 * 1024,
                            extra={"dataset": "imagenet-21k"})),
        Submission(200, lambda: pytorchjob("vision", "sam2-hiera-pretrain", "training-priority", 2, 8,
                                           ["--model", "sam2-hiera-large", "--max-steps", "50000"])),
        Submission(300, lambda: batch_job("nlp", "bert-ner-sweep", "experimentation-priority", 4,
                                          {"nvidia.com/mig-1g.10gb": 1, "cpu": "4", "memory": "32Gi"},
                                          {"nvidia.com/mig.strategy": "mixed"},
                                          ["python", "/workspace/ner_sweep.py", "--max-steps", "400"]),
                   JobHints(total_steps=400, step_seconds=2.0, model="bert-large-cased", learning_rate=3e-5, warmup_steps=20,
                            eval_every=40, checkpoint_every=100, initial_loss=2.4, final_loss=0.18, tokens_per_step=64 * 1024,
                            extra={"dataset": "conll2003"})),
        Submission(400, lambda: jobset("research", "whisper-distill", "fine-tuning-priority", 2,
                                       {"nvidia.com/mig-3g.40gb": 1, "cpu": "16", "memory": "120Gi"},
                                       ["python", "/workspace/distill.py", "--max-steps", "6000"]),
                   JobHints(total_steps=6000, step_seconds=4.0, model="whisper-large-v3", learning_rate=1e-4, warmup_steps=100,
                            eval_every=100, checkpoint_every=200, initial_loss=4.1, final_loss=1.05, tokens_per_step=512 * 1024,
                            extra={"dataset": "librispeech-960h"})),
        Submission(500, lambda: workspace("nlp", "alice-notebook", "Alice's GPU notebook", "alice@example.com", running=True,
                                          resources={"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                                                     "limits": {"nvidia.com/gpu": "1"}}, node_selector=g5)),
        Submission(520, lambda: workspace("vision", "bob-mig-lab", "Bob's MIG lab", "bob@example.com", running=True,
                                          resources={"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-2g.20gb": "1"},
                                                     "limits": {"nvidia.com/mig-2g.20gb": "1"}},
                                          node_selector={"nvidia.com/mig.strategy": "mixed"})),
        Submission(540, lambda: workspace("research", "carol-code-editor", "Carol's Code Editor", "carol@example.com",
                                          running=False, resources={"requests": {"cpu": "2", "memory": "8Gi"}},
                                          template="sagemaker-code-editor-template", app_type="code-editor")),
        Submission(560, lambda: workspace("research", "dan-eda", "Dan's data exploration", "dan@example.com", running=True,
                                          resources={"requests": {"cpu": "2", "memory": "8Gi"}}, node_selector=g5)),
        Submission(580, lambda: preempted(workspace(
            "nlp", "erin-lora-debug", "Erin's LoRA debugging", "erin@example.com", running=False,
            resources={"requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
                       "limits": {"nvidia.com/gpu": "1"}}, node_selector=g5))),
        Submission(600, lambda: {
            "apiVersion": "inference.sagemaker.aws.amazon.com/v1", "kind": "JumpStartModel",
            "metadata": {"name": "deepseek-r1-distill", "namespace": namespace("nlp"),
                         "labels": {"app.kubernetes.io/name": "deepseek-llm-r1-distill-qwen-1-5b-app"}},
            "spec": {"sageMakerEndpoint": {"name": "deepseek-r1-distill-ep"},
                     "model": {"modelHubName": "SageMakerPublicHub", "modelId": "deepseek-llm-r1-distill-qwen-1-5b",
                               "modelVersion": "2.0.4"},
                     "server": {"instanceType": G5, "maxAutoScaleReplicas": 1, "minAutoScaleReplicas": 1},
                     "maxDeployTimeInSeconds": 1800}}),
        Submission(700, lambda: {
            "apiVersion": "inference.sagemaker.aws.amazon.com/v1", "kind": "InferenceEndpointConfig",
            "metadata": {"name": "llama3-8b-instruct", "namespace": namespace("nlp")},
            "spec": {"modelName": "llama3-8b-instruct", "endpointName": "llama3-8b-instruct-ep", "instanceType": G5,
                     "modelSourceConfig": {"modelSourceType": "s3", "s3Storage": {"bucketName": "demo-models", "region": "us-west-2"},
                                           "modelLocation": "llama-3-8b-instruct", "prefetchEnabled": True},
                     "worker": {"image": "763104351884.dkr.ecr.us-west-2.amazonaws.com/huggingface-pytorch-tgi-inference:2.4.0-tgi2.3.1-gpu-py311-cu124-ubuntu22.04-v2.0",
                                "resources": {"requests": {"nvidia.com/gpu": 2, "cpu": "16", "memory": "64Gi"},
                                              "limits": {"nvidia.com/gpu": 2}},
                                "modelInvocationPort": {"containerPort": 8080, "name": "http"},
                                "modelVolumeMount": {"name": "model-weights", "mountPath": "/opt/ml/model"}}}}),
        Submission(PREROLL + 30, lambda: {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "clip-vit-l", "namespace": namespace("vision"),
                         "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
            "spec": {"predictor": {"minReplicas": 1, "nodeSelector": {"nvidia.com/mig.strategy": "mixed"},
                                   "model": {"modelFormat": {"name": "huggingface"},
                                             "storageUri": "s3://demo-models/clip-vit-large-patch14",
                                             "resources": {"requests": {"nvidia.com/mig-3g.40gb": "1", "cpu": "4", "memory": "16Gi"},
                                                           "limits": {"nvidia.com/mig-3g.40gb": "1"}}}}}}),
        Submission(PREROLL + 90, lambda: hpjob("nlp", "llama3-8b-dpo", "experimentation-priority", 1, 8,
                                               ["--model", "llama-3-8b", "--max-steps", "900"]),
                   JobHints(total_steps=900, step_seconds=4.0, model="llama-3-8b", learning_rate=5e-7, warmup_steps=30,
                            eval_every=50, checkpoint_every=100, initial_loss=0.69, final_loss=0.38, tokens_per_step=128 * 1024,
                            extra={"dataset": "hh-rlhf", "beta": 0.1})),
    ]


# --- populating a world ----------------------------------------------------------------------------------------------


def populate_cluster(world: World) -> list[dict[str, Any]]:
    """Nodes, namespaces, flavors, queues, priority classes and templates (the `bare` scenario)."""
    from .gpus import DeviceAllocator

    nodes = []
    for index, spec in enumerate(NODES):
        node = world.put(node_object(world, index, spec))
        if node is not None:
            nodes.append(node)
    if world.devices is None:
        world.devices = DeviceAllocator()
    for node, spec in zip(nodes, NODES, strict=False):
        world.devices.sync_node(node)
        inventory = world.devices.nodes.get(node["metadata"]["name"])
        if inventory is not None:
            inventory.xid.update(spec.xid)
    for obj in governance_objects():
        world.put(obj)
    return nodes


def schedule_timeline(world: World, timeline: list[Submission]) -> None:
    for submission in timeline:
        def submit(submission: Submission = submission) -> None:
            obj = submission.make()
            meta = obj["metadata"]
            if submission.hints is not None:
                world.hints[(meta["namespace"], meta["name"])] = submission.hints
            world.create(obj)

        world.after(submission.at, submit)


SCENARIOS = ("hyperpod", "bare", "empty")
DEFAULT_PREROLL = {"hyperpod": PREROLL, "bare": 0.0, "empty": 0.0}


def populate(world: World, scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if scenario == "empty":
        return
    populate_cluster(world)
    if scenario == "hyperpod":
        schedule_timeline(world, hyperpod_timeline())
