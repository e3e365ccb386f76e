"""Training jobs as the Jobs pane shows them: one row per job across kinds, joined with its Kueue Workload and pods.

Pure functions over the stores' plain dicts; no I/O. State follows the HyperPod CLI's rule (the type of the last
condition whose status is True), refined by the Workload (queued, preempted, deactivated), as users of Kueue read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

Obj = dict[str, Any]

JOB_KINDS: dict[str, str] = {
    # store name -> the kind shown in the KIND column
    "hyperpodpytorchjobs": "HyperPodPyTorchJob",
    "pytorchjobs": "PyTorchJob",
    "jobs": "Job",
    "jobsets": "JobSet",
}

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"

STATES = ("Queued", "Admitted", "Running", "Succeeded", "Failed", "Suspended", "Preempted")


@dataclass(frozen=True)
class JobRow:
    key: str
    """`<store>/<namespace>/<name>`: unique across kinds."""
    name: str
    namespace: str
    team: str
    kind: str
    queue: str | None
    priority: str | None
    state: str
    position: int | None
    gpus: int
    mig: Mapping[str, int]
    """MIG profile (e.g. `3g.40gb`) -> slices requested."""
    nodes: int
    """Pods (nodes, for the distributed kinds) the job asks for."""
    procs: int
    restarts: int
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    hint: str
    """Why it waits, or who preempted it: one line for the table."""
    workload: str | None = None
    """`namespace/name` of its Workload, when Kueue manages it."""
    pods: tuple[str, ...] = field(default_factory=tuple)

    def age_seconds(self, now: datetime) -> int | None:
        return None if self.created is None else max(0, int((now - self.created).total_seconds()))

    def run_seconds(self, now: datetime) -> int | None:
        if self.started is None:
            return None
        return max(0, int(((self.finished or now) - self.started).total_seconds()))

    @property
    def gpu_text(self) -> str:
        parts = [str(self.gpus)] if self.gpus or not self.mig else []
        parts += [f"{count}×{profile}" for profile, count in sorted(self.mig.items())]
        return " + ".join(parts)


def team_of(namespace: str) -> str:
    """HyperPod task governance names team namespaces `hyperpod-ns-<team>`."""
    return namespace.removeprefix("hyperpod-ns-")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Obj, kind: str) -> bool:
    return (condition(obj, kind) or {}).get("status") == "True"


# ------------------------------------------------------------------------------------------------- requests

def _templates(kind: str, job: Obj) -> list[tuple[int, Obj]]:
    """(replicas, pod template) for each replica group of the job."""
    spec = job.get("spec") or {}
    if kind == "HyperPodPyTorchJob":
        return [(int(r.get("replicas") or 0), r.get("template") or {}) for r in spec.get("replicaSpecs") or ()]
    if kind == "PyTorchJob":
        return [(int(r.get("replicas") or 0), r.get("template") or {})
                for r in (spec.get("pytorchReplicaSpecs") or {}).values() if isinstance(r, dict)]
    if kind == "Job":
        return [(int(spec.get("parallelism") or 1), spec.get("template") or {})]
    if kind == "JobSet":
        groups = []
        for rj in spec.get("replicatedJobs") or ():
            job_spec = ((rj.get("template") or {}).get("spec") or {})
            groups.append((int(rj.get("replicas") or 1) * int(job_spec.get("parallelism") or 1),
                           job_spec.get("template") or {}))
        return groups
    return []


def _requests(template: Obj) -> dict[str, int]:
    """The GPU-like extended resources one pod asks for (limits win over requests, as for extended resources)."""
    total: dict[str, int] = {}
    for container in ((template.get("spec") or {}).get("containers") or ()):
        resources = container.get("resources") or {}
        wanted = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        for name, value in wanted.items():
            if name == GPU or name.startswith(MIG_PREFIX):
                try:
                    total[name] = total.get(name, 0) + int(str(value))
                except ValueError:
                    continue
    return total


def gpu_request(kind: str, job: Obj) -> tuple[int, dict[str, int], int]:
    """(whole GPUs, MIG slices by profile, pods) the job asks for in all."""
    gpus, mig, pods = 0, {}, 0
    for replicas, template in _templates(kind, job):
        pods += replicas
        for name, count in _requests(template).items():
            if name == GPU:
                gpus += count * replicas
            else:
                profile = name.removeprefix(MIG_PREFIX)
                mig[profile] = mig.get(profile, 0) + count * replicas
    return gpus, mig, pods


# ---------------------------------------------------------------------------------------------------- state

def job_condition_state(kind: str, job: Obj) -> str | None:
    """The state the job's own conditions give, before Kueue's view refines it."""
    status = job.get("status") or {}
    conditions = [c for c in status.get("conditions") or () if c.get("status") == "True"]
    if kind == "Job":
        types = {c.get("type") for c in conditions}
        if "Complete" in types or "SuccessCriteriaMet" in types:
            return "Succeeded"
        if "Failed" in types or "FailureTarget" in types:
            return "Failed"
        if (job.get("spec") or {}).get("suspend") or "Suspended" in types:
            return "Suspended"
        return "Running" if status.get("active") else None
    if not conditions:
        return "Suspended" if _suspended(kind, job) else None
    last = conditions[-1].get("type")
    return {
        "Created": None, "PodsRunning": "Running", "Running": "Running", "Restarting": "Running",
        "Succeeded": "Succeeded", "Completed": "Succeeded", "Failed": "Failed", "Suspended": "Suspended",
    }.get(last, None)


def _suspended(kind: str, job: Obj) -> bool:
    spec = job.get("spec") or {}
    if kind in ("Job", "JobSet"):
        return bool(spec.get("suspend"))
    return bool((spec.get("runPolicy") or {}).get("suspend"))


def job_state(kind: str, job: Obj, workload: Obj | None, pods: list[Obj] = ()) -> str:
    own = job_condition_state(kind, job)
    if own is None and any((p.get("status") or {}).get("phase") == "Running" for p in pods):
        own = "Running"  # kinds whose conditions don't say so (JobSet): its pods do
    if own in ("Succeeded", "Failed"):
        return own
    if workload is not None:
        if (workload.get("spec") or {}).get("active") is False:
            return "Suspended"
        if is_true(workload, "Finished"):
            return own or "Succeeded"
        admitted = is_true(workload, "Admitted") or is_true(workload, "QuotaReserved")
        if not admitted:
            evicted = condition(workload, "Evicted")
            if is_true(workload, "Preempted") or (evicted or {}).get("reason") == "Preempted":
                return "Preempted"
            return "Queued"
        if own == "Running":
            return "Running"
        return "Admitted"
    if own == "Suspended":
        return "Suspended"
    return own or "Running"


def hint(workload: Obj | None, state: str) -> str:
    """One line: why it waits (Kueue's own message), or who preempted it and why."""
    if workload is None or state not in ("Queued", "Preempted"):
        return ""
    if state == "Preempted":
        preempted = condition(workload, "Preempted") or condition(workload, "Evicted") or {}
        reason = preempted.get("reason") or ""
        message = preempted.get("message") or ""
        return f"{reason}: {message}".strip(": ") if reason and reason not in message else message
    reserved = condition(workload, "QuotaReserved") or {}
    return reserved.get("message") or ""


def priority_of(job: Obj, workload: Obj | None) -> str | None:
    labels = (job.get("metadata") or {}).get("labels") or {}
    if labels.get(PRIORITY_LABEL):
        return labels[PRIORITY_LABEL]
    spec = (workload or {}).get("spec") or {}
    ref = spec.get("priorityClassRef") or {}
    return spec.get("priorityClassName") or ref.get("name")


# ----------------------------------------------------------------------------------------------------- join

def owned_by(objects: Iterable[Obj]) -> dict[str, list[Obj]]:
    """uid of an owner -> the objects it owns (its Workload, its pods...)."""
    index: dict[str, list[Obj]] = {}
    for obj in objects:
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("uid"):
                index.setdefault(ref["uid"], []).append(obj)
    return index


def job_pods(kind: str, job: Obj, pods_by_owner: Mapping[str, list[Obj]],
             pods_by_label: Mapping[tuple[str, str, str], list[Obj]]) -> list[Obj]:
    """A job's pods: owned directly (Job), or labelled as the operators label them."""
    meta = job.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if kind == "HyperPodPyTorchJob":
        return pods_by_label.get(("HPJob", namespace, name), [])
    if kind == "PyTorchJob":
        return pods_by_label.get(("training.kubeflow.org/job-name", namespace, name), [])
    if kind == "JobSet":
        return pods_by_label.get(("jobset.sigs.k8s.io/jobset-name", namespace, name), [])
    return pods_by_owner.get(meta.get("uid", ""), [])


POD_JOB_LABELS = ("HPJob", "training.kubeflow.org/job-name", "jobset.sigs.k8s.io/jobset-name")


def index_pods(pods: Iterable[Obj]) -> dict[tuple[str, str, str], list[Obj]]:
    index: dict[tuple[str, str, str], list[Obj]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        for label in POD_JOB_LABELS:
            if label in labels:
                index.setdefault((label, meta.get("namespace", ""), labels[label]), []).append(pod)
    return index


def restarts(kind: str, job: Obj, pods: list[Obj]) -> int:
    status = job.get("status") or {}
    if isinstance(status.get("restartCount"), int):
        return status["restartCount"]
    return sum(int(cs.get("restartCount") or 0)
               for pod in pods for cs in (pod.get("status") or {}).get("containerStatuses") or ())


def _int_or(value: Any, default: int) -> int:
    try:
        return int(str(value)) or default
    except ValueError:
        return default


def job_rows(stores: Mapping[str, Mapping[str, Obj]], positions: Mapping[str, int] | None = None) -> list[JobRow]:
    """Every job in `stores` (store name -> key -> object), joined with `workloads` and `pods`.

    `positions`: Workload `namespace/name` -> position in its ClusterQueue (the visibility API), when served.
    """
    positions = positions or {}
    workloads = owned_by((stores.get("workloads") or {}).values())
    pods = list((stores.get("pods") or {}).values())
    pods_by_owner = owned_by(pods)
    pods_by_label = index_pods(pods)
    rows: list[JobRow] = []
    for store_name, kind in JOB_KINDS.items():
        for job in (stores.get(store_name) or {}).values():
            meta = job.get("metadata") or {}
            if any(ref.get("kind") in JOB_KINDS.values() for ref in meta.get("ownerReferences") or ()):
                continue  # a JobSet's child Jobs are part of its row
            namespace, name = meta.get("namespace", ""), meta.get("name", "")
            owned = workloads.get(meta.get("uid", ""), [])
            workload = owned[0] if owned else None
            workload_key = f"{namespace}/{workload['metadata']['name']}" if workload else None
            its_pods = job_pods(kind, job, pods_by_owner, pods_by_label)
            state = job_state(kind, job, workload, its_pods)
            gpus, mig, pod_count = gpu_request(kind, job)
            procs = _int_or((job.get("spec") or {}).get("nprocPerNode"), 1)  # HyperPod also accepts "auto"
            status = job.get("status") or {}
            labels = meta.get("labels") or {}
            rows.append(JobRow(
                key=f"{store_name}/{namespace}/{name}",
                name=name,
                namespace=namespace,
                team=team_of(namespace),
                kind=kind,
                queue=labels.get(QUEUE_LABEL) or ((workload or {}).get("spec") or {}).get("queueName"),
                priority=priority_of(job, workload),
                state=state,
                position=positions.get(workload_key) if workload_key and state in ("Queued", "Preempted") else None,
                gpus=gpus,
                mig=mig,
                nodes=pod_count,
                procs=procs,
                restarts=restarts(kind, job, its_pods),
                created=parse_time(meta.get("creationTimestamp")),
                started=parse_time(status.get("startTime")),
                finished=parse_time(status.get("completionTime")),
                hint=hint(workload, state),
                workload=workload_key,
                pods=tuple(sorted(f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}" for p in its_pods)),
            ))
    return sorted(rows, key=lambda r: (r.namespace, r.name, r.kind))


def human_duration(seconds: int | None) -> str:
    """kubectl's compact age: 45s, 12m, 3h, 5d."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------------- detail

@dataclass(frozen=True)
class ConditionEntry:
    time: datetime | None
    source: str
    """`Job` or `Workload`."""
    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class PodEntry:
    name: str
    node: str
    phase: str
    restarts: int
    gpus: str


@dataclass(frozen=True)
class EventEntry:
    time: datetime | None
    type: str
    reason: str
    object: str
    message: str
    count: int


@dataclass(frozen=True)
class JobDetail:
    row: JobRow
    conditions: tuple[ConditionEntry, ...]
    pods: tuple[PodEntry, ...]
    events: tuple[EventEntry, ...]
    admission: str
    """Where Kueue admitted it: `ClusterQueue: flavor (resource=amount, ...)`."""


def conditions_of(obj: Obj | None, source: str) -> list[ConditionEntry]:
    return [
        ConditionEntry(parse_time(c.get("lastTransitionTime")), source, c.get("type", ""), c.get("status", ""),
                       c.get("reason", ""), c.get("message", ""))
        for c in ((obj or {}).get("status") or {}).get("conditions") or ()
    ]


def pod_gpus(pod: Obj) -> str:
    wanted = _requests({"spec": pod.get("spec") or {}})
    parts = [str(v) if k == GPU else f"{v}×{k.removeprefix(MIG_PREFIX)}" for k, v in sorted(wanted.items())]
    return " + ".join(parts)


def events_about(stores: Mapping[str, Mapping[str, dict]], namespace: str,
                 names: set[tuple[str, str]]) -> list[EventEntry]:
    """The events of `namespace` whose involved object is one of `names` ((kind, name) pairs), oldest first."""
    events = []
    for event in (stores.get("events") or {}).values():
        involved = event.get("involvedObject") or {}
        if involved.get("namespace") == namespace and (involved.get("kind"), involved.get("name")) in names:
            events.append(EventEntry(
                time=parse_time(event.get("lastTimestamp") or event.get("eventTime")
                                or (event.get("metadata") or {}).get("creationTimestamp")),
                type=event.get("type", ""), reason=event.get("reason", ""),
                object=f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
                message=event.get("message", ""), count=int(event.get("count") or 1),
            ))
    events.sort(key=lambda e: (e.time is None, e.time or datetime.min.replace(tzinfo=timezone.utc)))
    return events


def job_detail(row: JobRow, stores: Mapping[str, Mapping[str, Obj]], events_limit: int = 20) -> JobDetail:
    """Everything the detail view shows for one job: conditions of the job and its Workload on one timeline, its
    pods, and the latest events about any of them."""
    store_name = row.key.split("/", 1)[0]
    job = (stores.get(store_name) or {}).get(f"{row.namespace}/{row.name}") or {}
    workload = (stores.get("workloads") or {}).get(row.workload or "") if row.workload else None
    conditions = sorted(conditions_of(job, "Job") + conditions_of(workload, "Workload"),
                        key=lambda c: (c.time is None, c.time or datetime.min.replace(tzinfo=timezone.utc)))
    pod_objs = [(stores.get("pods") or {}).get(key) for key in row.pods]
    pods = tuple(
        PodEntry(
            name=p["metadata"]["name"],
            node=(p.get("spec") or {}).get("nodeName") or "",
            phase=(p.get("status") or {}).get("phase") or "",
            restarts=sum(int(cs.get("restartCount") or 0) for cs in (p.get("status") or {}).get("containerStatuses") or ()),
            gpus=pod_gpus(p),
        )
        for p in pod_objs if p
    )
    names = {("Job" if row.kind == "Job" else row.kind, row.name)}
    if workload:
        names.add(("Workload", workload["metadata"]["name"]))
    names |= {("Pod", p.name) for p in pods}
    events = events_about(stores, row.namespace, names)
    return JobDetail(row, tuple(conditions), pods, tuple(events[-events_limit:]), _admission(workload))


def _admission(workload: Obj | None) -> str:
    admission = ((workload or {}).get("status") or {}).get("admission") or {}
    if not admission:
        return ""
    parts = []
    for podset in admission.get("podSetAssignments") or ():
        flavors = ", ".join(sorted(set((podset.get("flavors") or {}).values())))
        usage = ", ".join(f"{k}={v}" for k, v in sorted((podset.get("resourceUsage") or {}).items()))
        parts.append(f"{podset.get('name', '')}: {flavors} ({usage})")
    return f"{admission.get('clusterQueue', '')} — " + "; ".join(parts)
