"""The kinds hyperdesk reads, the API versions it understands for each, and what of each object it keeps.

A store keeps a trimmed copy of every object: metadata that identifies and links it, and the spec and status
fields the panes show. Managed fields, last-applied annotations and pod templates never reach memory; the YAML
view fetches the full object on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KEEP = True
"""In a trim spec: keep this value whole."""

TrimSpec = dict[str, Any]
"""field -> KEEP, a nested TrimSpec, or a one-element list holding the TrimSpec applied to each list item."""

DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})

METADATA: TrimSpec = {
    "name": KEEP, "namespace": KEEP, "uid": KEEP, "resourceVersion": KEEP, "generation": KEEP,
    "creationTimestamp": KEEP, "deletionTimestamp": KEEP, "labels": KEEP, "annotations": KEEP,
    "ownerReferences": KEEP, "generateName": KEEP, "finalizers": KEEP,
}

CONTAINER: TrimSpec = {"name": KEEP, "image": KEEP, "resources": KEEP, "ports": KEEP}
POD_TEMPLATE: TrimSpec = {
    "metadata": {"labels": KEEP, "annotations": KEEP},
    "spec": {"containers": [CONTAINER], "nodeSelector": KEEP, "priorityClassName": KEEP},
}


@dataclass(frozen=True)
class ResourceKind:
    """A kind hyperdesk reads. `versions` are in order of preference; discovery picks the first one served."""

    name: str
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool
    trim: TrimSpec

    def path(self, version: str, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/api/{version}" if not self.group else f"/apis/{self.group}/{version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def _kind(name: str, group: str, versions: str, plural: str, kind: str, namespaced: bool = True,
          spec: TrimSpec | Any = KEEP, status: TrimSpec | Any = KEEP, **extra: Any) -> ResourceKind:
    trim: TrimSpec = {"metadata": METADATA, "spec": spec, "status": status, **extra}
    return ResourceKind(name, group, tuple(versions.split()), plural, kind, namespaced, trim)


KUEUE = "kueue.x-k8s.io"

KINDS: dict[str, ResourceKind] = {
    k.name: k
    for k in (
        _kind("namespaces", "", "v1", "namespaces", "Namespace", namespaced=False, spec={}, status={"phase": KEEP}),
        _kind("nodes", "", "v1", "nodes", "Node", namespaced=False,
              spec={"unschedulable": KEEP, "taints": KEEP, "providerID": KEEP},
              status={"capacity": KEEP, "allocatable": KEEP, "conditions": KEEP, "nodeInfo": KEEP}),
        _kind("pods", "", "v1", "pods", "Pod",
              spec={"nodeName": KEEP, "containers": [CONTAINER], "priorityClassName": KEEP,
                    "schedulerName": KEEP},
              status={"phase": KEEP, "reason": KEEP, "message": KEEP, "conditions": KEEP, "startTime": KEEP,
                      "podIP": KEEP,
                      "containerStatuses": [{"name": KEEP, "ready": KEEP, "restartCount": KEEP, "state": KEEP,
                                             "lastState": KEEP}]}),
        _kind("events", "", "v1", "events", "Event", spec={}, status={},
              involvedObject=KEEP, reason=KEEP, message=KEEP, type=KEEP, count=KEEP, lastTimestamp=KEEP,
              firstTimestamp=KEEP, eventTime=KEEP, source=KEEP, reportingComponent=KEEP),
        _kind("services", "", "v1", "services", "Service", spec={"ports": KEEP, "selector": KEEP, "type": KEEP},
              status={}),
        _kind("jobs", "batch", "v1", "jobs", "Job",
              spec={"parallelism": KEEP, "completions": KEEP, "suspend": KEEP, "backoffLimit": KEEP,
                    "template": POD_TEMPLATE}),
        _kind("deployments", "apps", "v1", "deployments", "Deployment",
              spec={"replicas": KEEP, "selector": KEEP, "template": POD_TEMPLATE}),
        _kind("workloads", KUEUE, "v1beta2 v1beta1", "workloads", "Workload",
              spec={"queueName": KEEP, "priorityClassName": KEEP, "priorityClassRef": KEEP, "priority": KEEP,
                    "active": KEEP, "priorityClassSource": KEEP,
                    "podSets": [{"name": KEEP, "count": KEEP, "template": POD_TEMPLATE}]}),
        _kind("clusterqueues", KUEUE, "v1beta2 v1beta1", "clusterqueues", "ClusterQueue", namespaced=False),
        _kind("localqueues", KUEUE, "v1beta2 v1beta1", "localqueues", "LocalQueue"),
        _kind("workloadpriorityclasses", KUEUE, "v1beta2 v1beta1", "workloadpriorityclasses",
              "WorkloadPriorityClass", namespaced=False, value=KEEP, description=KEEP),
        _kind("resourceflavors", KUEUE, "v1beta2 v1beta1", "resourceflavors", "ResourceFlavor", namespaced=False),
        _kind("hyperpodpytorchjobs", "sagemaker.amazonaws.com", "v1", "hyperpodpytorchjobs", "HyperPodPyTorchJob",
              spec={"nprocPerNode": KEEP, "runPolicy": KEEP,
                    "replicaSpecs": [{"name": KEEP, "replicas": KEEP, "maxReplicas": KEEP, "spares": KEEP,
                                      "template": POD_TEMPLATE}]}),
        _kind("pytorchjobs", "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob",
              spec={"runPolicy": KEEP, "nprocPerNode": KEEP, "pytorchReplicaSpecs": KEEP}),
        _kind("jobsets", "jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet",
              spec={"suspend": KEEP, "replicatedJobs": KEEP}),
        _kind("workspaces", "workspace.jupyter.org", "v1alpha1", "workspaces", "Workspace"),
        _kind("workspacetemplates", "workspace.jupyter.org", "v1alpha1", "workspacetemplates", "WorkspaceTemplate"),
        _kind("notebooks", "kubeflow.org", "v1 v1beta1", "notebooks", "Notebook",
              spec={"template": {"spec": {"containers": [CONTAINER]}}}),
        _kind("jumpstartmodels", "inference.sagemaker.aws.amazon.com", "v1", "jumpstartmodels", "JumpStartModel"),
        _kind("inferenceendpointconfigs", "inference.sagemaker.aws.amazon.com", "v1", "inferenceendpointconfigs",
              "InferenceEndpointConfig"),
        _kind("inferenceservices", "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"),
    )
}


def kubectl_names(stores: Iterable[str], short: Mapping[str, str]) -> dict[str, str]:
    """The names kubectl takes for these kinds, each -> its store name: plural, singular and lower-case Kind, each
    also with its group (`pytorchjobs`, `pytorchjob`, `pytorchjobs.kubeflow.org`, `pytorchjob.kubeflow.org`), and
    the `short` names (`isvc`) on top."""
    names: dict[str, str] = {}
    for store in stores:
        kind = KINDS[store]
        for name in (kind.plural, kind.plural.removesuffix("s"), kind.kind.lower()):
            names[name] = store
            if kind.group:
                names[f"{name}.{kind.group}"] = store
    return {**names, **short}


def split_kind_ref(ref: str, names: Mapping[str, str]) -> tuple[str | None, str]:
    """`KIND/NAME` -> (the store `names` gives KIND, case aside; NAME), `NAME` -> (None, NAME); KeyError(KIND) when
    `names` lacks KIND."""
    kind, slash, name = ref.rpartition("/")
    if not slash:
        return None, ref
    store = names.get(kind.lower())
    if store is None:
        raise KeyError(kind)
    return store, name


def trim(obj: Any, spec: TrimSpec | Any) -> Any:
    """The parts of `obj` that `spec` names (see TrimSpec); values not present are left out, not invented."""
    if spec is KEEP or not isinstance(obj, (dict, list)):
        return obj
    if isinstance(spec, list):
        return [trim(item, spec[0]) for item in obj] if isinstance(obj, list) else obj
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, sub in spec.items():
        if key in obj:
            out[key] = trim(obj[key], sub)
    annotations = out.get("annotations") if spec is METADATA else None
    if annotations and DROPPED_ANNOTATIONS.intersection(annotations):
        out["annotations"] = {k: v for k, v in annotations.items() if k not in DROPPED_ANNOTATIONS}
    return out


def trim_object(kind: ResourceKind, obj: dict[str, Any]) -> dict[str, Any]:
    return trim(obj, kind.trim)


def object_key(obj: dict[str, Any]) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects: the key of every store."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
