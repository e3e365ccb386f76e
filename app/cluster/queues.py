"""Kueue as a user reads it: queue positions (the visibility API), quotas per ClusterQueue, what a submission may
choose, and the job listing the CLI prints (the same rows as the Jobs pane).

    positions = await queue_positions(conn, discovery, ["hyperpod-ns-nlp-clusterqueue"])   # {"ns/workload": 0}
    rows = quota_rows(stores["clusterqueues"], stores["localqueues"])                        # pure
    choices = await submit_choices(conn, discovery, "hyperpod-ns-nlp")                      # queues, priorities
    jobs = await fetch_jobs(conn, discovery, namespace=None)                                # list[JobRow]
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS
from app.model.jobs import GPU, JOB_KINDS, JobRow, job_rows

Obj = dict[str, Any]

VISIBILITY_GROUP = "visibility.kueue.x-k8s.io"
VISIBILITY_VERSIONS = ("v1beta2", "v1beta1")


# ------------------------------------------------------------------------------------------- positions

async def visibility_version(conn: ClusterConnection, discovery: Any = None) -> str | None:
    """The visibility API version to use (the Kueue version discovery chose, if the visibility group serves it),
    or None when it is not served or may not be read."""
    try:
        group = await conn.request("GET", f"/apis/{VISIBILITY_GROUP}")
    except ApiError:
        return None
    served = [v.get("version") for v in (group or {}).get("versions") or ()]
    preferred = discovery.version("workloads") if discovery is not None else None
    for version in ((preferred,) if preferred else ()) + VISIBILITY_VERSIONS:
        if version in served:
            return version
    return None


async def queue_positions(conn: ClusterConnection, discovery: Any, clusterqueue_names: Iterable[str]) -> dict[str, int]:
    """Workload `namespace/name` -> positionInClusterQueue of every pending Workload in these ClusterQueues.

    `{}` (never an exception) when the visibility API is not served, is forbidden, or fails: positions are a
    nicety the Jobs pane shows when it can.
    """
    names = sorted(set(clusterqueue_names))
    if not names:
        return {}
    version = await visibility_version(conn, discovery)
    if version is None:
        return {}

    async def one(cq: str) -> dict[str, int]:
        try:
            answer = await conn.request("GET", f"/apis/{VISIBILITY_GROUP}/{version}/clusterqueues/{cq}/pendingworkloads")
        except ApiError:
            return {}
        result = {}
        for item in (answer or {}).get("items") or ():
            meta = item.get("metadata") or {}
            if isinstance(item.get("positionInClusterQueue"), int):
                result[f"{meta.get('namespace')}/{meta.get('name')}"] = item["positionInClusterQueue"]
        return result

    positions: dict[str, int] = {}
    for part in await asyncio.gather(*(one(cq) for cq in names)):
        positions.update(part)
    return positions


# ---------------------------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`8`, `500m`, `6Ti`, `1.5Gi`) as a number of base units; None when unparseable."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def number(value: Decimal | None) -> int | float | None:
    """A quantity as a JSON number: an int when whole."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def format_quantity(resource: str, value: Decimal | int | float | None) -> str:
    """For tables: memory in binary units (`3Ti`, `192Gi`), CPU in cores or millicores, counts as integers."""
    if value is None:
        return "-"
    value = Decimal(str(value))
    if resource == "memory" or resource.endswith("storage"):
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            size = _SUFFIXES[suffix]
            if value >= size and value % size == 0:
                return f"{int(value / size)}{suffix}"
        if value >= _SUFFIXES["Gi"]:
            return f"{value / _SUFFIXES['Gi']:.1f}Gi"
        return str(int(value))
    if value != value.to_integral_value():
        return f"{int(value * 1000)}m"
    return str(int(value))


# ---------------------------------------------------------------------------------------------------- quota

@dataclass(frozen=True)
class QuotaRow:
    """One resource of one flavor of a ClusterQueue, in base units (cores, bytes, devices)."""

    cluster_queue: str
    cohort: str | None
    flavor: str
    resource: str
    nominal: Decimal
    used: Decimal
    """Admitted workloads' usage (`status.flavorsUsage`)."""
    reserved: Decimal
    """Quota reserved, admitted or not yet (`status.flavorsReservation`)."""
    borrowed: Decimal
    """Usage above the nominal quota, borrowed from the cohort."""
    borrowing_limit: Decimal | None
    """How much it may borrow from the cohort; None: no limit (only with a cohort)."""
    lending_limit: Decimal | None
    """How much of its nominal quota the cohort may use; None: all of it."""

    @property
    def lendable(self) -> Decimal:
        """What the cohort may borrow of this quota: the lending limit (capped at nominal), else all of nominal."""
        if self.cohort is None:
            return Decimal(0)
        return self.nominal if self.lending_limit is None else min(self.lending_limit, self.nominal)

    @property
    def guaranteed(self) -> Decimal:
        """What is kept for this queue alone: nominal minus what it lends."""
        return self.nominal - self.lendable

    @property
    def available(self) -> Decimal:
        """Unused nominal quota (without borrowing)."""
        return max(Decimal(0), self.nominal - self.used)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor, "resource": self.resource, "nominal": number(self.nominal),
            "used": number(self.used), "reserved": number(self.reserved), "borrowed": number(self.borrowed),
            "lendable": number(self.lendable), "guaranteed": number(self.guaranteed),
            "borrowing_limit": number(self.borrowing_limit), "lending_limit": number(self.lending_limit),
        }


@dataclass(frozen=True)
class LocalQueueRow:
    namespace: str
    name: str
    cluster_queue: str
    pending: int
    admitted: int
    reserving: int


@dataclass(frozen=True)
class ClusterQueueRow:
    name: str
    cohort: str | None
    pending: int
    admitted: int
    reserving: int
    stopped: bool
    quota: tuple[QuotaRow, ...] = field(default_factory=tuple)
    """Per flavor per resource, in the ClusterQueue's own order."""
    local_queues: tuple[LocalQueueRow, ...] = field(default_factory=tuple)

    def total(self, resource: str) -> tuple[Decimal, Decimal]:
        """(used, nominal) of a resource over all flavors."""
        rows = [q for q in self.quota if q.resource == resource]
        return sum((q.used for q in rows), Decimal(0)), sum((q.nominal for q in rows), Decimal(0))


def _values(objects: Mapping[str, Obj] | Iterable[Obj]) -> list[Obj]:
    return list(objects.values()) if isinstance(objects, Mapping) else list(objects)


def _usage(status: Obj, field_name: str) -> dict[tuple[str, str], tuple[Decimal, Decimal | None]]:
    result = {}
    for flavor in status.get(field_name) or ():
        for resource in flavor.get("resources") or ():
            result[(flavor.get("name", ""), resource.get("name", ""))] = (
                parse_quantity(resource.get("total")) or Decimal(0), parse_quantity(resource.get("borrowed")))
    return result


def local_queue_rows(localqueues: Mapping[str, Obj] | Iterable[Obj]) -> list[LocalQueueRow]:
    rows = []
    for lq in _values(localqueues):
        meta, status = lq.get("metadata") or {}, lq.get("status") or {}
        rows.append(LocalQueueRow(meta.get("namespace", ""), meta.get("name", ""),
                                  (lq.get("spec") or {}).get("clusterQueue", ""), int(status.get("pendingWorkloads") or 0),
                                  int(status.get("admittedWorkloads") or 0), int(status.get("reservingWorkloads") or 0)))
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def quota_rows(clusterqueues: Mapping[str, Obj] | Iterable[Obj],
               localqueues: Mapping[str, Obj] | Iterable[Obj] = ()) -> list[ClusterQueueRow]:
    """Every ClusterQueue (sorted by name) with its quota per flavor per resource and its LocalQueues' counts.

    Pure: takes store contents (key -> object) or lists of objects, at Kueue v1beta1 or v1beta2 (`cohort` or
    `cohortName`). Used and borrowed come from the queue's status; borrowed is computed (usage above nominal)
    when the status does not say.
    """
    locals_by_cq: dict[str, list[LocalQueueRow]] = {}
    for row in local_queue_rows(localqueues):
        locals_by_cq.setdefault(row.cluster_queue, []).append(row)
    result = []
    for cq in _values(clusterqueues):
        meta, spec, status = cq.get("metadata") or {}, cq.get("spec") or {}, cq.get("status") or {}
        name = meta.get("name", "")
        cohort = spec.get("cohort") or spec.get("cohortName") or None
        usage = _usage(status, "flavorsUsage")
        reservation = _usage(status, "flavorsReservation")
        quota = []
        for group in spec.get("resourceGroups") or ():
            for flavor in group.get("flavors") or ():
                for resource in flavor.get("resources") or ():
                    key = (flavor.get("name", ""), resource.get("name", ""))
                    nominal = parse_quantity(resource.get("nominalQuota")) or Decimal(0)
                    used, borrowed = usage.get(key, (Decimal(0), None))
                    reserved = reservation.get(key, (used, None))[0]
                    quota.append(QuotaRow(
                        cluster_queue=name, cohort=cohort, flavor=key[0], resource=key[1], nominal=nominal,
                        used=used, reserved=reserved,
                        borrowed=borrowed if borrowed is not None else max(Decimal(0), used - nominal),
                        borrowing_limit=parse_quantity(resource.get("borrowingLimit")),
                        lending_limit=parse_quantity(resource.get("lendingLimit")),
                    ))
        result.append(ClusterQueueRow(
            name=name, cohort=cohort, pending=int(status.get("pendingWorkloads") or 0),
            admitted=int(status.get("admittedWorkloads") or 0), reserving=int(status.get("reservingWorkloads") or 0),
            stopped=(spec.get("stopPolicy") or "None") != "None", quota=tuple(quota),
            local_queues=tuple(locals_by_cq.get(name, ())),
        ))
    return sorted(result, key=lambda r: r.name)


# ------------------------------------------------------------------------------------------ submit choices

@dataclass(frozen=True)
class PriorityChoice:
    name: str
    value: int
    description: str


@dataclass(frozen=True)
class SubmitChoices:
    queues: tuple[str, ...]
    """LocalQueues of the namespace (empty: no Kueue there, or not readable)."""
    priorities: tuple[PriorityChoice, ...]
    """WorkloadPriorityClasses, highest first."""
    serves_hyperpod: bool
    """HyperPodPyTorchJob is served: the DDP template renders one."""


async def submit_choices(conn: ClusterConnection, discovery: Any, namespace: str) -> SubmitChoices:
    """What the submit form offers: the namespace's LocalQueues and the cluster's WorkloadPriorityClasses.
    Anything that is not served or may not be read is simply not offered."""
    async def items(path: str) -> list[Obj]:
        try:
            return list(((await conn.request("GET", path)) or {}).get("items") or ())
        except ApiError:
            return []

    lq_version, wpc_version = discovery.version("localqueues"), discovery.version("workloadpriorityclasses")
    queues, classes = await asyncio.gather(
        items(KINDS["localqueues"].path(lq_version, namespace)) if lq_version else asyncio.sleep(0, []),
        items(KINDS["workloadpriorityclasses"].path(wpc_version)) if wpc_version else asyncio.sleep(0, []),
    )
    priorities = sorted(
        (PriorityChoice(c["metadata"]["name"], int(c.get("value") or 0), c.get("description") or "") for c in classes),
        key=lambda p: (-p.value, p.name))
    return SubmitChoices(tuple(sorted(q["metadata"]["name"] for q in queues)), tuple(priorities),
                         discovery.serves("hyperpodpytorchjobs"))


# ------------------------------------------------------------------------------------------------ job list

POD_SELECTORS = ("HPJob", "training.kubeflow.org/job-name", "jobset.sigs.k8s.io/jobset-name",
                 "batch.kubernetes.io/job-name", "job-name")
"""Labels the operators put on a job's pods: listing pods with these selectors fetches only job pods."""


async def _list(conn: ClusterConnection, path: str, query: dict[str, Any] | None = None) -> dict[str, Obj]:
    answer = await conn.request("GET", path, query=query, timeout=60)
    objects = {}
    for item in (answer or {}).get("items") or ():
        meta = item.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
        objects[key] = item
    return objects


async def fetch_stores(conn: ClusterConnection, discovery: Any, namespace: str | None) -> dict[str, dict[str, Obj]]:
    """What `job_rows` needs, listed once: every served job kind, Workloads, LocalQueues and the job pods.

    A kind the user may not list is left out (as the pane shows it: forbidden); other failures raise ApiError.
    """
    async def kind(name: str) -> tuple[str, dict[str, Obj]]:
        version = discovery.version(name)
        if not version:
            return name, {}
        try:
            return name, await _list(conn, KINDS[name].path(version, namespace))
        except ApiError as exc:
            if exc.status in (403, 404):
                return name, {}
            raise

    async def pods() -> tuple[str, dict[str, Obj]]:
        merged: dict[str, Obj] = {}
        path = KINDS["pods"].path("v1", namespace)
        for part in await asyncio.gather(*(_list(conn, path, {"labelSelector": s}) for s in POD_SELECTORS),
                                         return_exceptions=True):
            if isinstance(part, ApiError):
                if part.status in (403, 404):
                    continue
                raise part
            if isinstance(part, BaseException):
                raise part
            merged.update(part)
        return "pods", merged

    names = [*JOB_KINDS, "workloads", "localqueues"]
    found = await asyncio.gather(*(kind(n) for n in names), pods())
    return dict(found)


async def fetch_jobs(conn: ClusterConnection, discovery: Any, namespace: str | None) -> list[JobRow]:
    """The Jobs pane's rows, fetched once (the CLI's `get jobs`): `namespace` None lists every namespace."""
    stores = await fetch_stores(conn, discovery, namespace)
    clusterqueues = {(lq.get("spec") or {}).get("clusterQueue") for lq in stores.get("localqueues", {}).values()}
    clusterqueues |= {((w.get("status") or {}).get("admission") or {}).get("clusterQueue")
                      for w in stores.get("workloads", {}).values()}
    positions = await queue_positions(conn, discovery, [cq for cq in clusterqueues if cq])
    return job_rows(stores, positions)


def gpu_summary(row: ClusterQueueRow) -> str:
    """`used/nominal` whole GPUs of a ClusterQueue, for the queues table."""
    used, nominal = row.total(GPU)
    return f"{number(used)}/{number(nominal)}"
