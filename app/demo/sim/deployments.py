"""kube-controller-manager's parts the demo needs: the Deployment controller and the garbage collector.

- Deployments: `spec.replicas` pods from `spec.template`, named `<deployment>-<template hash>-<5 chars>`, labelled
  `pod-template-hash` and owned by the ReplicaSet `<deployment>-<template hash>` (ReplicaSets themselves are not
  served by the demo server); a changed template replaces the pods; `status` counts replicas, ready, available and
  updated pods and carries the `Available` and `Progressing` conditions.
- Garbage collector: an object whose owners (of a kind the demo serves) are all gone is deleted, as background
  cascading deletion does: a deleted job takes its Workload and pods with it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .base import Controller
from .objects import copy, set_condition

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Owner kinds whose absence the garbage collector can see in the cache: (group, kind).
OWNER_KINDS = {
    ("batch", "Job"), ("kubeflow.org", "PyTorchJob"), ("sagemaker.amazonaws.com", "HyperPodPyTorchJob"),
    ("jobset.x-k8s.io", "JobSet"), ("workspace.jupyter.org", "Workspace"), ("apps", "Deployment"),
    ("inference.sagemaker.aws.amazon.com", "JumpStartModel"), ("inference.sagemaker.aws.amazon.com", "InferenceEndpointConfig"),
    ("serving.kserve.io", "InferenceService"),
}
DEPENDENT_KINDS = (("v1", "Pod"), ("v1", "Service"), ("batch/v1", "Job"), ("apps/v1", "Deployment"),
                   ("kueue.x-k8s.io/v1beta1", "Workload"))
_API = {("batch", "Job"): "batch/v1", ("kubeflow.org", "PyTorchJob"): "kubeflow.org/v1",
        ("sagemaker.amazonaws.com", "HyperPodPyTorchJob"): "sagemaker.amazonaws.com/v1",
        ("jobset.x-k8s.io", "JobSet"): "jobset.x-k8s.io/v1alpha2", ("workspace.jupyter.org", "Workspace"): "workspace.jupyter.org/v1alpha1",
        ("apps", "Deployment"): "apps/v1", ("inference.sagemaker.aws.amazon.com", "JumpStartModel"): "inference.sagemaker.aws.amazon.com/v1",
        ("inference.sagemaker.aws.amazon.com", "InferenceEndpointConfig"): "inference.sagemaker.aws.amazon.com/v1",
        ("serving.kserve.io", "InferenceService"): "serving.kserve.io/v1beta1"}


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def replica_set_uid(namespace: str, name: str) -> str:
    h = hashlib.md5(f"{namespace}/{name}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class Deployments(Controller):
    name = "deployment-controller"
    watches = frozenset({("apps", "Deployment"), ("", "Pod")})

    def reconcile(self) -> None:
        world = self.world
        deployments = self.cache.all("apps/v1", "Deployment")
        owned: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for pod in self.cache.all("v1", "Pod"):
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet":
                    owned.setdefault((pod["metadata"]["namespace"], ref["name"]), []).append(pod)
        wanted_sets = set()
        now = world.clock.timestamp()
        for deployment in deployments:
            meta, spec = deployment["metadata"], deployment.get("spec") or {}
            namespace, name = meta["namespace"], meta["name"]
            template = spec.get("template") or {}
            rs_name = f"{name}-{template_hash(template)}"
            wanted_sets.add((namespace, rs_name))
            pods = [p for p in owned.get((namespace, rs_name), []) if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
            replicas = int(spec.get("replicas", 1))
            for pod in pods[replicas:]:
                world.delete(pod)
            pods = pods[:replicas]
            for _ in range(replicas - len(pods)):
                pod_meta = copy(template.get("metadata") or {})
                pod_meta["labels"] = {**(pod_meta.get("labels") or {}), "pod-template-hash": rs_name.rsplit("-", 1)[1]}
                pod_meta.update(
                    name=f"{rs_name}-{world.rng.suffix()}",
                    namespace=namespace,
                    ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                      "uid": replica_set_uid(namespace, rs_name), "controller": True, "blockOwnerDeletion": True}],
                )
                created = world.create({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": copy(template.get("spec") or {})})
                if created is not None:
                    pods.append(created)
            ready = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                               for c in (p.get("status") or {}).get("conditions") or []))
            status = copy(deployment.get("status") or {})
            status["observedGeneration"] = meta.get("generation", 1)
            status["replicas"] = len(pods)
            status["updatedReplicas"] = len(pods)
            status["readyReplicas"] = ready
            status["availableReplicas"] = ready
            if replicas - ready > 0:
                status["unavailableReplicas"] = replicas - ready
            else:
                status.pop("unavailableReplicas", None)
            for zero in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
                if not status[zero]:
                    del status[zero]
            conditions = status.setdefault("conditions", [])
            if ready >= replicas:
                set_condition(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now, style="kubeflow")
            else:
                set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now, style="kubeflow")
            set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable" if ready >= replicas else "ReplicaSetUpdated",
                          f'ReplicaSet "{rs_name}" has successfully progressed.' if ready >= replicas else f'ReplicaSet "{rs_name}" is progressing.',
                          now, style="kubeflow")
            if status != (deployment.get("status") or {}):
                updated = copy(deployment)
                updated["status"] = status
                world.put(updated)
        for (namespace, rs_name), pods in owned.items():
            if (namespace, rs_name) not in wanted_sets:
                for pod in pods:
                    world.delete(pod)


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = frozenset(OWNER_KINDS | {("", "Pod"), ("", "Service"), ("kueue.x-k8s.io", "Workload")})

    def reconcile(self) -> None:
        live: set[str] = set()
        for group, kind in OWNER_KINDS:
            live.update(o["metadata"]["uid"] for o in self.cache.all(_API[(group, kind)], kind))
        for api_version, kind in DEPENDENT_KINDS:
            for obj in self.cache.all(api_version, kind):
                refs = [r for r in obj["metadata"].get("ownerReferences") or []
                        if (r.get("apiVersion", "").rpartition("/")[0], r.get("kind")) in OWNER_KINDS]
                if refs and not any(r.get("uid") in live for r in refs):
                    self.world.delete(obj)
