"""The Kueue visibility API: pending workloads of a ClusterQueue or LocalQueue, with their queue positions.

    GET /apis/visibility.kueue.x-k8s.io/{v1beta1,v1beta2}/clusterqueues/<cq>/pendingworkloads
    GET /apis/visibility.kueue.x-k8s.io/{v1beta1,v1beta2}/namespaces/<ns>/localqueues/<lq>/pendingworkloads

Positions are computed from the Workloads in the store as Kueue orders its queues: a workload is pending while it
is active, unfinished and holds no quota reservation; the order is priority (highest first), then creation time,
then name. `limit` and `offset` page through the result as in Kueue.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .discovery import Subresource
from .kinds import Kind, KindVersion
from .requestinfo import RequestInfo
from .server import ApiServer
from .store import Store, encode

GROUP = "visibility.kueue.x-k8s.io"
VERSIONS = ("v1beta1", "v1beta2")
KUEUE = "kueue.x-k8s.io"

# The visibility group's resources only exist to carry the pendingworkloads subresource.
VISIBILITY_KINDS = (
    Kind(
        GROUP,
        "ClusterQueue",
        "clusterqueues",
        tuple(KindVersion(v) for v in VERSIONS),
        namespaced=False,
        verbs=(),
        tracks_generation=False,
    ),
    Kind(
        GROUP, "LocalQueue", "localqueues", tuple(KindVersion(v) for v in VERSIONS), verbs=(), tracks_generation=False
    ),
)


def _true(conditions: list[dict[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def pending_order(workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pending workloads in queue order (see the module docstring)."""
    pending = []
    for workload in workloads:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        conditions = status.get("conditions") or []
        if spec.get("active") is False or _true(conditions, "Finished") or _true(conditions, "QuotaReserved"):
            continue
        if status.get("admission"):
            continue
        pending.append(workload)
    return sorted(
        pending,
        key=lambda w: (
            -int((w.get("spec") or {}).get("priority") or 0),
            w["metadata"].get("creationTimestamp", ""),
            w["metadata"].get("name", ""),
        ),
    )


class Visibility:
    def __init__(self, store: Store) -> None:
        self._store = store

    def install(self, api: ApiServer) -> None:
        for kind in VISIBILITY_KINDS:
            self._store.registry.register(kind)
            api.register_subresource(
                Subresource(GROUP, kind.plural, "pendingworkloads", ("get",), "PendingWorkloadsSummary"), self._handle
            )

    def _kueue(self, kind: str) -> Kind:
        found = self._store.registry.by_kind(f"{KUEUE}/v1beta2", kind)
        if found is None:
            raise errors.resource_not_served()
        return found

    async def _handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        if request.method != "GET":
            raise errors.method_not_allowed()
        if info.tail:
            raise errors.resource_not_served()
        try:
            limit = int(request.query.get("limit", "1000"))
            offset = int(request.query.get("offset", "0"))
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        store = self._store
        if info.resource == "clusterqueues":
            if store.lookup(self._kueue("ClusterQueue"), "", info.name) is None:
                raise errors.not_found(GROUP, "clusterqueue", info.name)
            queues = {
                (s.obj["metadata"]["namespace"], s.obj["metadata"]["name"])
                for s in store.table(self._kueue("LocalQueue")).values()
                if (s.obj.get("spec") or {}).get("clusterQueue") == info.name
            }
            local_only = None
        else:
            local = store.lookup(self._kueue("LocalQueue"), info.namespace, info.name)
            if local is None:
                raise errors.not_found(GROUP, "localqueue", info.name)
            cluster_queue = (local.obj.get("spec") or {}).get("clusterQueue", "")
            queues = {
                (s.obj["metadata"]["namespace"], s.obj["metadata"]["name"])
                for s in store.table(self._kueue("LocalQueue")).values()
                if (s.obj.get("spec") or {}).get("clusterQueue") == cluster_queue
            }
            local_only = (info.namespace, info.name)
        workloads = [
            s.obj
            for s in store.table(self._kueue("Workload")).values()
            if (s.obj["metadata"].get("namespace"), (s.obj.get("spec") or {}).get("queueName")) in queues
        ]
        items = []
        per_queue: dict[tuple[str, str], int] = {}
        for position, workload in enumerate(pending_order(workloads)):
            meta = workload["metadata"]
            queue = (meta["namespace"], workload["spec"]["queueName"])
            local_position = per_queue.get(queue, 0)
            per_queue[queue] = local_position + 1
            if local_only is not None and queue != local_only:
                continue
            summary_meta = {
                k: meta[k] for k in ("name", "namespace", "creationTimestamp", "ownerReferences") if k in meta
            }
            items.append(
                {
                    "metadata": summary_meta,
                    "priority": int(workload["spec"].get("priority") or 0),
                    "localQueueName": queue[1],
                    "positionInClusterQueue": position,
                    "positionInLocalQueue": local_position,
                }
            )
        body = {
            "kind": "PendingWorkloadsSummary",
            "apiVersion": f"{GROUP}/{info.version}",
            "metadata": {"creationTimestamp": None},
            "items": items[offset : offset + limit],
        }
        return web.Response(body=encode(body), content_type="application/json")
