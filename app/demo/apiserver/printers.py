"""Printer columns of the built-in kinds, computed as the real server's table printers compute them.

CRDs describe their columns with JSONPath; built-in kinds have columns derived by code (a pod's READY is ready
containers over total containers, its STATUS folds container states into one word). These functions reproduce
what `kubectl get` shows against a real cluster, so the demo looks like one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .kinds import PrinterColumn

NONE = "<none>"


def parse_time(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp as written in objects (`2024-05-01T12:00:00Z`, fractions allowed)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """A short duration as kubectl prints ages: `45s`, `3m20s`, `2h5m`, `3d4h`, `400d`, `2y30d`."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """`human_duration` since `timestamp`, or `<unknown>` when there is none."""
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - moment).total_seconds())


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def object_age(obj: dict[str, Any]) -> str:
    return age(_meta(obj).get("creationTimestamp"))


def _selector_text(selector: dict[str, Any] | None) -> str:
    """A label selector as `a=b,c in (d)` (the way kubectl renders `metav1.LabelSelector`)."""
    if not selector:
        return NONE
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator", "")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr.get('key')} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr.get('key')} notin ({values})")
        elif op == "Exists":
            parts.append(str(expr.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{expr.get('key')}")
    return ",".join(parts) if parts else NONE


def _containers_and_images(template_spec: dict[str, Any]) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


# --- Pod -------------------------------------------------------------------------------------------------


def pod_ready(pod: dict[str, Any]) -> str:
    total = len(_spec(pod).get("containers") or [])
    ready = sum(1 for c in _status(pod).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{total}"


def pod_status(pod: dict[str, Any]) -> str:
    """The STATUS word: the pod phase, overridden by init, waiting and terminated container reasons."""
    status = _status(pod)
    reason = status.get("reason") or status.get("phase") or ""
    init_statuses = status.get("initContainerStatuses") or []
    init_total = len(_spec(pod).get("initContainers") or [])
    initializing = False
    for index, container in enumerate(init_statuses):
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        initializing = True
        if terminated:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode')}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{init_total}"
        break
    if not initializing:
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated:
                reason = (
                    f"Signal:{terminated['signal']}"
                    if terminated.get("signal")
                    else f"ExitCode:{terminated.get('exitCode')}"
                )
            elif state.get("running") and container.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            reason = "Running" if ready else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def pod_restarts(pod: dict[str, Any]) -> str:
    restarts = 0
    last: datetime | None = None
    for container in _status(pod).get("containerStatuses") or []:
        restarts += int(container.get("restartCount") or 0)
        finished = parse_time(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (last is None or finished > last):
            last = finished
    if restarts and last is not None:
        return f"{restarts} ({human_duration((datetime.now(UTC) - last).total_seconds())} ago)"
    return str(restarts)


def pod_readiness_gates(pod: dict[str, Any]) -> str:
    gates = _spec(pod).get("readinessGates") or []
    if not gates:
        return NONE
    true_conditions = {c.get("type") for c in _status(pod).get("conditions") or [] if c.get("status") == "True"}
    ready = sum(1 for gate in gates if gate.get("conditionType") in true_conditions)
    return f"{ready}/{len(gates)}"


POD_COLUMNS = (
    PrinterColumn(
        "Ready", cell=pod_ready, description="The aggregate readiness state of this pod for accepting traffic."
    ),
    PrinterColumn("Status", cell=pod_status, description="The aggregate status of the containers in this pod."),
    PrinterColumn(
        "Restarts",
        cell=pod_restarts,
        description=(
            "The number of times the containers in this pod have been restarted and when the last container in "
            "this pod has restarted."
        ),
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "IP",
        cell=lambda p: _status(p).get("podIP") or NONE,
        priority=1,
        description="podIP address allocated to the pod.",
    ),
    PrinterColumn(
        "Node",
        cell=lambda p: _spec(p).get("nodeName") or NONE,
        priority=1,
        description="Name of the Node this Pod runs on.",
    ),
    PrinterColumn(
        "Nominated Node",
        cell=lambda p: _status(p).get("nominatedNodeName") or NONE,
        priority=1,
        description="nominatedNodeName is set when this pod preempts other pods on the node.",
    ),
    PrinterColumn(
        "Readiness Gates",
        cell=pod_readiness_gates,
        priority=1,
        description="If specified, all readiness gates will be evaluated for pod readiness.",
    ),
)

# --- Node ------------------------------------------------------------------------------------------------


def node_status(node: dict[str, Any]) -> str:
    state = "Unknown"
    for condition in _status(node).get("conditions") or []:
        if condition.get("type") == "Ready":
            state = {"True": "Ready", "False": "NotReady"}.get(condition.get("status", ""), "Unknown")
    if _spec(node).get("unschedulable"):
        state += ",SchedulingDisabled"
    return state


def node_roles(node: dict[str, Any]) -> str:
    roles = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(node: dict[str, Any], kind: str) -> str:
    for address in _status(node).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address") or NONE
    return NONE


def _node_info(field: str) -> Any:
    return lambda node: (_status(node).get("nodeInfo") or {}).get(field) or "<unknown>"


NODE_COLUMNS = (
    PrinterColumn("Status", cell=node_status, description="The status of the node"),
    PrinterColumn("Roles", cell=node_roles, description="The roles of the node"),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "Version",
        cell=lambda n: (_status(n).get("nodeInfo") or {}).get("kubeletVersion", ""),
        description="Kubelet Version reported by the node.",
    ),
    PrinterColumn(
        "Internal-IP",
        cell=lambda n: _node_address(n, "InternalIP"),
        priority=1,
        description="List of addresses reachable to the node.",
    ),
    PrinterColumn(
        "External-IP",
        cell=lambda n: _node_address(n, "ExternalIP"),
        priority=1,
        description="List of addresses reachable to the node.",
    ),
    PrinterColumn(
        "OS-Image",
        cell=_node_info("osImage"),
        priority=1,
        description="OS Image reported by the node from /etc/os-release.",
    ),
    PrinterColumn(
        "Kernel-Version",
        cell=_node_info("kernelVersion"),
        priority=1,
        description="Kernel Version reported by the node.",
    ),
    PrinterColumn(
        "Container-Runtime",
        cell=_node_info("containerRuntimeVersion"),
        priority=1,
        description="Container Runtime Version reported by the node.",
    ),
)

# --- Namespace, ConfigMap, Secret, ServiceAccount ----------------------------------------------------------

NAMESPACE_COLUMNS = (
    PrinterColumn("Status", cell=lambda n: _status(n).get("phase", ""), description="The status of the namespace"),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)

CONFIGMAP_COLUMNS = (
    PrinterColumn(
        "Data",
        type="integer",
        cell=lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {}),
        description="Data contains the configuration data.",
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)

SECRET_COLUMNS = (
    PrinterColumn(
        "Type", cell=lambda s: s.get("type", ""), description="Used to facilitate programmatic handling of secret data."
    ),
    PrinterColumn(
        "Data",
        type="integer",
        cell=lambda s: len(s.get("data") or {}) + len(s.get("stringData") or {}),
        description="Data contains the secret data.",
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)

SERVICEACCOUNT_COLUMNS = (
    PrinterColumn(
        "Secrets",
        type="integer",
        cell=lambda s: len(s.get("secrets") or []),
        description=(
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount "
            "are allowed to use."
        ),
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)

# --- Service -----------------------------------------------------------------------------------------------


def service_external_ip(service: dict[str, Any]) -> str:
    spec = _spec(service)
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = _status(service).get("loadBalancer", {}).get("ingress") or []
        addresses = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        addresses += external
        return ",".join(addresses) if addresses else "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", NONE)
    return ",".join(external) if external else NONE


def service_ports(service: dict[str, Any]) -> str:
    ports = []
    for port in _spec(service).get("ports") or []:
        text = str(port.get("port", ""))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) if ports else NONE


SERVICE_COLUMNS = (
    PrinterColumn(
        "Type",
        cell=lambda s: _spec(s).get("type", "ClusterIP"),
        description="type determines how the Service is exposed.",
    ),
    PrinterColumn(
        "Cluster-IP",
        cell=lambda s: _spec(s).get("clusterIP") or NONE,
        description="clusterIP is the IP address of the service.",
    ),
    PrinterColumn(
        "External-IP",
        cell=service_external_ip,
        description=(
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for "
            "this service."
        ),
    ),
    PrinterColumn("Port(s)", cell=service_ports, description="The list of ports that are exposed by this service."),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "Selector",
        cell=lambda s: _selector_text({"matchLabels": _spec(s).get("selector") or {}}),
        priority=1,
        description="Route service traffic to pods with label keys and values matching this selector.",
    ),
)

# --- Event -------------------------------------------------------------------------------------------------


def _event_last_seen(event: dict[str, Any]) -> str:
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    return age(stamp) if stamp else "<unknown>"


def _event_object(event: dict[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_source(event: dict[str, Any]) -> str:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or ""
    return f"{component}, {host}" if host else component


EVENT_COLUMNS = (
    PrinterColumn("Last Seen", cell=_event_last_seen, description="Time when last event occurred"),
    PrinterColumn("Type", cell=lambda e: e.get("type", ""), description="Event type"),
    PrinterColumn("Reason", cell=lambda e: e.get("reason", ""), description="Event reason"),
    PrinterColumn("Object", cell=_event_object, description="Object event is about"),
    PrinterColumn("Message", cell=lambda e: (e.get("message") or "").strip(), description="Event message"),
    PrinterColumn(
        "Subobject",
        cell=lambda e: (e.get("involvedObject") or {}).get("fieldPath", ""),
        priority=1,
        description="Subobject event is about",
    ),
    PrinterColumn("Source", cell=_event_source, priority=1, description="Event source"),
    PrinterColumn(
        "First Seen",
        cell=lambda e: age(e.get("firstTimestamp") or e.get("eventTime")),
        priority=1,
        description="Time when first event occurred",
    ),
    PrinterColumn(
        "Count", type="integer", cell=lambda e: int(e.get("count") or 1), priority=1, description="Event count"
    ),
    PrinterColumn("Name", cell=lambda e: _meta(e).get("name", ""), priority=1, description="Event name"),
)

# --- PersistentVolumeClaim -----------------------------------------------------------------------------------

_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pvc_access_modes(pvc: dict[str, Any]) -> str:
    modes = _status(pvc).get("accessModes") or []
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes)


PVC_COLUMNS = (
    PrinterColumn("Status", cell=lambda p: _status(p).get("phase", "Pending"), description="The status of the claim"),
    PrinterColumn("Volume", cell=lambda p: _spec(p).get("volumeName", ""), description="The volume bound to the claim"),
    PrinterColumn(
        "Capacity",
        cell=lambda p: (_status(p).get("capacity") or {}).get("storage", ""),
        description="The capacity of the bound volume",
    ),
    PrinterColumn("Access Modes", cell=_pvc_access_modes, description="The access modes of the bound volume"),
    PrinterColumn(
        "StorageClass",
        cell=lambda p: _spec(p).get("storageClassName") or "",
        description="The storage class of the claim",
    ),
    PrinterColumn(
        "VolumeAttributesClass",
        cell=lambda p: _spec(p).get("volumeAttributesClassName") or "<unset>",
        description="The volume attributes class of the claim",
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "VolumeMode",
        cell=lambda p: _spec(p).get("volumeMode", "Filesystem"),
        priority=1,
        description="The volume mode of the claim",
    ),
)

# --- Job, Deployment ---------------------------------------------------------------------------------------


def _has_condition(obj: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in _status(obj).get("conditions") or [])


def job_status(job: dict[str, Any]) -> str:
    for condition, word in (
        ("Failed", "Failed"),
        ("Complete", "Complete"),
        ("Suspended", "Suspended"),
        ("FailureTarget", "FailureTarget"),
        ("SuccessCriteriaMet", "SuccessCriteriaMet"),
    ):
        if _has_condition(job, condition):
            return word
    return "Terminating" if _meta(job).get("deletionTimestamp") else "Running"


def job_completions(job: dict[str, Any]) -> str:
    spec, succeeded = _spec(job), int(_status(job).get("succeeded") or 0)
    completions = spec.get("completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = int(spec.get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: dict[str, Any]) -> str:
    start = parse_time(_status(job).get("startTime"))
    if start is None:
        return ""
    end = parse_time(_status(job).get("completionTime")) or datetime.now(UTC)
    return human_duration((end - start).total_seconds())


def _template_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return (_spec(obj).get("template") or {}).get("spec") or {}


JOB_COLUMNS = (
    PrinterColumn("Status", cell=job_status, description="Status of the job."),
    PrinterColumn(
        "Completions",
        cell=job_completions,
        description="The desired number of successfully finished pods the job should be run with.",
    ),
    PrinterColumn("Duration", cell=job_duration, description="Time required to complete the job."),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "Containers",
        cell=lambda j: _containers_and_images(_template_spec(j))[0],
        priority=1,
        description="Names of each container in the template.",
    ),
    PrinterColumn(
        "Images",
        cell=lambda j: _containers_and_images(_template_spec(j))[1],
        priority=1,
        description="Images referenced by each container in the template.",
    ),
    PrinterColumn(
        "Selector",
        cell=lambda j: _selector_text(_spec(j).get("selector")),
        priority=1,
        description="A label query over pods that should match the pod count.",
    ),
)

DEPLOYMENT_COLUMNS = (
    PrinterColumn(
        "Ready",
        cell=lambda d: f"{int(_status(d).get('readyReplicas') or 0)}/{int(_spec(d).get('replicas', 1))}",
        description="Number of the pod with ready state",
    ),
    PrinterColumn(
        "Up-to-date",
        type="integer",
        cell=lambda d: int(_status(d).get("updatedReplicas") or 0),
        description=(
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
        ),
    ),
    PrinterColumn(
        "Available",
        type="integer",
        cell=lambda d: int(_status(d).get("availableReplicas") or 0),
        description="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    PrinterColumn(
        "Age",
        cell=object_age,
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
    PrinterColumn(
        "Containers",
        cell=lambda d: _containers_and_images(_template_spec(d))[0],
        priority=1,
        description="Names of each container in the template.",
    ),
    PrinterColumn(
        "Images",
        cell=lambda d: _containers_and_images(_template_spec(d))[1],
        priority=1,
        description="Images referenced by each container in the template.",
    ),
    PrinterColumn(
        "Selector",
        cell=lambda d: _selector_text(_spec(d).get("selector")),
        priority=1,
        description="Label selector for pods.",
    ),
)

CRD_COLUMNS = (
    PrinterColumn(
        "Created At",
        type="date",
        cell=lambda c: _meta(c).get("creationTimestamp", ""),
        format="",
        description="Time when the CRD was created",
    ),
)

DEFAULT_COLUMNS = (
    PrinterColumn(
        "Age",
        type="date",
        json_path=".metadata.creationTimestamp",
        description="CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)
