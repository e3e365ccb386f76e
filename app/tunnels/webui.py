"""A jupyter-k8s space's web UI URL, from a `WorkspaceConnection` (create-only; its reply's status carries the URL).

The URL may carry a token: callers show it to the user but never log it.
"""

from __future__ import annotations

from typing import Any

from ..cluster.connection import ApiError
from .targets import DNS_LABEL, DNS_SUBDOMAIN, TargetError

GROUP = "connection.workspace.jupyter.org"
VERSION = "v1alpha1"
PLURAL = "workspaceconnections"
NOT_SERVED = "this cluster does not serve WorkspaceConnection (connection.workspace.jupyter.org)"


def connection_path(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


async def web_ui_url(connection: Any, namespace: str, space: str, kind: str = "web-ui") -> str:
    """POST a WorkspaceConnection for `space` and return its `status.workspaceConnectionUrl`. Raises TargetError
    with a one-line message when the cluster refuses (exit_code 2 for a bad name)."""
    if not DNS_SUBDOMAIN.match(space or "") or not DNS_LABEL.match(namespace or ""):
        raise TargetError(f"invalid space name: {namespace}/{space}", exit_code=2)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkspaceConnection",
        "metadata": {"namespace": namespace},
        "spec": {"workspaceName": space, "workspaceConnectionType": kind},
    }
    try:
        reply = await connection.request("POST", connection_path(namespace), body=body)
    except ApiError as exc:
        details = (exc.body or {}).get("details") if isinstance(exc.body, dict) else None
        if exc.status == 404 and not (details or {}).get("name"):
            raise TargetError(NOT_SERVED) from None  # no such resource type, not "no such workspace"
        raise TargetError(f"{namespace}/{space}: {exc}") from None
    url = ((reply or {}).get("status") or {}).get("workspaceConnectionUrl") if isinstance(reply, dict) else None
    if not url or not isinstance(url, str):
        raise TargetError(f"{namespace}/{space}: the WorkspaceConnection reply carries no URL")
    return url
