"""Kueue as the simulator plays it: the job reconciler, the scheduler and the queue status, on API objects only.

- Job reconciler: every job labelled `kueue.x-k8s.io/queue-name` (HyperPodPyTorchJob, PyTorchJob, Job, JobSet)
  gets one Workload, owned by the job and labelled `kueue.x-k8s.io/job-uid`, named `<kind>-<job>-<hash>`, with the
  job's pod sets and the priority of its `kueue.x-k8s.io/priority-class` WorkloadPriorityClass. The job stays
  suspended until its Workload is admitted; admission unsuspends it and adds the flavors' node labels to its pod
  templates' `nodeSelector`; eviction suspends it again and restores them. Once an evicted job's pods are gone, the
  quota is released and the Workload goes back to its queue. A finished job finishes its Workload.
- Scheduler: `kueue_logic.schedule` over all workloads, written back as `status.admission` and the conditions
  `QuotaReserved`, `Admitted`, `Evicted`/`Preempted`, `PodsReady`, `Requeued`, with Kueue's reasons and messages
  (`Pending` with "couldn't assign flavors to pod set ..." while a workload waits for quota, `Inadmissible` when its
  LocalQueue or ClusterQueue does not exist), and events.
- Queue status: ClusterQueue `flavorsReservation`/`flavorsUsage`, `pendingWorkloads`, `reservingWorkloads`,
  `admittedWorkloads`; LocalQueue the same counts and its usage. Queue positions are served by the API server's
  visibility endpoint from the same Workloads.

Objects are written in the shape of `kueue.x-k8s.io/v1beta1` (what HyperPod task governance uses) with the fields
v1beta2 renamed beside them (`priorityClassRef` next to `priorityClassName`, `cohortName` next to `cohort`): the
API server stores them at its storage version and serves each version its own spelling.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .base import Controller, World
from .jobs import ADAPTERS, PRIORITY_LABEL, QUEUE_LABEL, JobAdapter
from .kueue_logic import Admit, Evict, Pending, WorkloadInfo, pod_sets_of, preemption_message, queue_config, schedule
from .objects import controller_of, copy, format_quantity, is_true, milli, owner_reference, set_condition

KUEUE = "kueue.x-k8s.io"
V1BETA1 = f"{KUEUE}/v1beta1"
JOB_UID_LABEL = f"{KUEUE}/job-uid"
TERMINAL = ("Succeeded", "Failed")


def workload_name(job_name: str, kind: str) -> str:
    """`<kind>-<job>-<5 hex>`, as Kueue names the Workload of a job (hashed here on name and kind only)."""
    prefix = f"{kind.lower()}-{job_name}"[:247]
    return f"{prefix}-{hashlib.sha1(f'{job_name}/{kind}'.encode()).hexdigest()[:5]}"


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


class Kueue(Controller):
    name = "kueue-controller-manager"
    watches = frozenset(
        {(KUEUE, k) for k in ("Workload", "ClusterQueue", "LocalQueue", "WorkloadPriorityClass", "ResourceFlavor")}
        | {(a.group, a.kind) for a in ADAPTERS}
        | {("", "Pod")}
    )

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._queued_at: dict[str, float] = {}
        self._admitted_at: dict[str, float] = {}

    def reconcile(self) -> None:
        self._reconcile_jobs()
        self._schedule()
        self._queue_status()

    # --- job reconciler ---------------------------------------------------------------------------------------------

    def _active_pods(self) -> dict[str, int]:
        """Non-terminated pods per owning job uid (a JobSet counts the pods of its child Jobs)."""
        parents = {
            j["metadata"]["uid"]: ref["uid"]
            for j in self.cache.all("batch/v1", "Job")
            if (ref := controller_of(j)) is not None and ref.get("kind") == "JobSet"
        }
        counts: dict[str, int] = {}
        for pod in self.cache.all("v1", "Pod"):
            ref = controller_of(pod)
            if ref is None or (pod.get("status") or {}).get("phase") in TERMINAL:
                continue
            for uid in {ref["uid"], parents.get(ref["uid"], "")} - {""}:
                counts[uid] = counts.get(uid, 0) + 1
        return counts

    def _reconcile_jobs(self) -> None:
        world = self.world
        workloads = {}
        for workload in self.cache.all(V1BETA1, "Workload"):
            ref = controller_of(workload)
            if ref is not None:
                workloads[ref["uid"]] = workload
        active = self._active_pods()
        flavors = {f["metadata"]["name"]: f for f in self.cache.all(V1BETA1, "ResourceFlavor")}
        for adapter in ADAPTERS:
            for job in self.cache.all(adapter.api_version, adapter.kind):
                queue = (job["metadata"].get("labels") or {}).get(QUEUE_LABEL)
                if not queue or job["metadata"].get("deletionTimestamp"):
                    continue
                uid = job["metadata"]["uid"]
                workload = workloads.get(uid)
                finished, succeeded, message = adapter.finished(job)
                if workload is None:
                    if not finished:
                        self._create_workload(adapter, job, queue)
                        if not adapter.suspended(job):
                            self._set_suspended(adapter, job, True, None, flavors)
                    continue
                if finished:
                    if not is_true(workload, "Finished"):
                        updated = copy(workload)
                        set_condition(updated.setdefault("status", {}).setdefault("conditions", []), "Finished", "True",
                                      "Succeeded" if succeeded else "Failed",
                                      "Job finished successfully" if succeeded else message, world.clock.timestamp())
                        self._write(updated)
                    continue
                if (workload.get("spec") or {}).get("active") is False and (workload.get("status") or {}).get("admission") \
                        and not is_true(workload, "Evicted"):
                    self._deactivate(workload)
                    continue
                admitted = is_true(workload, "Admitted") and not is_true(workload, "Evicted")
                if admitted:
                    if adapter.suspended(job):
                        self._set_suspended(adapter, job, False, workload, flavors)
                    self._pods_ready(workload, job, adapter)
                    continue
                if not adapter.suspended(job):
                    self._set_suspended(adapter, job, True, workload, flavors)
                elif is_true(workload, "Evicted") and (workload.get("status") or {}).get("admission") and not active.get(uid):
                    self._release(workload)

    def _create_workload(self, adapter: JobAdapter, job: dict[str, Any], queue: str) -> None:
        world = self.world
        meta = job["metadata"]
        priority_class = (meta.get("labels") or {}).get(PRIORITY_LABEL, "")
        priority = 0
        if priority_class:
            wpc = self.cache.get(V1BETA1, "WorkloadPriorityClass", priority_class)
            priority = int((wpc or {}).get("value", 0))
        spec: dict[str, Any] = {
            "active": True,
            "queueName": queue,
            "priority": priority,
            "podSets": [{"name": p.name, "count": p.count, "template": copy(p.template)} for p in adapter.pod_sets(job)],
        }
        if priority_class:
            spec["priorityClassName"] = priority_class
            spec["priorityClassSource"] = "kueue.x-k8s.io/workloadpriorityclass"
            spec["priorityClassRef"] = {"group": KUEUE, "kind": "WorkloadPriorityClass", "name": priority_class}
        workload = {
            "apiVersion": V1BETA1,
            "kind": "Workload",
            "metadata": {
                "name": workload_name(meta["name"], adapter.kind),
                "namespace": meta["namespace"],
                "labels": {JOB_UID_LABEL: meta["uid"]},
                "ownerReferences": [owner_reference(job)],
            },
            "spec": spec,
        }
        created = world.create(workload)
        if created is not None:
            self._queued_at[created["metadata"]["uid"]] = world.clock.elapsed
            world.event(job, "CreatedWorkload", f"Created Workload: {meta['namespace']}/{workload['metadata']['name']}",
                        component="kueue-job-controller")

    def _set_suspended(self, adapter: JobAdapter, job: dict[str, Any], value: bool, workload: dict[str, Any] | None,
                       flavors: dict[str, dict[str, Any]]) -> None:
        """Suspend a job (restoring its pod sets' original node selectors) or start it on its admitted flavors."""
        world = self.world
        updated = copy(job)
        adapter.set_suspended(updated, value)
        templates = adapter.templates(updated)
        if workload is not None:
            original = {p["name"]: ((p.get("template") or {}).get("spec") or {}).get("nodeSelector")
                        for p in (workload.get("spec") or {}).get("podSets") or []}
            assignments = {a["name"]: a for a in ((workload.get("status") or {}).get("admission") or {}).get("podSetAssignments") or []}
            for name, template in templates.items():
                pod_spec = template.setdefault("spec", {})
                selector = dict(original.get(name) or {})
                if not value:
                    for flavor in sorted(set((assignments.get(name) or {}).get("flavors", {}).values())):
                        selector.update(((flavors.get(flavor) or {}).get("spec") or {}).get("nodeLabels") or {})
                if selector:
                    pod_spec["nodeSelector"] = selector
                else:
                    pod_spec.pop("nodeSelector", None)
        world.put(updated)
        if not value and workload is not None:
            cq = ((workload.get("status") or {}).get("admission") or {}).get("clusterQueue", "")
            world.event(job, "Started", f"Admitted by clusterQueue {cq}", component="kueue-job-controller")
        elif value and workload is not None and is_true(workload, "Evicted"):
            message = (_cond(workload, "Evicted") or {}).get("message", "")
            world.event(job, "Stopped", message, component="kueue-job-controller")

    def _pods_ready(self, workload: dict[str, Any], job: dict[str, Any], adapter: JobAdapter) -> None:
        expected = sum(p.count for p in adapter.pod_sets(job))
        uid = job["metadata"]["uid"]
        ready = 0
        for pod in self.cache.all("v1", "Pod", job["metadata"]["namespace"]):
            ref = controller_of(pod)
            if ref is None:
                continue
            owner_uid = ref["uid"]
            if owner_uid != uid:
                parent = self.cache.get("batch/v1", "Job", ref["name"], job["metadata"]["namespace"]) if ref.get("kind") == "Job" else None
                if parent is None or (controller_of(parent) or {}).get("uid") != uid:
                    continue
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or []) \
                    or (pod.get("status") or {}).get("phase") == "Succeeded":
                ready += 1
        updated = copy(workload)
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        if ready >= expected > 0:
            changed = set_condition(conditions, "PodsReady", "True", "PodsReady",
                                    "All pods reached readiness and the workload is running", self.world.clock.timestamp())
        else:
            changed = set_condition(conditions, "PodsReady", "False", "WaitForStart",
                                    "Not all pods are ready or succeeded", self.world.clock.timestamp())
        if changed:
            self._write(updated)

    def _deactivate(self, workload: dict[str, Any]) -> None:
        """`spec.active: false` on an admitted workload evicts it (reason `Deactivated`); the job is then suspended
        and, once its pods are gone, the quota released, as for a preemption. Reactivating requeues it."""
        updated = copy(workload)
        message = "The workload is deactivated"
        set_condition(updated.setdefault("status", {}).setdefault("conditions", []), "Evicted", "True", "Deactivated",
                      message, self.world.clock.timestamp())
        self._write(updated)
        self.world.event(workload, "EvictedDueToDeactivated", message, component="kueue-admission")

    def _release(self, workload: dict[str, Any]) -> None:
        """The evicted job stopped: give the quota back and requeue the workload (a deactivated one stays out)."""
        world = self.world
        now = world.clock.timestamp()
        updated = copy(workload)
        status = updated["status"]
        evicted = _cond(workload, "Evicted") or {}
        message, reason = evicted.get("message", ""), evicted.get("reason") or "Preempted"
        status.pop("admission", None)
        conditions = status.setdefault("conditions", [])
        set_condition(conditions, "QuotaReserved", "False", "Pending", message, now)
        set_condition(conditions, "Admitted", "False", "NoReservation", "The workload has no reservation", now)
        set_condition(conditions, "PodsReady", "False", reason, message, now)
        set_condition(conditions, "Requeued", "False" if reason == "Deactivated" else "True", reason, message, now)
        self._queued_at[workload["metadata"]["uid"]] = world.clock.elapsed
        self._write(updated)

    def _write(self, workload: dict[str, Any]) -> None:
        workload["apiVersion"] = V1BETA1
        self.world.put(workload)

    # --- scheduler ----------------------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        world = self.world
        now = world.clock.elapsed
        cqs = {cq["metadata"]["name"]: cq for cq in self.cache.all(V1BETA1, "ClusterQueue")}
        queues = {name: queue_config(cq) for name, cq in cqs.items()}
        flavor_labels = {f["metadata"]["name"]: ((f.get("spec") or {}).get("nodeLabels") or {})
                         for f in self.cache.all(V1BETA1, "ResourceFlavor")}
        local_queues = {(lq["metadata"]["namespace"], lq["metadata"]["name"]): (lq.get("spec") or {}).get("clusterQueue", "")
                        for lq in self.cache.all(V1BETA1, "LocalQueue")}
        infos: list[WorkloadInfo] = []
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for workload in self.cache.all(V1BETA1, "Workload"):
            meta, spec, status = workload["metadata"], workload.get("spec") or {}, workload.get("status") or {}
            if is_true(workload, "Finished") or spec.get("active") is False or meta.get("deletionTimestamp"):
                continue
            key = (meta["namespace"], meta["name"])
            cq_name = local_queues.get((meta["namespace"], spec.get("queueName", "")))
            admission = status.get("admission")
            if not admission:
                if cq_name is None:
                    self._pending(workload, f"LocalQueue {spec.get('queueName', '')} doesn't exist", reason="Inadmissible")
                    continue
                if cq_name not in queues:
                    self._pending(workload, f"ClusterQueue {cq_name} doesn't exist", reason="Inadmissible")
                    continue
            usage: dict[tuple[str, str], int] = {}
            for assignment in (admission or {}).get("podSetAssignments") or []:
                for resource, flavor in (assignment.get("flavors") or {}).items():
                    amount = milli((assignment.get("resourceUsage") or {}).get(resource, 0))
                    usage[(flavor, resource)] = usage.get((flavor, resource), 0) + amount
            uid = meta["uid"]
            infos.append(
                WorkloadInfo(
                    key=key,
                    cluster_queue=(admission or {}).get("clusterQueue") or cq_name or "",
                    priority=int(spec.get("priority") or 0),
                    queued_at=self._queued_at.setdefault(uid, now),
                    pod_sets=pod_sets_of(workload),
                    uid=uid,
                    job_uid=(meta.get("labels") or {}).get(JOB_UID_LABEL, ""),
                    usage=usage,
                    admitted_at=self._admitted_at.get(uid, 0.0),
                    evicted=bool(admission) and is_true(workload, "Evicted"),
                )
            )
            by_key[key] = workload
        for decision in schedule(queues, infos, flavor_labels):
            workload = by_key[decision.key]
            if isinstance(decision, Admit):
                self._admit(workload, decision)
            elif isinstance(decision, Evict):
                self._evict(workload, decision, queues[decision.victim_queue].cohort)
            elif isinstance(decision, Pending):
                self._pending(workload, decision.message, reason=decision.reason)

    def _pending(self, workload: dict[str, Any], message: str, *, reason: str = "Pending") -> None:
        current = _cond(workload, "QuotaReserved")
        if current is not None and current.get("status") == "False" and current.get("reason") == reason \
                and current.get("message") == message:
            return
        updated = copy(workload)
        set_condition(updated.setdefault("status", {}).setdefault("conditions", []), "QuotaReserved", "False", reason,
                      message, self.world.clock.timestamp())
        self._write(updated)
        self.world.event(workload, reason, message, type_="Warning" if reason == "Inadmissible" else "Normal",
                         component="kueue-admission")

    def _admit(self, workload: dict[str, Any], decision: Admit) -> None:
        world = self.world
        now = world.clock.timestamp()
        uid = workload["metadata"]["uid"]
        waited = int(world.clock.elapsed - self._queued_at.get(uid, world.clock.elapsed))
        self._admitted_at[uid] = world.clock.elapsed
        updated = copy(workload)
        status = updated.setdefault("status", {})
        status["admission"] = {
            "clusterQueue": decision.cluster_queue,
            "podSetAssignments": [
                {
                    "name": p.name,
                    "flavors": dict(sorted(p.flavors.items())),
                    "resourceUsage": {r: format_quantity(r, v) for r, v in sorted(p.usage.items())},
                    "count": p.count,
                }
                for p in decision.pod_sets
            ],
        }
        conditions = status.setdefault("conditions", [])
        reserved = f"Quota reserved in ClusterQueue {decision.cluster_queue}, wait time since queued was {waited}s"
        set_condition(conditions, "QuotaReserved", "True", "QuotaReserved", reserved, now)
        set_condition(conditions, "Admitted", "True", "Admitted", "The workload is admitted", now)
        for previous in ("Evicted", "Preempted"):
            cond = _cond(workload, previous)
            if cond is not None and cond.get("status") == "True":
                set_condition(conditions, previous, "False", "QuotaReserved", f"Previously: {cond.get('message', '')}", now)
        self._write(updated)
        world.event(workload, "QuotaReserved", reserved, component="kueue-admission")
        world.event(workload, "Admitted", f"Admitted by ClusterQueue {decision.cluster_queue}, wait time since reservation was 0s",
                    component="kueue-admission")

    def _evict(self, workload: dict[str, Any], decision: Evict, cohort: str) -> None:
        world = self.world
        now = world.clock.timestamp()
        message = preemption_message(decision, cohort)
        updated = copy(workload)
        status = updated.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        set_condition(conditions, "Evicted", "True", "Preempted", message, now)
        set_condition(conditions, "Preempted", "True", decision.reason, message, now)
        stats = status.setdefault("schedulingStats", {}).setdefault("evictions", [])
        entry = next((e for e in stats if e.get("reason") == "Preempted" and e.get("underlyingCause") == decision.reason), None)
        if entry is None:
            stats.append({"reason": "Preempted", "underlyingCause": decision.reason, "count": 1})
        else:
            entry["count"] = int(entry.get("count", 0)) + 1
        self._write(updated)
        world.event(workload, "Preempted", message, component="kueue-admission")
        world.event(workload, "EvictedDueToPreempted", message, component="kueue-admission")

    # --- queue status ---------------------------------------------------------------------------------------------

    def _queue_status(self) -> None:
        world = self.world
        now = world.clock.timestamp()
        workloads = [w for w in self.cache.all(V1BETA1, "Workload") if not is_true(w, "Finished")]
        local_queues = self.cache.all(V1BETA1, "LocalQueue")
        cq_of = {(lq["metadata"]["namespace"], lq["metadata"]["name"]): (lq.get("spec") or {}).get("clusterQueue", "")
                 for lq in local_queues}
        per_cq: dict[str, dict[str, Any]] = {}
        per_lq: dict[tuple[str, str], dict[str, Any]] = {}
        for workload in workloads:
            meta, spec, status = workload["metadata"], workload.get("spec") or {}, workload.get("status") or {}
            lq_key = (meta["namespace"], spec.get("queueName", ""))
            admission = status.get("admission")
            cq_name = (admission or {}).get("clusterQueue") or cq_of.get(lq_key, "")
            for table in (per_cq.setdefault(cq_name, {}), per_lq.setdefault(lq_key, {})):
                counts = table.setdefault("counts", {"pending": 0, "reserving": 0, "admitted": 0})
                usage = table.setdefault("reserved", {})
                admitted_usage = table.setdefault("admitted", {})
                if not admission:
                    if spec.get("active") is not False:
                        counts["pending"] += 1
                    continue
                counts["reserving"] += 1
                admitted = is_true(workload, "Admitted")
                counts["admitted"] += 1 if admitted else 0
                for assignment in admission.get("podSetAssignments") or []:
                    for resource, flavor in (assignment.get("flavors") or {}).items():
                        amount = milli((assignment.get("resourceUsage") or {}).get(resource, 0))
                        usage[(flavor, resource)] = usage.get((flavor, resource), 0) + amount
                        if admitted:
                            admitted_usage[(flavor, resource)] = admitted_usage.get((flavor, resource), 0) + amount
        for cq in self.cache.all(V1BETA1, "ClusterQueue"):
            name = cq["metadata"]["name"]
            config = queue_config(cq)
            table = per_cq.get(name, {})
            counts = table.get("counts", {"pending": 0, "reserving": 0, "admitted": 0})

            def flavors_of(usage: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
                result: dict[str, list[dict[str, Any]]] = {}
                for flavor, resource in config.flavor_resources():
                    total = usage.get((flavor, resource), 0)
                    quota = config.quota((flavor, resource))
                    borrowed = max(0, total - (quota.nominal if quota else 0))
                    result.setdefault(flavor, []).append(
                        {"name": resource, "total": format_quantity(resource, total), "borrowed": format_quantity(resource, borrowed)}
                    )
                return [{"name": f, "resources": r} for f, r in result.items()]

            status = copy(cq.get("status") or {})
            conditions = status.setdefault("conditions", [])
            if config.stopped:
                set_condition(conditions, "Active", "False", "Stopped", "Can't admit new workloads; clusterQueue is stopped", now)
            else:
                set_condition(conditions, "Active", "True", "Ready", "Can admit new workloads", now)
            status["flavorsReservation"] = flavors_of(table.get("reserved", {}))
            status["flavorsUsage"] = flavors_of(table.get("admitted", {}))
            status["pendingWorkloads"] = counts["pending"]
            status["reservingWorkloads"] = counts["reserving"]
            status["admittedWorkloads"] = counts["admitted"]
            if status != (cq.get("status") or {}):
                updated = copy(cq)
                updated["status"] = status
                updated["apiVersion"] = V1BETA1
                world.put(updated)
        for lq in local_queues:
            key = (lq["metadata"]["namespace"], lq["metadata"]["name"])
            table = per_lq.get(key, {})
            counts = table.get("counts", {"pending": 0, "reserving": 0, "admitted": 0})
            cq_name = (lq.get("spec") or {}).get("clusterQueue", "")
            config = queue_config(self.cache.get(V1BETA1, "ClusterQueue", cq_name) or {"metadata": {"name": cq_name}})

            def usage_of(usage: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
                result: dict[str, list[dict[str, Any]]] = {}
                for flavor, resource in config.flavor_resources():
                    result.setdefault(flavor, []).append(
                        {"name": resource, "total": format_quantity(resource, usage.get((flavor, resource), 0))})
                return [{"name": f, "resources": r} for f, r in result.items()]

            status = copy(lq.get("status") or {})
            conditions = status.setdefault("conditions", [])
            if cq_name in {c["metadata"]["name"] for c in self.cache.all(V1BETA1, "ClusterQueue")}:
                set_condition(conditions, "Active", "True", "Ready", "Can submit new workloads to localQueue", now)
            else:
                set_condition(conditions, "Active", "False", "ClusterQueueDoesNotExist", "Can't submit new workloads to clusterQueue", now)
            status["pendingWorkloads"] = counts["pending"]
            status["reservingWorkloads"] = counts["reserving"]
            status["admittedWorkloads"] = counts["admitted"]
            status["flavorsReservation"] = usage_of(table.get("reserved", {}))
            status["flavorUsage"] = usage_of(table.get("admitted", {}))  # v1beta1 name
            status["flavorsUsage"] = status["flavorUsage"]  # v1beta2 name
            if status != (lq.get("status") or {}):
                updated = copy(lq)
                updated["status"] = status
                updated["apiVersion"] = V1BETA1
                world.put(updated)
