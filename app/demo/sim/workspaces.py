"""jupyter-k8s, as the simulator plays it: Workspaces get a Deployment, a pod, a Service and their conditions.

A Workspace with `desiredStatus: Running` gets the Deployment `workspace-<name>` (one replica; its pod is labelled
`workspace.jupyter.org/workspace-name=<name>`) and the Service `workspace-<name>-service` (port 8888). Its status
says `Progressing` while the pod starts and `Available` (reason `ResourcesReady`) once it is ready, with
`deploymentName`, `serviceName` and `accessURL`. `Stopped` scales the Deployment to zero: the pod goes away and
the conditions say `Stopped` (reason `DesiredStateStopped`).

Stopping takes `STOP_SECONDS` (JupyterLab saves and shuts its kernels down) before the Deployment scales to zero;
meanwhile `Stopped` is False with "Workspace is stopping". A workspace whose container keeps crashing is `Degraded`
(reason `ComputeError`, with the container's state): the demo JupyterLab needs `MIN_MEMORY` and is OOM-killed with
less. Under Kueue, `preempt()` plays Kueue evicting a workspace's pod for a higher-priority workload: the pod gets
`DisruptionTarget=True` (reason `Preempted`), and the controller, as jupyter-k8s does, stops the workspace and notes
why in the annotation `workspace.jupyter.org/preemption-reason`; its `Stopped` condition then says `Preempted`.

Each running workspace pod answers HTTP on its port 8888 with a page that says it is the demo JupyterLab: a small
aiohttp server on 127.0.0.1 that is registered for the pod's `pods/portforward` and for `pods/proxy` and
`services/proxy`. A notebook holding a GPU computes nothing: the dcgm-exporter shows it idle.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
from typing import Any

from aiohttp import web

from ..apiserver import errors
from .base import Controller, World
from .objects import copy, milli, owner_reference, set_condition

GROUP = "workspace.jupyter.org"
API_VERSION = f"{GROUP}/v1alpha1"
NAME_LABEL = f"{GROUP}/workspace-name"
PORT = 8888
DEFAULT_IMAGE = "public.ecr.aws/sagemaker/sagemaker-distribution:2.4-gpu"
ACCESS_DOMAIN = "spaces.demo.hyperpod.local"
STOP_SECONDS = 1.0
MIN_MEMORY_MIB = 2048
CRASH_SECONDS = 4.0
PREEMPTION_ANNOTATION = f"{GROUP}/preemption-reason"
PREEMPTED_REASON = "Workspace preempted due to resource contention"
CONNECTION_GROUP = "connection.workspace.jupyter.org"
CONNECTION_PLURAL = "workspaceconnections"

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>JupyterLab (hyperdesk demo)</title></head>
<body>
<h1>Demo JupyterLab</h1>
<p>This is the <strong>hyperdesk demo JupyterLab</strong> of workspace <code>{namespace}/{name}</code>
(&ldquo;{display}&rdquo;), served by the simulated cluster of <code>hyperdesk demo</code>.</p>
<p>No kernel runs here: on a real HyperPod cluster this port would be the workspace's JupyterLab server.</p>
<p>Path requested: <code>{path}</code></p>
</body>
</html>
"""


class JupyterServer:
    """The stand-in for one workspace's JupyterLab: HTTP on a free 127.0.0.1 port."""

    def __init__(self, namespace: str, name: str, display: str, started: str = "") -> None:
        self.namespace, self.name, self.display = namespace, name, display
        self.started = started
        """When it started, in simulated time: nobody uses the demo JupyterLab, so it is also its last activity."""
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path.rstrip("/").endswith("/api/status") or path == "/api/status":
            body = {"started": self.started, "last_activity": self.started, "connections": 0, "kernels": 0}
            return web.Response(text=json.dumps(body), content_type="application/json")
        if path.rstrip("/").endswith("/api") or path == "/api":
            return web.Response(text=json.dumps({"version": "2.14.2"}), content_type="application/json")
        page = PAGE.format(namespace=html.escape(self.namespace), name=html.escape(self.name),
                           display=html.escape(self.display), path=html.escape(path))
        return web.Response(text=page, content_type="text/html")


class Workspaces(Controller):
    name = "jupyter-k8s-controller-manager"
    watches = frozenset({(GROUP, "Workspace"), ("", "Pod"), ("apps", "Deployment"), ("", "Service")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._servers: dict[tuple[str, str], JupyterServer] = {}
        self._starting: set[tuple[str, str]] = set()
        self._registered: dict[tuple[str, str], str] = {}  # workspace -> pod name registered
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: dict[tuple[str, str], float] = {}  # workspace -> when its stop began (elapsed seconds)
        self._crashing: set[tuple[str, int]] = set()  # (pod uid, restart count) whose OOM kill is scheduled
        world.server.api.register_review(CONNECTION_GROUP, CONNECTION_PLURAL, self.connection)

    def connection(self, user: Any, spec: dict[str, Any], namespace: str) -> dict[str, Any]:
        """The status of a WorkspaceConnection: for `web-ui`, the space's JupyterLab through this API server's pod
        proxy (the demo server serves anonymous requests, so a browser can open it). `vscode-remote` is refused:
        the demo has no VS Code server behind a URL (hyperdesk's own tunnel is the way there)."""
        name = str(spec.get("workspaceName") or "")
        kind = str(spec.get("workspaceConnectionType") or "")
        if not name:
            raise errors.ApiError(422, "Invalid", "spec.workspaceName: Required value")
        if kind not in ("web-ui", "vscode-remote"):
            raise errors.ApiError(422, "Invalid", f'spec.workspaceConnectionType: Unsupported value: "{kind}": '
                                  'supported values: "web-ui", "vscode-remote"')
        workspace = self.cache.get(API_VERSION, "Workspace", name, namespace)
        if workspace is None:
            raise errors.not_found(GROUP, "workspaces", name)
        available = next((c for c in (workspace.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Available"), {})
        pod = self._registered.get((namespace, name))
        if available.get("status") != "True" or pod is None:
            raise errors.conflict(CONNECTION_GROUP, CONNECTION_PLURAL, name,
                                  f"workspace {name} is not available (Available is not True)")
        if kind == "vscode-remote":
            raise errors.ApiError(422, "Invalid", "spec.workspaceConnectionType: vscode-remote is not offered by "
                                  "this cluster")
        url = f"{self.world.server.url}/api/v1/namespaces/{namespace}/pods/{pod}:{PORT}/proxy/lab"
        return {"workspaceConnectionType": kind, "workspaceConnectionUrl": url}

    def reconcile(self) -> None:
        workspaces = self.cache.all(API_VERSION, "Workspace")
        seen = set()
        for workspace in workspaces:
            meta = workspace["metadata"]
            key = (meta["namespace"], meta["name"])
            seen.add(key)
            self._reconcile(workspace)
        for key in [k for k in self._servers if k not in seen]:
            self._drop_server(key)
        for key in [k for k in self._stopping if k not in seen]:
            del self._stopping[key]
        if self._crashing:
            live = {p["metadata"].get("uid") for p in self.cache.all("v1", "Pod")}
            self._crashing = {mark for mark in self._crashing if mark[0] in live}

    def _reconcile(self, workspace: dict[str, Any]) -> None:
        world = self.world
        meta, spec = workspace["metadata"], workspace.get("spec") or {}
        namespace, name = meta["namespace"], meta["name"]
        running = spec.get("desiredStatus", "Running") == "Running"
        deployment_name, service_name = f"workspace-{name}", f"workspace-{name}-service"
        now = world.clock.timestamp()
        all_pods = [p for p in self.cache.all("v1", "Pod", namespace)
                    if (p["metadata"].get("labels") or {}).get(NAME_LABEL) == name]
        if running and any(_disrupted(p) for p in all_pods):
            self._preempted(workspace)
            return
        if running and PREEMPTION_ANNOTATION in (meta.get("annotations") or {}):
            updated = copy(workspace)  # started again: the controller's note no longer applies
            del updated["metadata"]["annotations"][PREEMPTION_ANNOTATION]
            world.put(updated)
            return
        if world.cache.get("v1", "Service", service_name, namespace) is None:
            world.create(self._service(workspace, service_name))
        deployment = world.cache.get("apps/v1", "Deployment", deployment_name, namespace)
        replicas = 1 if running else 0
        key = (namespace, name)
        if running:
            self._stopping.pop(key, None)
        elif deployment is not None and int((deployment.get("spec") or {}).get("replicas", 1)) > 0 \
                and not any(_disrupted(p) for p in all_pods):  # an evicted pod goes at once
            began = self._stopping.setdefault(key, world.clock.elapsed)
            if world.clock.elapsed - began < STOP_SECONDS - 1e-9:
                replicas = 1  # JupyterLab is still shutting its kernels down
                if began == world.clock.elapsed:
                    world.after(STOP_SECONDS, self._wake)
        if deployment is None:
            deployment = world.create(self._deployment(workspace, deployment_name, replicas))
        elif int((deployment.get("spec") or {}).get("replicas", 1)) != replicas:
            updated = copy(deployment)
            updated["spec"]["replicas"] = replicas
            world.put(updated)
        pods = [p for p in self.cache.all("v1", "Pod", namespace)
                if (p["metadata"].get("labels") or {}).get(NAME_LABEL) == name
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        ready_pod = next((p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                  for c in (p.get("status") or {}).get("conditions") or [])), None)
        status = copy(workspace.get("status") or {})
        conditions = status.setdefault("conditions", [])
        status["deploymentName"] = deployment_name
        status["serviceName"] = service_name
        generation = meta.get("generation")
        crash = self._crash_state(pods)
        preempted = (meta.get("annotations") or {}).get(PREEMPTION_ANNOTATION)
        if not running:
            set_condition(conditions, "Available", "False", "DesiredStateStopped", "Workspace is stopped", now, generation=generation)
            set_condition(conditions, "Progressing", "False", "DesiredStateStopped", "Workspace is stopped", now, generation=generation)
            set_condition(conditions, "Degraded", "False", "NoError", "No errors detected", now, generation=generation)
            set_condition(conditions, "Stopped", "True" if not pods else "False",
                          "Preempted" if preempted else "DesiredStateStopped",
                          (str(preempted) if preempted else "Workspace is stopped") if not pods else "Workspace is stopping",
                          now, generation=generation)
            status.pop("accessURL", None)
            self._drop_server((namespace, name))
        elif ready_pod is not None:
            set_condition(conditions, "Available", "True", "ResourcesReady", "Workspace is ready", now, generation=generation)
            set_condition(conditions, "Progressing", "False", "ResourcesReady", "Workspace is ready", now, generation=generation)
            set_condition(conditions, "Degraded", "False", "NoError", "No errors detected", now, generation=generation)
            set_condition(conditions, "Stopped", "False", "DesiredStateRunning", "Workspace is running", now, generation=generation)
            status["accessURL"] = f"https://{ACCESS_DOMAIN}/workspaces/{namespace}/{name}/"
            self._serve(workspace, ready_pod)
            world.activity[(namespace, ready_pod["metadata"]["name"])] = "idle"
            self._oom_if_starved(ready_pod)
        elif crash is not None:
            set_condition(conditions, "Available", "False", "ComputeError", crash, now, generation=generation)
            set_condition(conditions, "Progressing", "False", "ComputeError", crash, now, generation=generation)
            set_condition(conditions, "Degraded", "True", "ComputeError", crash, now, generation=generation)
            set_condition(conditions, "Stopped", "False", "DesiredStateRunning", "Workspace is not available", now,
                          generation=generation)
            status.pop("accessURL", None)
        else:
            unscheduled = next((c for p in pods for c in (p.get("status") or {}).get("conditions") or []
                                if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)
            message = f"Waiting for pod: {unscheduled.get('message')}" if unscheduled else "Workspace pod is starting"
            set_condition(conditions, "Available", "False", "ComputeNotReady", message, now, generation=generation)
            set_condition(conditions, "Progressing", "True", "ComputeNotReady", message, now, generation=generation)
            set_condition(conditions, "Degraded", "False", "NoError", "No errors detected", now, generation=generation)
            set_condition(conditions, "Stopped", "False", "DesiredStateRunning", "Workspace is starting", now, generation=generation)
            status.pop("accessURL", None)
        if status != (workspace.get("status") or {}):
            updated = copy(workspace)
            updated["status"] = status
            world.put(updated)

    def _wake(self) -> None:
        self.dirty = True
        self.world.wake()

    @staticmethod
    def _crash_state(pods: list[dict[str, Any]]) -> str | None:
        """The message of a workspace container that keeps crashing, or None."""
        for pod in pods:
            for entry in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (entry.get("state") or {}).get("waiting") or {}
                last = (entry.get("lastState") or {}).get("terminated") or {}
                if waiting.get("reason") == "CrashLoopBackOff" or (last.get("exitCode") and not entry.get("ready")):
                    why = last.get("message") or last.get("reason") or "exited"
                    return (f"Container {entry.get('name')} keeps crashing ({why}, exit code {last.get('exitCode')}, "
                            f"{entry.get('restartCount', 0)} restarts)")
        return None

    def _oom_if_starved(self, pod: dict[str, Any]) -> None:
        """The demo JupyterLab needs MIN_MEMORY_MIB: with less, the kernel's first import gets it OOM-killed."""
        container = pod["spec"]["containers"][0]
        requests = (container.get("resources") or {}).get("requests") or {}
        memory = milli(requests.get("memory", "4Gi")) // 1000
        if memory >= MIN_MEMORY_MIB * 1024 * 1024:
            return
        restarts = sum(int(e.get("restartCount", 0)) for e in (pod.get("status") or {}).get("containerStatuses") or [])
        mark = (pod["metadata"]["uid"], restarts)
        if mark in self._crashing:
            return
        self._crashing.add(mark)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])

        def kill() -> None:
            current = self.cache.get("v1", "Pod", key[1], key[0])
            if current is not None and self.world.kubelet is not None and current["metadata"]["uid"] == mark[0]:
                self.world.kubelet.exit_container(current, container["name"], 137,
                                                  message=f"OOMKilled: JupyterLab needs {MIN_MEMORY_MIB // 1024}Gi")

        self.world.after(CRASH_SECONDS, kill)

    def _preempted(self, workspace: dict[str, Any]) -> None:
        """Kueue evicted the workspace's pod: stop the workspace and say why, as jupyter-k8s does."""
        updated = copy(workspace)
        updated["spec"]["desiredStatus"] = "Stopped"
        updated["metadata"].setdefault("annotations", {})[PREEMPTION_ANNOTATION] = PREEMPTED_REASON
        if self.world.put(updated) is not None:
            self.world.event(workspace, "Preempted", PREEMPTED_REASON, type_="Warning", component=self.name)

    def _service(self, workspace: dict[str, Any], name: str) -> dict[str, Any]:
        meta = workspace["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": {NAME_LABEL: meta["name"]},
                         "ownerReferences": [owner_reference(workspace)]},
            "spec": {"selector": {NAME_LABEL: meta["name"]},
                     "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}]},
        }

    def _deployment(self, workspace: dict[str, Any], name: str, replicas: int) -> dict[str, Any]:
        meta, spec = workspace["metadata"], workspace.get("spec") or {}
        resources = spec.get("resources") or {"requests": {"cpu": "1", "memory": "4Gi"}}
        labels = {NAME_LABEL: meta["name"], "app.kubernetes.io/name": "jupyter-k8s-workspace"}
        template_labels = dict(labels)
        for copied in ("kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class"):
            if copied in (meta.get("labels") or {}):
                template_labels[copied] = meta["labels"][copied]
        container = {
            "name": "workspace",
            "image": spec.get("image") or DEFAULT_IMAGE,
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "resources": resources,
            "env": [{"name": "JUPYTER_PORT", "value": str(PORT)}] + list(spec.get("env") or []),
            "readinessProbe": {"httpGet": {"path": "/api/status", "port": PORT}, "initialDelaySeconds": 5, "periodSeconds": 5},
        }
        pod_spec: dict[str, Any] = {"containers": [container]}
        if spec.get("nodeSelector"):
            pod_spec["nodeSelector"] = spec["nodeSelector"]
        if spec.get("tolerations"):
            pod_spec["tolerations"] = spec["tolerations"]
        annotations = {}
        if (meta.get("annotations") or {}).get(f"{GROUP}/created-by"):
            annotations[f"{GROUP}/created-by"] = meta["annotations"][f"{GROUP}/created-by"]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                         "ownerReferences": [owner_reference(workspace)]},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {NAME_LABEL: meta["name"]}},
                "strategy": {"type": "Recreate"},
                "template": {"metadata": {"labels": template_labels, **({"annotations": annotations} if annotations else {})},
                             "spec": pod_spec},
            },
        }

    # --- the JupyterLab stand-in ------------------------------------------------------------------------------------

    def _serve(self, workspace: dict[str, Any], pod: dict[str, Any]) -> None:
        meta = workspace["metadata"]
        key = (meta["namespace"], meta["name"])
        server = self._servers.get(key)
        if server is None:
            if key in self._starting:
                return
            self._starting.add(key)
            server = JupyterServer(key[0], key[1], str((workspace.get("spec") or {}).get("displayName", key[1])),
                                   started=self.world.clock.timestamp())
            task = asyncio.get_running_loop().create_task(self._start_server(key, server))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        pod_name = pod["metadata"]["name"]
        if self._registered.get(key) != pod_name:
            url = f"http://127.0.0.1:{server.port}"
            self.world.port_forwards.register(key[0], pod_name, PORT, server.port)
            self.world.proxies.register_pod(key[0], pod_name, PORT, url)
            self.world.proxies.register_service(key[0], f"workspace-{key[1]}-service", PORT, url)
            self._registered[key] = pod_name
            now = self.world.clock.now()
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
            self.world.logs.write(key[0], pod_name, pod["spec"]["containers"][0]["name"], [
                f"[I {stamp} ServerApp] jupyterlab | extension was successfully loaded.",
                f"[I {stamp} ServerApp] Serving notebooks from local directory: /home/sagemaker-user",
                f"[I {stamp} ServerApp] Jupyter Server 2.14.2 is running at:",
                f"[I {stamp} ServerApp] http://{pod_name}:{PORT}/lab",
                f"[I {stamp} ServerApp] Use Control-C to stop this server and shut down all kernels (twice to skip confirmation).",
            ], at=now)

    async def _start_server(self, key: tuple[str, str], server: JupyterServer) -> None:
        try:
            await server.start()
        finally:
            self._starting.discard(key)
        self._servers[key] = server
        self.dirty = True
        self.world.wake()

    def _drop_server(self, key: tuple[str, str]) -> None:
        server = self._servers.pop(key, None)
        pod_name = self._registered.pop(key, None)
        if pod_name is not None:
            self.world.port_forwards.unregister(key[0], pod_name, PORT)
            self.world.proxies.unregister("pods", key[0], pod_name, PORT)
            self.world.proxies.unregister("services", key[0], f"workspace-{key[1]}-service", PORT)
        if server is not None:
            task = asyncio.get_running_loop().create_task(server.stop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for JupyterLab stand-ins being started or stopped."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        await self.flush()
        for server in self._servers.values():
            await server.stop()
        self._servers.clear()



def _disrupted(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def preempt(world: World, namespace: str, name: str, by: str = "a higher-priority workload") -> bool:
    """Kueue's side of a preemption: mark the pods of workspace `namespace/name` as disruption targets.
    Returns False when the workspace has no pod to preempt."""
    pods = [p for p in world.cache.all("v1", "Pod", namespace)
            if (p["metadata"].get("labels") or {}).get(NAME_LABEL) == name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    now = world.clock.timestamp()
    for pod in pods:
        updated = copy(pod)
        set_condition(updated.setdefault("status", {}).setdefault("conditions", []), "DisruptionTarget", "True",
                      "Preempted", f"Preempted to accommodate {by} due to prioritization in the ClusterQueue", now,
                      style="pod")
        world.put(updated)
        world.event(pod, "Preempted", f"Preempted to accommodate {by}", type_="Normal", component="kueue-admission")
    world.wake()
    return bool(pods)
