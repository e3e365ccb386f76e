"""The node side: kube-scheduler (binding pods to nodes with room) and the kubelet (running what is bound).

- `Scheduler` binds each pending pod to a schedulable node whose labels match its `nodeSelector`, whose taints it
  tolerates and whose allocatable resources (GPUs, MIG slices, CPU, memory) are not taken by other pods; GPU pods
  are packed onto the fullest node that fits. A pod that fits nowhere gets `PodScheduled=False` with the
  scheduler's "0/8 nodes are available: ..." message and a `FailedScheduling` event.
- `Kubelet` pulls images (a few simulated seconds), starts containers, honours readiness probes' initial delays,
  and applies restart policies when a program ends a container (`exit_container`): restart with back-off, or a
  terminal `Succeeded`/`Failed` phase. Container restarts rotate the log (`kubectl logs --previous`). A pod being
  deleted that a finalizer keeps in the API (`Terminating`) has its containers stopped (a `Killing` event, exit 0 on
  SIGTERM, phase `Succeeded`, its GPUs freed) and stays until whoever owns the finalizer removes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .base import Controller, World
from .objects import copy, gpu_resources, milli, pod_requests, set_condition

TERMINAL = ("Succeeded", "Failed")


def _tolerates(pod: dict[str, Any], taint: dict[str, Any]) -> bool:
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    if (node.get("spec") or {}).get("unschedulable") and not any(
        t.get("key") == "node.kubernetes.io/unschedulable" for t in taints
    ):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    return taints


def _allocatable(node: dict[str, Any]) -> dict[str, int]:
    return {k: milli(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}


def node_usage(pods: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Requests of the non-terminated pods bound to each node."""
    used: dict[str, dict[str, int]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINAL:
            continue
        table = used.setdefault(node, {})
        for resource, amount in pod_requests(pod.get("spec") or {}).items():
            table[resource] = table.get(resource, 0) + amount
    return used


def fit_failures(pod: dict[str, Any], node: dict[str, Any], used: dict[str, int]) -> list[str]:
    """Why `pod` cannot go to `node`, in kube-scheduler's words (empty: it fits)."""
    for taint in _taints(node):
        if not _tolerates(pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = _allocatable(node)
    failures = []
    for resource, amount in sorted(pod_requests(pod.get("spec") or {}).items()):
        if amount and allocatable.get(resource, 0) - used.get(resource, 0) < amount:
            failures.append(f"Insufficient {resource}")
    return failures


def unschedulable_message(total: int, failures: dict[str, int]) -> str:
    reasons = ", ".join(sorted(f"{count} {reason}" for reason, count in failures.items()))
    return (
        f"0/{total} nodes are available: {reasons}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


class Scheduler(Controller):
    name = "default-scheduler"
    watches = frozenset({("", "Pod"), ("", "Node")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._first_seen: dict[str, float] = {}

    def reconcile(self) -> None:
        world = self.world
        pods = self.cache.all("v1", "Pod")
        nodes = self.cache.all("v1", "Node")
        used = node_usage(pods)
        pending = []
        for pod in pods:
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                continue
            if pod["metadata"].get("deletionTimestamp") or spec.get("schedulingGates"):
                continue
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            uid = pod["metadata"]["uid"]
            self._first_seen.setdefault(uid, world.clock.elapsed)
            pending.append(pod)
        pending.sort(key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0), self._first_seen[p["metadata"]["uid"]],
                                    p["metadata"].get("namespace", ""), p["metadata"]["name"]))
        for pod in pending:
            failures: dict[str, int] = {}
            candidates = []
            for node in nodes:
                reasons = fit_failures(pod, node, used.get(node["metadata"]["name"], {}))
                if reasons:
                    for reason in reasons:
                        failures[reason] = failures.get(reason, 0) + 1
                else:
                    candidates.append(node)
            if not candidates:
                self._unschedulable(pod, unschedulable_message(len(nodes), failures))
                continue
            wanted = gpu_resources(pod_requests(pod.get("spec") or {}))

            def score(node: dict[str, Any]) -> tuple[int, str]:
                name = node["metadata"]["name"]
                allocatable = _allocatable(node)
                free = sum(allocatable.get(r, 0) - used.get(name, {}).get(r, 0) for r in wanted)
                return (free if wanted else 0, name)

            node = min(candidates, key=score)
            self._bind(pod, node)
            table = used.setdefault(node["metadata"]["name"], {})
            for resource, amount in pod_requests(pod.get("spec") or {}).items():
                table[resource] = table.get(resource, 0) + amount
        live = {p["metadata"]["uid"] for p in pods}
        for uid in [u for u in self._first_seen if u not in live]:
            del self._first_seen[uid]

    def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        world = self.world
        current = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if current and current.get("message") == message:
            return
        updated = copy(pod)
        status = updated.setdefault("status", {})
        set_condition(status.setdefault("conditions", []), "PodScheduled", "False", "Unschedulable", message,
                      world.clock.timestamp(), style="pod")
        world.put(updated)
        world.event(pod, "FailedScheduling", message, type_="Warning", component="default-scheduler")

    def _bind(self, pod: dict[str, Any], node: dict[str, Any]) -> None:
        world = self.world
        name = node["metadata"]["name"]
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        wanted = gpu_resources(pod_requests(pod.get("spec") or {}))
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        if world.devices is not None and wanted:
            world.devices.release(key)
            if not world.devices.allocate(name, key, containers[0].get("name", ""), wanted):
                return
        updated = copy(pod)
        updated["spec"]["nodeName"] = name
        status = updated.setdefault("status", {})
        set_condition(status.setdefault("conditions", []), "PodScheduled", "True", "", "", world.clock.timestamp(), style="pod")
        world.put(updated)
        world.event(pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {name}", component="default-scheduler")


class Kubelet(Controller):
    """Every node's kubelet at once."""

    name = "kubelet"
    watches = frozenset({("", "Pod"), ("", "Node")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._starting: set[str] = set()  # pod uids waiting for their containers to start
        self._pod_ips: dict[str, int] = {}

    # --- status helpers -----------------------------------------------------------------------------------------

    def _node_ip(self, node: str) -> str:
        obj = self.cache.get("v1", "Node", node)
        for address in ((obj or {}).get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return address["address"]
        return "10.1.0.10"

    def _pod_ip(self, node: str) -> str:
        """An address from the node's subnet, as the VPC CNI hands out secondary IPs."""
        count = self._pod_ips.get(node, 0) + 1
        self._pod_ips[node] = count
        return f"{self._node_ip(node).rsplit('.', 1)[0]}.{100 + count % 150}"

    @staticmethod
    def _image_id(image: str) -> str:
        repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"

    def _container_id(self) -> str:
        return "containerd://" + self.world.rng.hex(64)

    # --- reconcile ----------------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        world = self.world
        pods = self.cache.all("v1", "Pod")
        live: set[tuple[str, str]] = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            key = (meta.get("namespace", ""), meta["name"])
            status = pod.get("status") or {}
            if status.get("phase") in TERMINAL:
                continue
            node = spec.get("nodeName")
            if meta.get("deletionTimestamp"):
                if node:
                    self._stop(pod)
                continue
            live.add(key)
            if not node or status.get("containerStatuses") or meta["uid"] in self._starting:
                continue
            if world.devices is not None and key not in world.devices.holders():
                wanted = gpu_resources(pod_requests(spec))
                if wanted:
                    containers = spec.get("containers") or [{}]
                    world.devices.allocate(node, key, containers[0].get("name", ""), wanted)
            self._creating(pod)
        if world.devices is not None:
            for key in world.devices.holders() - live:
                world.devices.release(key)
                world.activity.pop(key, None)

    def _stop(self, pod: dict[str, Any]) -> None:
        """Stop the containers of a pod being deleted that a finalizer keeps: what the kubelet does before a pod's
        object can go. Model servers and trainers exit 0 on SIGTERM; the pod ends `Succeeded`."""
        world = self.world
        updated = copy(pod)
        spec, status = updated["spec"], updated.setdefault("status", {})
        now = world.clock.timestamp()
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        self._starting.discard(pod["metadata"]["uid"])
        for entry in status.get("containerStatuses") or []:
            running = (entry.get("state") or {}).get("running")
            if running is not None:
                entry["state"] = {"terminated": {"exitCode": 0, "reason": "Completed",
                                                 "startedAt": running.get("startedAt", now), "finishedAt": now,
                                                 "containerID": entry.get("containerID", "")}}
                world.event(pod, "Killing", f"Stopping container {entry['name']}", component="kubelet",
                            host=spec["nodeName"])
            elif "terminated" not in (entry.get("state") or {}):
                entry["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}
            entry["ready"] = False
            entry["started"] = False
        status["phase"] = "Succeeded"
        conditions = status.setdefault("conditions", [])
        for type_ in ("Ready", "ContainersReady"):
            set_condition(conditions, type_, "False", "PodCompleted", "", now, style="pod")
        set_condition(conditions, "PodReadyToStartContainers", "False", "", "", now, style="pod")
        world.activity.pop(key, None)
        if world.devices is not None:
            world.devices.release(key)
        world.put(updated)

    def _creating(self, pod: dict[str, Any]) -> None:
        world = self.world
        updated = copy(pod)
        spec, status = updated["spec"], updated.setdefault("status", {})
        now = world.clock.timestamp()
        node = spec["nodeName"]
        status["hostIP"] = self._node_ip(node)
        status["hostIPs"] = [{"ip": status["hostIP"]}]
        status["startTime"] = now
        status["phase"] = "Pending"
        conditions = status.setdefault("conditions", [])
        set_condition(conditions, "PodReadyToStartContainers", "False", "", "", now, style="pod")
        set_condition(conditions, "Initialized", "True", "", "", now, style="pod")
        set_condition(conditions, "Ready", "False", "ContainersNotReady",
                      f"containers with unready status: [{' '.join(c['name'] for c in spec['containers'])}]", now, style="pod")
        set_condition(conditions, "ContainersReady", "False", "ContainersNotReady",
                      f"containers with unready status: [{' '.join(c['name'] for c in spec['containers'])}]", now, style="pod")
        set_condition(conditions, "PodScheduled", "True", "", "", now, style="pod")
        status["containerStatuses"] = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "restartCount": 0,
             "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}
            for c in spec["containers"]
        ]
        world.put(updated)
        uid = pod["metadata"]["uid"]
        self._starting.add(uid)
        image = spec["containers"][0].get("image", "")
        cached = "dcgm-exporter" in image
        delay = 2.0 if cached else float(world.rng.randint(6, 18))
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        if not cached:
            world.event(pod, "Pulling", f'Pulling image "{image}"', component="kubelet", host=node)
        world.after(delay, lambda: self._start(key, uid, delay))

    def _current(self, key: tuple[str, str], uid: str) -> dict[str, Any] | None:
        pod = self.cache.get("v1", "Pod", key[1], key[0])
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return None
        return pod

    def _start(self, key: tuple[str, str], uid: str, pulled_in: float) -> None:
        world = self.world
        self._starting.discard(uid)
        pod = self._current(key, uid)
        if pod is None:
            return
        updated = copy(pod)
        spec, status = updated["spec"], updated["status"]
        if not status.get("containerStatuses"):
            return  # someone else wrote the status while the image was pulled (a hand-made pod): it is theirs
        now = world.clock.timestamp()
        status["phase"] = "Running"
        status["podIP"] = self._pod_ip(spec["nodeName"])
        status["podIPs"] = [{"ip": status["podIP"]}]
        delayed = []
        for container, entry in zip(spec["containers"], status["containerStatuses"], strict=False):
            probe = container.get("readinessProbe")
            entry.update(
                imageID=self._image_id(entry["image"]), containerID=self._container_id(), started=True,
                ready=probe is None, state={"running": {"startedAt": now}},
            )
            if probe is not None:
                delayed.append((container["name"], float(probe.get("initialDelaySeconds", 0)) + float(probe.get("periodSeconds", 10))))
        conditions = status["conditions"]
        set_condition(conditions, "PodReadyToStartContainers", "True", "", "", now, style="pod")
        self._readiness(status, now)
        world.put(updated)
        image = spec["containers"][0].get("image", "")
        node = spec["nodeName"]
        if "dcgm-exporter" not in image:
            world.event(pod, "Pulled", f'Successfully pulled image "{image}" in {pulled_in:.3f}s', component="kubelet", host=node)
        for container in spec["containers"]:
            world.event(pod, "Created", f"Created container {container['name']}", component="kubelet", host=node)
            world.event(pod, "Started", f"Started container {container['name']}", component="kubelet", host=node)
        for name, delay in delayed:
            world.after(delay, lambda n=name: self.set_ready(key, uid, n, True))

    @staticmethod
    def _readiness(status: dict[str, Any], now: str) -> None:
        entries = status.get("containerStatuses") or []
        unready = [e["name"] for e in entries if not e.get("ready")]
        conditions = status.setdefault("conditions", [])
        if unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            set_condition(conditions, "Ready", "False", "ContainersNotReady", message, now, style="pod")
            set_condition(conditions, "ContainersReady", "False", "ContainersNotReady", message, now, style="pod")
        else:
            set_condition(conditions, "Ready", "True", "", "", now, style="pod")
            set_condition(conditions, "ContainersReady", "True", "", "", now, style="pod")

    def set_ready(self, key: tuple[str, str], uid: str, container: str, ready: bool) -> None:
        pod = self._current(key, uid)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        updated = copy(pod)
        for entry in updated["status"].get("containerStatuses") or []:
            if entry["name"] == container and "running" in (entry.get("state") or {}):
                entry["ready"] = ready
        self._readiness(updated["status"], self.world.clock.timestamp())
        self.world.put(updated)

    # --- programs ending --------------------------------------------------------------------------------------------

    def exit_container(self, pod: dict[str, Any], container: str, exit_code: int, *, message: str = "") -> None:
        """A container's process ended with `exit_code`: restart it or finish the pod, as `restartPolicy` says."""
        world = self.world
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        uid = pod["metadata"]["uid"]
        current = self._current(key, uid)
        if current is None or (current.get("status") or {}).get("phase") != "Running":
            return
        updated = copy(current)
        spec, status = updated["spec"], updated["status"]
        now = world.clock.timestamp()
        policy = spec.get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        reason = "Completed" if exit_code == 0 else "Error"
        for entry in status["containerStatuses"]:
            if entry["name"] != container:
                continue
            started = ((entry.get("state") or {}).get("running") or {}).get("startedAt", now)
            terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": now,
                          "containerID": entry.get("containerID", "")}
            if message:
                terminated["message"] = message
            entry["ready"] = False
            if restart:
                entry["lastState"] = {"terminated": terminated}
                entry["restartCount"] = int(entry.get("restartCount", 0)) + 1
                backoff = min(300, 10 * 2 ** (entry["restartCount"] - 1))
                entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                              f"back-off {backoff}s restarting failed container={container} "
                                              f"pod={key[1]}_{key[0]}({uid})"}}
                entry["started"] = False
                world.after(backoff, lambda: self._restart(key, uid, container))
            else:
                entry["state"] = {"terminated": terminated}
                entry["started"] = False
        entries = status["containerStatuses"]
        if all("terminated" in (e.get("state") or {}) for e in entries):
            failed = any(e["state"]["terminated"]["exitCode"] != 0 for e in entries)
            status["phase"] = "Failed" if failed else "Succeeded"
            conditions = status["conditions"]
            reason_word = "PodFailed" if failed else "PodCompleted"
            set_condition(conditions, "Ready", "False", reason_word, "", now, style="pod")
            set_condition(conditions, "ContainersReady", "False", reason_word, "", now, style="pod")
            set_condition(conditions, "PodReadyToStartContainers", "False", "", "", now, style="pod")
            world.activity.pop(key, None)
            if world.devices is not None:
                world.devices.release(key)
        else:
            self._readiness(status, now)
        world.put(updated)
        if restart:
            world.event(current, "BackOff", f"Back-off restarting failed container {container} in pod {key[1]}_{key[0]}({uid})",
                        type_="Warning", component="kubelet", host=spec.get("nodeName", ""))

    def _restart(self, key: tuple[str, str], uid: str, container: str) -> None:
        world = self.world
        pod = self._current(key, uid)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        updated = copy(pod)
        now = world.clock.timestamp()
        specs = {c["name"]: c for c in updated["spec"]["containers"]}
        for entry in updated["status"]["containerStatuses"]:
            if entry["name"] == container and "waiting" in (entry.get("state") or {}):
                entry["state"] = {"running": {"startedAt": now}}
                entry["containerID"] = self._container_id()
                entry["started"] = True
                entry["ready"] = specs.get(container, {}).get("readinessProbe") is None
        self._readiness(updated["status"], now)
        world.logs.restart(key[0], key[1], container)
        world.put(updated)
        world.event(pod, "Started", f"Started container {container}", component="kubelet",
                    host=updated["spec"].get("nodeName", ""))
