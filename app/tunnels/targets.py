"""What a tunnel reaches: a space's pod port (JupyterLab / Code Editor on 8888, sshd on 22), or any pod port.

A space is a jupyter-k8s `Workspace` (its pod carries `workspace.jupyter.org/workspace-name=<name>`) or a Kubeflow
`Notebook` (its StatefulSet's pod carries `notebook-name=<name>`, and the server answers under
`/notebook/<namespace>/<name>/`). Resolution is pure: it reads objects, from the app's stores or from a few GETs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

WORKSPACE_LABEL = "workspace.jupyter.org/workspace-name"
NOTEBOOK_LABEL = "notebook-name"
IDE_PORT = 8888
SSH_PORT = 22
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
POD_OR_SERVICE = ("pod", "pods", "po", "svc", "service", "services")
"""`KIND/NAME` prefixes that name a pod or a service (as kubectl port-forward reads them), not a space's namespace."""


class TargetError(Exception):
    """The target cannot be resolved (unknown space, stopped, no pod yet, bad name); `exit_code` for the CLI."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    namespace: str
    space: str
    """The space's name (or the pod's, for a plain pod target)."""
    kind: str
    """Workspace, Notebook, Pod or Service (`space` is then the pod's or the service's name)."""
    pod: str
    port: int
    pod_ip: str | None = None
    path: str = "/"
    runs_sshd: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.space}"

    @property
    def text(self) -> str:
        return f"{self.kind.lower()} {self.key}:{self.port}"

    def on_port(self, port: int) -> "Target":
        return Target(self.namespace, self.space, self.kind, self.pod, port, self.pod_ip,
                      self.path if port == self.port else "/", self.runs_sshd)


def check_name(name: str, what: str = "name") -> str:
    """A Kubernetes object name, before it reaches a URL or a command line."""
    if not DNS_SUBDOMAIN.match(name or ""):
        raise TargetError(f"{name!r} is not a valid {what} (lowercase letters, digits, '-' and '.')", 2)
    return name


def split_ref(ref: str, default_namespace: str) -> tuple[str, str]:
    """`name` or `namespace/name` -> (namespace, name), both validated."""
    namespace, _, name = ref.rpartition("/")
    namespace = namespace or default_namespace
    if not DNS_LABEL.match(namespace):
        raise TargetError(f"{namespace!r} is not a valid namespace name", 2)
    return namespace, check_name(name, "space name")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _runs_sshd(pod: Mapping[str, Any]) -> bool:
    return any(p.get("containerPort") == SSH_PORT or p.get("name") == "ssh"
               for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or [])


def space_target(stores: Mapping[str, Mapping[str, dict]], key: str, port: int = IDE_PORT) -> Target:
    """The pod behind space `key` (`namespace/name`), from stores named `workspaces`, `notebooks` and `pods`."""
    namespace, name = split_ref(key, "default")
    workspace = (stores.get("workspaces") or {}).get(f"{namespace}/{name}")
    notebook = (stores.get("notebooks") or {}).get(f"{namespace}/{name}")
    if workspace is not None:
        kind, label, path = "Workspace", WORKSPACE_LABEL, "/"
        stopped = (workspace.get("spec") or {}).get("desiredStatus") == "Stopped"
    elif notebook is not None:
        kind, label, path = "Notebook", NOTEBOOK_LABEL, f"/notebook/{namespace}/{name}/"
        annotations = (notebook.get("metadata") or {}).get("annotations") or {}
        stopped = "kubeflow-resource-stopped" in annotations
    else:
        raise TargetError(f"no space {key} (no Workspace or Notebook of that name)", 2)
    if stopped:
        raise TargetError(f"space {key} is stopped: start it first")
    pods = [p for p in (stores.get("pods") or {}).values()
            if (p.get("metadata") or {}).get("namespace") == namespace and _labels(p).get(label) == name
            and not (p.get("metadata") or {}).get("deletionTimestamp")]
    ready = sorted((p for p in pods if _ready(p)), key=lambda p: p["metadata"]["name"])
    if not ready:
        state = "its pod is starting" if pods else "it has no pod yet"
        raise TargetError(f"space {key} is not ready: {state}")
    pod = ready[0]
    return Target(namespace, name, kind, pod["metadata"]["name"], port, (pod.get("status") or {}).get("podIP"),
                  path if port == IDE_PORT else "/", _runs_sshd(pod))


async def find_space(connection: Any, ref: str, default_namespace: str, port: int = IDE_PORT) -> Target:
    """`space_target` for the CLI: the space and its pods by a few GETs instead of watches."""
    from app.cluster.connection import ApiError

    namespace, name = split_ref(ref, default_namespace)
    stores: dict[str, dict[str, dict]] = {"workspaces": {}, "notebooks": {}, "pods": {}}
    found = None
    for store, path, label in (
        ("workspaces", f"/apis/workspace.jupyter.org/v1alpha1/namespaces/{namespace}/workspaces/{name}",
         WORKSPACE_LABEL),
        ("notebooks", f"/apis/kubeflow.org/v1/namespaces/{namespace}/notebooks/{name}", NOTEBOOK_LABEL),
    ):
        try:
            stores[store][f"{namespace}/{name}"] = await connection.request("GET", path)
        except ApiError as exc:
            if exc.status in (404, 403):
                continue
            raise TargetError(str(exc)) from None
        found = label
        break
    if found is None:
        raise TargetError(f"no space {namespace}/{name} (no Workspace or Notebook of that name)", 2)
    try:
        pods = await connection.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                        {"labelSelector": f"{found}={name}"})
    except ApiError as exc:
        raise TargetError(f"cannot list the pods of {namespace}/{name}: {exc}") from None
    stores["pods"] = {f"{namespace}/{p['metadata']['name']}": p for p in (pods or {}).get("items") or []}
    return space_target(stores, f"{namespace}/{name}", port)


def _first_ready(pods: list[dict], what: str) -> dict:
    ready = sorted((p for p in pods if _ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")),
                   key=lambda p: p["metadata"]["name"])
    if not ready:
        raise TargetError(f"{what} has no ready pod")
    return ready[0]


def service_pod_port(service: Mapping[str, Any], pod: Mapping[str, Any], port: int | None) -> int:
    """The pod port behind service port `port` (or its only port): its targetPort, by number or by name."""
    ports = (service.get("spec") or {}).get("ports") or []
    name = (service.get("metadata") or {}).get("name", "")
    chosen = next((p for p in ports if p.get("port") == port), None) if port is not None else \
        (ports[0] if len(ports) == 1 else None)
    if chosen is None:
        offered = ", ".join(str(p.get("port")) for p in ports) or "none"
        raise TargetError(f"service {name} has no port {port} (ports: {offered})" if port is not None else
                          f"service {name} has several ports ({offered}): pick one with --port", 2)
    target = chosen.get("targetPort", chosen.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for container_port in container.get("ports") or []:
            if container_port.get("name") == target:
                return int(container_port["containerPort"])
    raise TargetError(f"pod {pod['metadata']['name']} has no port named {target!r} (service {name})")


async def find_target(connection: Any, ref: str, default_namespace: str, port: int | None) -> Target:
    """A space (`NAME`, `NAMESPACE/NAME`), a pod (`pod/NAME`) or a service (`svc/NAME`, e.g. an endpoint's), as
    kubectl port-forward names them; `-n` gives the namespace of the last two."""
    from app.cluster.connection import ApiError

    kind, _, rest = ref.partition("/")
    if kind not in POD_OR_SERVICE or not rest:
        return await find_space(connection, ref, default_namespace, IDE_PORT if port is None else port)
    name = check_name(rest, "name")
    namespace = default_namespace
    try:
        if kind.startswith("po"):
            pod = await connection.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            if port is None:
                raise TargetError("a pod target needs --port", 2)
            _first_ready([pod], f"pod {namespace}/{name}")
            return Target(namespace, name, "Pod", name, port, (pod.get("status") or {}).get("podIP"),
                          runs_sshd=_runs_sshd(pod))
        service = await connection.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            raise TargetError(f"service {namespace}/{name} has no selector: no pod to forward to")
        pods = await connection.request("GET", f"/api/v1/namespaces/{namespace}/pods", {
            "labelSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))})
    except ApiError as exc:
        if exc.status == 404:
            raise TargetError(f"no {'pod' if kind.startswith('po') else 'service'} {namespace}/{name}", 2) from None
        raise TargetError(str(exc)) from None
    pod = _first_ready((pods or {}).get("items") or [], f"service {namespace}/{name}")
    pod_port = service_pod_port(service, pod, port)
    return Target(namespace, name, "Service", pod["metadata"]["name"], pod_port,
                  (pod.get("status") or {}).get("podIP"), runs_sshd=_runs_sshd(pod))
