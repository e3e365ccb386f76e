"""RBAC: ask the server what the user may do (SelfSubjectAccessReview) before doing it."""

from __future__ import annotations

import asyncio

from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import ResourceKind

REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


async def can_i(connection: ClusterConnection, verb: str, resource: str, group: str = "",
                namespace: str | None = None, subresource: str | None = None) -> bool:
    """The server's answer for one verb; True when the server cannot answer (the request itself then tells)."""
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    try:
        review = await connection.request("POST", REVIEW_PATH, body=body)
    except ApiError as exc:
        if exc.status in (403, 404):
            return True
        raise
    return bool(((review or {}).get("status") or {}).get("allowed"))


async def can_list_watch(connection: ClusterConnection, kind: ResourceKind, namespace: str | None) -> bool:
    answers = await asyncio.gather(
        *(can_i(connection, verb, kind.plural, kind.group, namespace if kind.namespaced else None)
          for verb in ("list", "watch")))
    return all(answers)
