"""An informer-style cache of the API objects the controllers read, fed by `Store.subscribe`.

Controllers read the cache (shared, read-only dicts: copy before changing) and write through the store's public
helpers, which apply the same validation and rules as HTTP requests. Each change marks the controllers that
watch its kind as dirty; the runner reconciles dirty controllers until the cluster settles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..apiserver import Event, Store

GroupKind = tuple[str, str]  # (API group, kind), "" for the core group

# Every kind a controller of the simulator reads, as (apiVersion it is read at, kind).
WATCHED: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("kueue.x-k8s.io/v1beta1", "Workload"),
    ("kueue.x-k8s.io/v1beta1", "ClusterQueue"),
    ("kueue.x-k8s.io/v1beta1", "LocalQueue"),
    ("kueue.x-k8s.io/v1beta1", "WorkloadPriorityClass"),
    ("kueue.x-k8s.io/v1beta1", "ResourceFlavor"),
    ("sagemaker.amazonaws.com/v1", "HyperPodPyTorchJob"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("jobset.x-k8s.io/v1alpha2", "JobSet"),
    ("workspace.jupyter.org/v1alpha1", "Workspace"),
    ("inference.sagemaker.aws.amazon.com/v1", "JumpStartModel"),
    ("inference.sagemaker.aws.amazon.com/v1", "InferenceEndpointConfig"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
)


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class ObjectCache:
    """Current objects per (group, kind), kept up to date from store events."""

    def __init__(self, store: Store, kinds: Iterable[tuple[str, str]] = WATCHED) -> None:
        self._store = store
        self._objects: dict[GroupKind, dict[tuple[str, str], dict[str, Any]]] = {}
        self._listeners: list[Callable[[GroupKind, Event], None]] = []
        self._kinds = tuple(kinds)
        self._unsubscribe = store.subscribe(self._on_event)
        for api_version, kind in self._kinds:
            table = self._objects.setdefault((group_of(api_version), kind), {})
            for obj in store.list(api_version, kind):
                meta = obj["metadata"]
                table[(meta.get("namespace", ""), meta["name"])] = obj

    def close(self) -> None:
        self._unsubscribe()

    def add_listener(self, listener: Callable[[GroupKind, Event], None]) -> None:
        self._listeners.append(listener)

    def _on_event(self, event: Event) -> None:
        group_kind = (event.kind.group, event.kind.kind)
        table = self._objects.get(group_kind)
        if table is None:
            return
        key = event.new.key
        if event.type == "DELETED":
            table.pop(key, None)
        else:
            table[key] = event.object
        for listener in self._listeners:
            listener(group_kind, event)

    def all(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind in key order (namespace, name); treat them as read-only."""
        table = self._objects.get((group_of(api_version), kind), {})
        items = sorted(table.items())
        return [obj for (ns, _), obj in items if namespace is None or ns == namespace]

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self._objects.get((group_of(api_version), kind), {}).get((namespace, name))
