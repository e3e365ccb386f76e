"""Spaces, as plain data: jupyter-k8s Workspaces (and Kubeflow Notebooks) -> rows; templates -> bounds; a new
space's request -> the problems that keep it from being created, and the Workspace manifest when there are none.

Pure functions only: the cluster layer (`app/cluster/spaces.py`) fetches and sends, the pane and the CLI show.

A space's status comes from its conditions (see shared/reference/cluster-apis.md, Spaces):

- `Preempted`: the controller stopped it for Kueue (annotation `workspace.jupyter.org/preemption-reason`)
- `Degraded`: condition `Degraded=True`
- `Stopped` / `Stopping`: `desiredStatus: Stopped`, and `Stopped=True` once its pod is gone
- `Running` / `Starting`: `desiredStatus: Running`, and `Available=True` once its pod is ready
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from app.model.jobs import condition, human_duration, is_true, parse_time

Obj = dict[str, Any]

GROUP = "workspace.jupyter.org"
API_VERSION = f"{GROUP}/v1alpha1"
CREATED_BY = f"{GROUP}/created-by"
TEMPLATE_LABEL = f"{GROUP}/template-name"
NAME_LABEL = f"{GROUP}/workspace-name"
PREEMPTION_ANNOTATION = f"{GROUP}/preemption-reason"
LAST_ACTIVITY_ANNOTATION = f"{GROUP}/last-activity"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
NOTEBOOK_STOPPED = "kubeflow-resource-stopped"
PORT = 8888
FIELDS = ("name", "namespace", "display", "template", "image", "cpu", "memory", "gpus", "storage", "idle", "queue", "priority")
"""What `validate_request` names its problems by."""
COMPUTE_FIELDS = ("cpu", "memory", "gpus")

STATUSES = ("Running", "Starting", "Stopping", "Stopped", "Degraded", "Preempted")
APP_TYPES = {"jupyterlab": "JupyterLab", "jupyter": "JupyterLab", "code-editor": "Code Editor",
             "codeeditor": "Code Editor", "vscode": "Code Editor"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63 - len("workspace--service")
"""The controller names the Service `workspace-<name>-service`, which must fit a 63-character DNS label."""
MIG_PROFILE = re.compile(r"^([1-7]c\.)?[1-7]g\.[0-9]+gb([.+-][a-z0-9+]+)*$")
"""A MIG profile name, checked only when the nodes' offer is unknown (an offered name is taken as it is)."""
IDLE_DETECTION = {"httpGet": {"path": "/api/status", "port": PORT,
                              "lastActivityTimestamp": {"responseBodyPath": "last_activity"}}}


# --------------------------------------------------------------------------------------------------- quantities

_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`500m`, `8Gi`, `2`) as a number, or None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value)) if value >= 0 else None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""])
    except InvalidOperation:
        return None


def mig_profile_of(resource: str) -> str | None:
    return resource.removeprefix(MIG_PREFIX) if resource.startswith(MIG_PREFIX) else None


# --------------------------------------------------------------------------------------------------- rows

@dataclass(frozen=True)
class SpaceRow:
    key: str
    """`workspaces/<namespace>/<name>` or `notebooks/<namespace>/<name>`."""
    kind: str
    name: str
    namespace: str
    display_name: str
    owner: str
    app_type: str
    template: str
    image: str
    status: str
    reason: str
    """Why it is not Running, in the controller's words (empty while it runs)."""
    cpu: str
    memory: str
    gpus: int
    mig_profile: str | None
    mig_count: int
    storage: str
    idle_enabled: bool
    idle_minutes: int | None
    idle_since: datetime | None
    queue: str | None
    priority: str | None
    created: datetime | None
    access_url: str | None
    template_namespace: str | None = None
    pods: tuple[str, ...] = field(default=())
    """Store keys (`namespace/name`) of its pods."""
    has_storage: bool = False
    """It asked for a home volume (`spec.storage`); without one its files live only in its pod."""

    @property
    def space_key(self) -> str:
        """`namespace/name`: what the Connect issue's `connect_space` and `connections` use."""
        return f"{self.namespace}/{self.name}"

    @property
    def compute_text(self) -> str:
        parts = [p for p in (f"{self.cpu} CPU" if self.cpu else "", self.memory) if p]
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        if self.mig_profile:
            parts.append(f"{self.mig_count}×{self.mig_profile}")
        return " ".join(parts)

    @property
    def gpu_text(self) -> str:
        if self.mig_profile:
            return f"{self.mig_count}×{self.mig_profile}"
        return str(self.gpus) if self.gpus else ""

    def age_seconds(self, now: datetime) -> int | None:
        return int((now - self.created).total_seconds()) if self.created else None

    def idle_seconds(self, now: datetime) -> int | None:
        if self.status != "Running" or self.idle_since is None:
            return None
        return max(0, int((now - self.idle_since).total_seconds()))

    def idle_text(self, now: datetime) -> str:
        """`12m/240m`: idle for 12 minutes of the 240 before it shuts down; `off` without idle shutdown."""
        if not self.idle_enabled or not self.idle_minutes:
            return "off"
        idle = self.idle_seconds(now)
        limit = f"{self.idle_minutes}m"
        return f"{idle // 60}m/{limit}" if idle is not None else limit


def app_type_text(value: Any) -> str:
    text = str(value or "")
    return APP_TYPES.get(text.lower(), text)


def workspace_status(ws: Obj) -> tuple[str, str]:
    """(status, reason): the status column and, unless Running, the condition message that explains it."""
    meta, spec = ws.get("metadata") or {}, ws.get("spec") or {}
    desired = spec.get("desiredStatus") or "Running"
    preempted = (meta.get("annotations") or {}).get(PREEMPTION_ANNOTATION)
    said = any(c.get("reason") == "Preempted" for c in (ws.get("status") or {}).get("conditions") or ()
               if isinstance(c, dict))
    if preempted and desired == "Stopped" and said:
        return "Preempted", str(preempted)
    degraded = condition(ws, "Degraded")
    if degraded and degraded.get("status") == "True":
        return "Degraded", degraded.get("message") or degraded.get("reason") or ""
    if meta.get("deletionTimestamp"):
        return "Stopping", "being deleted"
    if desired == "Stopped":
        stopped = condition(ws, "Stopped")
        if stopped is not None and stopped.get("status") == "False":
            return "Stopping", stopped.get("message") or ""
        return "Stopped", ""
    if is_true(ws, "Available") and not is_true(ws, "Stopped"):
        return "Running", ""
    progressing = condition(ws, "Available") or condition(ws, "Progressing")
    return "Starting", (progressing or {}).get("message") or "waiting for the controller"


def requested_resources(resources: Obj | None) -> dict[str, Any]:
    """Requests, with limits filling in what requests leave out (as the API server defaults them)."""
    resources = resources or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return merged


def whole_number(label: str, text: str) -> tuple[int | None, str | None]:
    """A form field's text as a whole number: `(value, None)`, `(None, None)` when empty, or `(None, problem)` for
    text that is not one ('-', '1_', '1.5', 'one'), so bad input is said rather than read as 0 or a default."""
    text = text.strip()
    if not text:
        return None, None
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text), None
    return None, f"{label} {text!r} is not a whole number"


def _gpu_split(wanted: Mapping[str, Any]) -> tuple[int, str | None, int]:
    gpus = int(quantity(wanted.get(GPU)) or 0)
    mig = next(((mig_profile_of(k), int(quantity(v) or 0)) for k, v in sorted(wanted.items())
                if k.startswith(MIG_PREFIX) and quantity(v)), (None, 0))
    return gpus, mig[0], mig[1]


PodIndex = Mapping[tuple[str, str, str], list[str]]


def index_pods(pods: Mapping[str, Obj]) -> dict[tuple[str, str, str], list[str]]:
    """(label, namespace, value) -> pod keys, for the labels that tie pods to spaces: one pass over the pods."""
    index: dict[tuple[str, str, str], list[str]] = {}
    for key, pod in pods.items():
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        for label in (NAME_LABEL, "notebook-name"):
            if label in labels:
                index.setdefault((label, meta.get("namespace") or "", labels[label]), []).append(key)
    return index


def _pods_of(namespace: str, name: str, pods: Mapping[str, Obj] | PodIndex, label: str) -> tuple[str, ...]:
    index = pods if isinstance(next(iter(pods), None), tuple) else index_pods(pods)  # type: ignore[arg-type]
    return tuple(sorted(index.get((label, namespace, name), ())))  # type: ignore[union-attr]


def workspace_row(ws: Obj, templates: Mapping[str, Obj] | None = None,
                  pods: Mapping[str, Obj] | PodIndex | None = None) -> SpaceRow:
    meta, spec, status = ws.get("metadata") or {}, ws.get("spec") or {}, ws.get("status") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    ref = spec.get("templateRef") or {}
    template_name = ref.get("name") or labels.get(TEMPLATE_LABEL) or ""
    template_ns = ref.get("namespace") or namespace
    template = (templates or {}).get(f"{template_ns}/{template_name}") if template_name else None
    tspec = (template or {}).get("spec") or {}
    wanted = requested_resources(spec.get("resources") or tspec.get("defaultResources"))
    gpus, mig, mig_count = _gpu_split(wanted)
    state, reason = workspace_status(ws)
    idle = spec.get("idleShutdown") or tspec.get("defaultIdleShutdown") or {}
    storage = (spec.get("storage") or {}).get("size") or ((tspec.get("primaryStorage") or {}).get("defaultSize"))
    return SpaceRow(
        key=f"workspaces/{namespace}/{name}", kind="Workspace", name=name, namespace=namespace,
        display_name=str(spec.get("displayName") or ""), owner=str(annotations.get(CREATED_BY) or ""),
        app_type=app_type_text(spec.get("appType") or tspec.get("appType") or "jupyterlab"),
        template=template_name, template_namespace=template_ns if template_name else None,
        image=str(spec.get("image") or tspec.get("defaultImage") or ""), status=state, reason=reason,
        cpu=str(wanted.get("cpu") or ""), memory=str(wanted.get("memory") or ""), gpus=gpus, mig_profile=mig,
        mig_count=mig_count, storage=str(storage or ""), idle_enabled=bool(idle.get("enabled")),
        idle_minutes=_int(idle.get("idleTimeoutInMinutes")),
        idle_since=parse_time(annotations.get(LAST_ACTIVITY_ANNOTATION)),
        queue=labels.get(QUEUE_LABEL), priority=labels.get(PRIORITY_LABEL),
        created=parse_time(meta.get("creationTimestamp")), access_url=status.get("accessURL") or None,
        pods=_pods_of(namespace, name, pods or {}, NAME_LABEL), has_storage=bool(spec.get("storage")),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def notebook_row(nb: Obj, pods: Mapping[str, Obj] | PodIndex | None = None) -> SpaceRow:
    """A Kubeflow Notebook: its single container, stopped by the `kubeflow-resource-stopped` annotation."""
    meta, spec, status = nb.get("metadata") or {}, nb.get("spec") or {}, nb.get("status") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    annotations = meta.get("annotations") or {}
    containers = (((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}])
    container = containers[0] or {}
    wanted = requested_resources(container.get("resources"))
    gpus, mig, mig_count = _gpu_split(wanted)
    if annotations.get(NOTEBOOK_STOPPED):
        state, reason = ("Stopping", "") if int(status.get("readyReplicas") or 0) else ("Stopped", "")
    elif int(status.get("readyReplicas") or 0) >= 1:
        state, reason = "Running", ""
    else:
        waiting = ((status.get("containerState") or {}).get("waiting") or {})
        state, reason = "Starting", waiting.get("reason") or ""
    image = str(container.get("image") or "")
    app = "Code Editor" if "codeserver" in image or "code-server" in image else "JupyterLab"
    return SpaceRow(
        key=f"notebooks/{namespace}/{name}", kind="Notebook", name=name, namespace=namespace,
        display_name=name, owner=str(annotations.get("notebooks.kubeflow.org/creator") or ""), app_type=app,
        template="", image=image, status=state, reason=reason, cpu=str(wanted.get("cpu") or ""),
        memory=str(wanted.get("memory") or ""), gpus=gpus, mig_profile=mig, mig_count=mig_count, storage="",
        idle_enabled=False, idle_minutes=None, idle_since=None,
        queue=(meta.get("labels") or {}).get(QUEUE_LABEL), priority=(meta.get("labels") or {}).get(PRIORITY_LABEL),
        created=parse_time(meta.get("creationTimestamp")), access_url=None,
        pods=_pods_of(namespace, name, pods or {}, "notebook-name"),
    )


def space_rows(stores: Mapping[str, Mapping[str, Obj]], owner: str | None = None,
               activity: Mapping[str, datetime] | None = None) -> list[SpaceRow]:
    """Every space in the stores, Workspaces first; only `owner`'s when given. `activity` (space key
    `namespace/name` -> its JupyterLab's last activity, from `/api/status`) says how long a running space is idle."""
    templates = stores.get("workspacetemplates") or {}
    pods = index_pods(stores.get("pods") or {})
    rows = [workspace_row(ws, templates, pods) for ws in (stores.get("workspaces") or {}).values()]
    rows += [notebook_row(nb, pods) for nb in (stores.get("notebooks") or {}).values()]
    if owner is not None:
        rows = [r for r in rows if r.owner == owner]
    if activity:
        rows = [replace(r, idle_since=activity[r.space_key]) if r.space_key in activity else r for r in rows]
    return sorted(rows, key=lambda r: (r.namespace, r.name, r.kind))


def space_dict(row: SpaceRow, now: datetime) -> dict[str, Any]:
    """One space as `hyperdesk get spaces -o json|yaml` prints it."""
    return {
        "name": row.name, "namespace": row.namespace, "kind": row.kind, "display_name": row.display_name,
        "owner": row.owner or None, "app_type": row.app_type, "status": row.status, "reason": row.reason or None,
        "template": row.template or None, "image": row.image, "cpu": row.cpu or None, "memory": row.memory or None,
        "gpus": row.gpus, "mig_profile": row.mig_profile, "mig_count": row.mig_count, "storage": row.storage or None,
        "idle_shutdown": row.idle_enabled, "idle_minutes": row.idle_minutes if row.idle_enabled else None,
        "idle_for_minutes": (lambda s: None if s is None else s // 60)(row.idle_seconds(now)),
        "queue": row.queue, "priority": row.priority, "access_url": row.access_url,
        "age_seconds": row.age_seconds(now),
    }


# ----------------------------------------------------------------------------------------------- templates

@dataclass(frozen=True)
class Bound:
    resource: str
    min: str | None
    max: str | None

    def problem(self, value: Any, label: str) -> str | None:
        amount = quantity(value)
        if amount is None:
            return None
        low, high = quantity(self.min), quantity(self.max)
        if low is not None and amount < low:
            return f"{label} {value} is below the template's minimum {self.min}"
        if high is not None and amount > high:
            return f"{label} {value} is above the template's maximum {self.max}"
        return None

    @property
    def text(self) -> str:
        return f"{self.min or '0'}–{self.max or '∞'}"


@dataclass(frozen=True)
class TemplateInfo:
    key: str
    """`namespace/name`."""
    name: str
    namespace: str
    display_name: str
    app_type: str
    app_type_raw: str
    default_image: str
    allowed_images: tuple[str, ...]
    allow_custom_images: bool
    default_cpu: str
    default_memory: str
    default_gpus: int
    bounds: tuple[Bound, ...]
    storage_default: str
    storage_min: str | None
    storage_max: str | None
    idle_enabled: bool
    idle_minutes: int | None
    access_type: str
    idle_override: bool = True
    """`idleShutdownOverrides.allow`: whether a space may set its own idle shutdown."""
    idle_min: int | None = None
    idle_max: int | None = None
    default_resources: dict[str, Any] = field(default_factory=dict, compare=False)
    """`spec.defaultResources` as the template has it (requests and limits): what a new space starts from."""

    def bound(self, resource: str) -> Bound | None:
        return next((b for b in self.bounds if b.resource == resource), None)

    @property
    def bounds_text(self) -> str:
        parts = [f"{b.resource.removeprefix('nvidia.com/')} {b.text}" for b in self.bounds]
        if self.storage_min or self.storage_max:
            parts.append(f"storage {self.storage_min or '0'}–{self.storage_max or '∞'}")
        return ", ".join(parts)


def template_info(obj: Obj) -> TemplateInfo:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    defaults = requested_resources(spec.get("defaultResources"))
    bounds = tuple(
        Bound(resource, _str(b.get("min")), _str(b.get("max")))
        for resource, b in sorted(((spec.get("resourceBounds") or {}).get("resources") or {}).items())
        if isinstance(b, dict)
    )
    storage = spec.get("primaryStorage") or {}
    idle = spec.get("defaultIdleShutdown") or {}
    overrides = spec.get("idleShutdownOverrides") or {}
    image = str(spec.get("defaultImage") or "")
    allowed = tuple(str(i) for i in spec.get("allowedImages") or ()) or ((image,) if image else ())
    return TemplateInfo(
        key=f"{meta.get('namespace', '')}/{meta.get('name', '')}", name=meta.get("name") or "",
        namespace=meta.get("namespace") or "", display_name=str(spec.get("displayName") or meta.get("name") or ""),
        app_type=app_type_text(spec.get("appType") or "jupyterlab"), app_type_raw=str(spec.get("appType") or ""),
        default_image=image, allowed_images=allowed, allow_custom_images=bool(spec.get("allowCustomImages")),
        default_cpu=str(defaults.get("cpu") or ""), default_memory=str(defaults.get("memory") or ""),
        default_gpus=int(quantity(defaults.get(GPU)) or 0), bounds=bounds,
        storage_default=str(storage.get("defaultSize") or ""), storage_min=_str(storage.get("minSize")),
        storage_max=_str(storage.get("maxSize")), idle_enabled=bool(idle.get("enabled")),
        idle_minutes=_int(idle.get("idleTimeoutInMinutes")), access_type=str(spec.get("defaultAccessType") or ""),
        idle_override=overrides.get("allow") is not False, idle_min=_int(overrides.get("minIdleTimeoutInMinutes")),
        idle_max=_int(overrides.get("maxIdleTimeoutInMinutes")),
        default_resources={k: dict(v) for k, v in (spec.get("defaultResources") or {}).items() if isinstance(v, dict)},
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def template_infos(stores: Mapping[str, Mapping[str, Obj]]) -> list[TemplateInfo]:
    return sorted((template_info(t) for t in (stores.get("workspacetemplates") or {}).values()), key=lambda t: t.key)


def template_dict(t: TemplateInfo) -> dict[str, Any]:
    return {
        "name": t.name, "namespace": t.namespace, "display_name": t.display_name, "app_type": t.app_type,
        "default_image": t.default_image, "allowed_images": list(t.allowed_images),
        "allow_custom_images": t.allow_custom_images, "default_cpu": t.default_cpu or None,
        "default_memory": t.default_memory or None, "default_gpus": t.default_gpus,
        "bounds": {b.resource: {"min": b.min, "max": b.max} for b in t.bounds},
        "storage": {"default": t.storage_default or None, "min": t.storage_min, "max": t.storage_max},
        "idle_minutes": t.idle_minutes if t.idle_enabled else None,
    }


def offered_gpu_resources(nodes: Iterable[Obj]) -> dict[str, int]:
    """GPU resources the nodes advertise (whole `nvidia.com/gpu` and MIG `nvidia.com/mig-*`), summed."""
    offered: dict[str, int] = {}
    for node in nodes:
        if ((node.get("spec") or {}).get("unschedulable")):
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource, value in allocatable.items():
            if resource == GPU or resource.startswith(MIG_PREFIX):
                amount = int(quantity(value) or 0)
                if amount:
                    offered[resource] = offered.get(resource, 0) + amount
    return offered


def offered_mig_profiles(nodes: Iterable[Obj]) -> list[str]:
    return sorted(p for r in offered_gpu_resources(nodes) if (p := mig_profile_of(r)))


# ------------------------------------------------------------------------------------------ new space request

@dataclass
class SpaceRequest:
    """What the form and `hyperdesk space create` collect; empty strings mean "the template's default"."""

    name: str
    namespace: str
    template: str = ""
    """`namespace/name` or `name` (then looked for in the space's namespace, then jupyter-k8s-system)."""
    display_name: str = ""
    image: str = ""
    cpu: str = ""
    memory: str = ""
    gpus: int | None = None
    """None: the template's default; 0: no GPU."""
    mig_profile: str = ""
    storage: str = ""
    idle_minutes: int | None = None
    """None: the template's default; 0: no idle shutdown."""
    queue: str = ""
    priority: str = ""
    owner: str = ""


def resolve(request: SpaceRequest, template: TemplateInfo | None) -> SpaceRequest:
    """The request with the template's defaults filled in where the user left a field empty."""
    if template is None:
        return replace(request, gpus=request.gpus or 0)
    return SpaceRequest(
        name=request.name, namespace=request.namespace, template=template.key,
        display_name=request.display_name or request.name, image=request.image or template.default_image,
        cpu=request.cpu or template.default_cpu, memory=request.memory or template.default_memory,
        gpus=request.gpus if request.gpus is not None else (0 if request.mig_profile else template.default_gpus),
        mig_profile=request.mig_profile, storage=request.storage or template.storage_default,
        idle_minutes=request.idle_minutes if request.idle_minutes is not None else (
            template.idle_minutes if template.idle_enabled else 0),
        queue=request.queue, priority=request.priority, owner=request.owner,
    )


def validate_request(request: SpaceRequest, template: TemplateInfo | None, *,
                     gpu_offer: Mapping[str, int] | None = None, queues: Iterable[str] | None = None,
                     priorities: Iterable[str] | None = None, fields: Iterable[str] | None = None) -> list[str]:
    """Every reason the (resolved) request cannot be created as asked, in the order of the form's fields.

    `gpu_offer` (from `offered_gpu_resources`) checks GPUs and MIG profiles against what the nodes advertise;
    `queues`/`priorities` check Kueue names against what the cluster has. None skips a check (not known).
    `fields` (of FIELDS) keeps only the problems of those fields (an edit checks only the compute)."""
    problems: list[str] = []
    only = None if fields is None else set(fields)

    def add(field_name: str, problem: str) -> None:
        if only is None or field_name in only:
            problems.append(problem)

    if request.gpus is None:
        request = replace(request, gpus=0)
    name = request.name
    if not name:
        add("name", "name: required")
    elif not DNS_LABEL.match(name):
        add("name", f"name {name!r}: lower-case letters, digits and '-' only, starting and ending with a "
                        "letter or digit")
    elif len(name) > MAX_NAME:
        add("name", f"name {name!r}: at most {MAX_NAME} characters (its Service is workspace-<name>-service)")
    if not request.namespace or not DNS_LABEL.match(request.namespace):
        add("namespace", f"namespace {request.namespace!r} is not a valid namespace name")
    if name and not request.display_name.strip():
        add("display", "display name: required")
    if template is None:
        if request.template:
            add("template", f"template {request.template!r} not found")
    else:
        if request.image and request.image not in template.allowed_images and not template.allow_custom_images:
            add("image", f"image {request.image!r} is not allowed by {template.name} (allowed: "
                            f"{', '.join(template.allowed_images) or 'none'}; custom images are off)")
    for label, value in (("CPU", request.cpu), ("memory", request.memory), ("storage", request.storage)):
        if value and quantity(value) is None:
            add(label.lower(), f"{label} {value!r} is not a quantity (like 2, 500m, 16Gi)")
    if request.gpus < 0:
        add("gpus", "GPUs: must not be negative")
    if request.gpus and request.mig_profile:
        add("gpus", "GPUs: ask for whole GPUs or a MIG profile, not both")
    if request.mig_profile and gpu_offer is None and not MIG_PROFILE.match(request.mig_profile):
        add("gpus", f"MIG profile {request.mig_profile!r} is not a profile name (like 1g.10gb)")
    elif request.mig_profile and gpu_offer is not None and f"{MIG_PREFIX}{request.mig_profile}" not in gpu_offer:
        offered = sorted(p for r in gpu_offer if (p := mig_profile_of(r)))
        add("gpus", f"MIG profile {request.mig_profile}: no node offers it (offered: "
                        f"{', '.join(offered) or 'none'})")
    if request.gpus and gpu_offer is not None and not gpu_offer.get(GPU):
        add("gpus", "GPUs: no schedulable node offers whole GPUs (nvidia.com/gpu)")
    if template is not None:
        for resource, label, value in (("cpu", "CPU", request.cpu), ("memory", "memory", request.memory),
                                       (GPU, "GPUs", str(request.gpus) if request.gpus or template.bound(GPU) else "")):
            bound = template.bound(resource)
            if bound is not None and value:
                problem = bound.problem(value, label)
                if problem:
                    add("gpus" if resource == GPU else resource, problem)
        if request.mig_profile:
            bound = template.bound(f"{MIG_PREFIX}{request.mig_profile}")
            if bound is not None:
                problem = bound.problem("1", f"MIG {request.mig_profile}")
                if problem:
                    add("gpus", problem)
        if request.storage:
            problem = Bound("storage", template.storage_min, template.storage_max).problem(request.storage, "storage")
            if problem:
                add("storage", problem)
    if request.idle_minutes is not None and request.idle_minutes < 0:
        add("idle", "idle shutdown: minutes must not be negative (0 turns it off)")
    elif template is not None and request.idle_minutes is not None:
        for problem in idle_problems(request.idle_minutes, template):
            add("idle", problem)
    known_queues = None if queues is None else set(queues)
    if request.queue and known_queues is not None and request.queue not in known_queues:
        add("queue", f"queue {request.queue!r}: no such LocalQueue in {request.namespace} (known: "
                        f"{', '.join(sorted(known_queues)) or 'none'})")
    known_priorities = None if priorities is None else set(priorities)
    if request.priority and known_priorities is not None and request.priority not in known_priorities:
        add("priority", f"priority {request.priority!r}: no such WorkloadPriorityClass (known: "
                        f"{', '.join(sorted(known_priorities)) or 'none'})")
    return problems


def idle_problems(minutes: int, template: TemplateInfo) -> list[str]:
    """What the template's `idleShutdownOverrides` say against asking for `minutes` (0: off)."""
    default = template.idle_minutes if template.idle_enabled else 0
    if minutes == default:
        return []
    if not template.idle_override:
        now = f"{default} minutes" if default else "off"
        return [f"idle shutdown: {template.name} does not let a space change it (it is {now})"]
    if minutes == 0:
        return [f"idle shutdown: {template.name} requires it (at most {template.idle_max} minutes)"] \
            if template.idle_max is not None else []
    if template.idle_min is not None and minutes < template.idle_min:
        return [f"idle shutdown {minutes} minutes is below the template's minimum {template.idle_min}"]
    if template.idle_max is not None and minutes > template.idle_max:
        return [f"idle shutdown {minutes} minutes is above the template's maximum {template.idle_max}"]
    return []


def resource_block(cpu: str, memory: str, gpus: int, mig_profile: str,
                   base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`base` (a ResourceRequirements: the space's own, or its template's defaults) with the compute asked for:
    CPU and memory requests replaced where given (a limit below the new request is raised to it, other limits
    kept), GPU and MIG keys replaced as a whole (requests equal limits for them), every other key kept."""
    base = base or {}
    requests = dict(base.get("requests") or {})
    limits = dict(base.get("limits") or {})
    for key, value in (("cpu", cpu), ("memory", memory)):
        if not value:
            continue
        requests[key] = value
        limit, wanted = quantity(limits.get(key)), quantity(value)
        if limit is not None and wanted is not None and wanted > limit:
            limits[key] = value
    for block in (requests, limits):
        for key in [k for k in block if k == GPU or k.startswith(MIG_PREFIX)]:
            del block[key]
    if gpus:
        requests[GPU] = limits[GPU] = str(gpus)
    if mig_profile:
        requests[f"{MIG_PREFIX}{mig_profile}"] = limits[f"{MIG_PREFIX}{mig_profile}"] = "1"
    out = {k: v for k, v in base.items() if k not in ("requests", "limits")}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def workspace_manifest(request: SpaceRequest, template: TemplateInfo | None) -> Obj:
    """The Workspace for a resolved, valid request (see `resolve` and `validate_request`)."""
    labels: dict[str, str] = {}
    if request.queue:
        labels[QUEUE_LABEL] = request.queue
    if request.priority:
        labels[PRIORITY_LABEL] = request.priority
    metadata: dict[str, Any] = {"name": request.name, "namespace": request.namespace}
    if labels:
        metadata["labels"] = labels
    if request.owner:
        metadata["annotations"] = {CREATED_BY: request.owner}
    spec: dict[str, Any] = {"displayName": request.display_name or request.name, "desiredStatus": "Running"}
    if template is not None:
        spec["templateRef"] = {"name": template.name, "namespace": template.namespace}
        if template.app_type_raw:
            spec["appType"] = template.app_type_raw
        if template.access_type in ("Public", "OwnerOnly"):
            spec["accessType"] = template.access_type
    if request.image:
        spec["image"] = request.image
    resources = resource_block(request.cpu, request.memory, request.gpus or 0, request.mig_profile,
                               template.default_resources if template is not None else None)
    if resources:
        spec["resources"] = resources
    if request.mig_profile:
        spec["nodeSelector"] = {"nvidia.com/mig.strategy": "mixed"}
    if request.storage:
        spec["storage"] = {"size": request.storage}
    if template is None or template.idle_override:  # else the template's idle shutdown applies, not the space's
        if request.idle_minutes:
            spec["idleShutdown"] = {"enabled": True, "idleTimeoutInMinutes": int(request.idle_minutes),
                                    "detection": IDLE_DETECTION}
        elif request.idle_minutes == 0:
            spec["idleShutdown"] = {"enabled": False, "idleTimeoutInMinutes": 1, "detection": IDLE_DETECTION}
    return {"apiVersion": API_VERSION, "kind": "Workspace", "metadata": metadata, "spec": spec}


# ------------------------------------------------------------------------------------------------- detail

@dataclass(frozen=True)
class SpaceDetail:
    row: SpaceRow
    conditions: tuple[tuple[datetime | None, str, str, str, str], ...]
    """(time, type, status, reason, message)"""
    pods: tuple[tuple[str, str, str, int], ...]
    """(name, node, phase, restarts)"""
    events: tuple[tuple[datetime | None, str, str, str, str, int], ...]
    """(time, type, reason, object, message, count)"""
    template: TemplateInfo | None


def space_detail(row: SpaceRow, stores: Mapping[str, Mapping[str, Obj]], events_limit: int = 15) -> SpaceDetail:
    store = stores.get(row.key.split("/", 1)[0]) or {}
    obj = store.get(row.space_key) or {}
    conditions = tuple(
        (parse_time(c.get("lastTransitionTime")), c.get("type", ""), c.get("status", ""), c.get("reason", ""),
         c.get("message", ""))
        for c in (obj.get("status") or {}).get("conditions") or ()
    )
    pod_objs = [p for key in row.pods if (p := (stores.get("pods") or {}).get(key))]
    pods = tuple(
        ((p.get("metadata") or {}).get("name", ""), (p.get("spec") or {}).get("nodeName") or "",
         (p.get("status") or {}).get("phase") or "",
         sum(int(cs.get("restartCount") or 0) for cs in (p.get("status") or {}).get("containerStatuses") or ()))
        for p in pod_objs
    )
    names = {(row.kind, row.name)} | {("Pod", p[0]) for p in pods}
    events = []
    for event in (stores.get("events") or {}).values():
        involved = event.get("involvedObject") or {}
        if involved.get("namespace") == row.namespace and (involved.get("kind"), involved.get("name")) in names:
            events.append((parse_time(event.get("lastTimestamp") or event.get("eventTime")
                                      or (event.get("metadata") or {}).get("creationTimestamp")),
                           event.get("type", ""), event.get("reason", ""),
                           f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
                           event.get("message", ""), int(event.get("count") or 1)))
    events.sort(key=lambda e: (e[0] is None, e[0] or datetime.min))
    template_obj = (stores.get("workspacetemplates") or {}).get(f"{row.template_namespace}/{row.template}")
    return SpaceDetail(row, conditions, pods, tuple(events[-events_limit:]),
                       template_info(template_obj) if template_obj else None)


__all__ = ["STATUSES", "SpaceRow", "SpaceRequest", "TemplateInfo", "Bound", "SpaceDetail", "human_duration",
           "space_rows", "space_dict", "template_infos", "template_dict", "validate_request", "resolve",
           "workspace_manifest", "workspace_status", "offered_gpu_resources", "offered_mig_profiles", "quantity",
           "requested_resources", "whole_number"]
