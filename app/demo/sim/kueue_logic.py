"""Kueue's admission decisions as pure functions: quotas, flavor assignment, classical preemption, one scheduling cycle.

Inputs are plain data built from ClusterQueue and Workload objects (`queue_config`, `WorkloadInfo`); the output of
`schedule` is a list of decisions the controller in `kueue.py` writes back. The semantics follow Kueue (v0.9+,
classical preemption, BestEffortFIFO):

- A ClusterQueue's quota for a (flavor, resource) is `nominalQuota`; in a cohort it may borrow up to
  `borrowingLimit` from what the other members lend (`lendingLimit`, default all of their nominal quota). The part
  of a nominal quota that is not lendable is guaranteed to its own queue.
- `available` is what a workload could take now; `potential` ("maximum capacity") is what it could take if the
  whole cohort were idle. A request above `potential` can never fit ("request > maximum capacity"); one above
  `available` needs preemption or waiting ("insufficient unused quota ... N more needed").
- Flavors are tried in order; the first that fits wins, else the first that fits with preemption.
- Preemption candidates: lower-priority workloads of the same ClusterQueue (`withinClusterQueue`) and workloads of
  cohort members that borrow (`reclaimWithinCohort`), other queues' borrowers first, then lowest priority, then most
  recently admitted; the smallest prefix that makes room is kept, then trimmed of victims not needed.
- Pending workloads are considered by priority, then by when they were queued; every amount is in milli-units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .objects import format_quantity, milli, pod_requests

FlavorResource = tuple[str, str]  # (flavor, resource)

FIT, PREEMPT, NO_FIT = "Fit", "Preempt", "NoFit"
_MODE_RANK = {NO_FIT: 0, PREEMPT: 1, FIT: 2}

IN_CLUSTER_QUEUE = "InClusterQueue"
IN_COHORT_RECLAMATION = "InCohortReclamation"
HUMAN_REASONS = {
    IN_CLUSTER_QUEUE: "prioritization in the ClusterQueue",
    IN_COHORT_RECLAMATION: "reclamation within the cohort",
}


@dataclass(frozen=True)
class Quota:
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None

    @property
    def guaranteed(self) -> int:
        """The part of the nominal quota no other queue may borrow."""
        return self.nominal - self.lending_limit if self.lending_limit is not None else 0

    @property
    def lendable(self) -> int:
        return self.lending_limit if self.lending_limit is not None else self.nominal


@dataclass(frozen=True)
class ResourceGroup:
    covered: tuple[str, ...]
    flavors: tuple[tuple[str, dict[str, Quota]], ...]  # in order of preference


@dataclass(frozen=True)
class QueueConfig:
    name: str
    cohort: str = ""
    groups: tuple[ResourceGroup, ...] = ()
    within_cluster_queue: str = "Never"
    reclaim_within_cohort: str = "Never"
    borrow_within_cohort: str = "Never"
    stopped: bool = False

    def quota(self, fr: FlavorResource) -> Quota | None:
        flavor, resource = fr
        for group in self.groups:
            for name, quotas in group.flavors:
                if name == flavor:
                    return quotas.get(resource)
        return None

    def group_for(self, resource: str) -> ResourceGroup | None:
        return next((g for g in self.groups if resource in g.covered), None)

    def flavor_resources(self) -> list[FlavorResource]:
        return [(name, res) for g in self.groups for name, quotas in g.flavors for res in g.covered if res in quotas]


@dataclass(frozen=True)
class PodSet:
    name: str
    count: int
    per_pod: dict[str, int]  # milli-units
    node_selector: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkloadInfo:
    """What the scheduler needs to know about one Workload."""

    key: tuple[str, str]
    cluster_queue: str
    priority: int
    queued_at: float  # when it (re)entered the queue, in simulated seconds
    pod_sets: list[PodSet]
    uid: str = ""
    job_uid: str = ""
    usage: dict[FlavorResource, int] = field(default_factory=dict)  # quota held (admitted or reserved)
    admitted_at: float = 0.0
    evicted: bool = False  # eviction issued, quota not released yet

    @property
    def holds_quota(self) -> bool:
        return bool(self.usage)


@dataclass
class PodSetAssignment:
    name: str
    count: int
    flavors: dict[str, str]
    usage: dict[str, int]


@dataclass
class Assignment:
    mode: str
    pod_sets: list[PodSetAssignment]
    usage: dict[FlavorResource, int]
    message: str = ""
    borrows: bool = False


@dataclass(frozen=True)
class Admit:
    key: tuple[str, str]
    cluster_queue: str
    pod_sets: tuple[PodSetAssignment, ...]
    borrows: bool


@dataclass(frozen=True)
class Evict:
    key: tuple[str, str]
    reason: str  # InClusterQueue / InCohortReclamation
    preemptor: tuple[str, str]
    preemptor_uid: str
    preemptor_job_uid: str
    preemptor_queue: str
    victim_queue: str


@dataclass(frozen=True)
class Pending:
    key: tuple[str, str]
    message: str
    reason: str = "Pending"  # the QuotaReserved=False reason: "Inadmissible" when the queue cannot admit at all


Decision = Admit | Evict | Pending


# --- configuration from API objects -------------------------------------------------------------------------------


def _limit(value: Any) -> int | None:
    return None if value is None else milli(value)


def queue_config(cq: dict[str, Any]) -> QueueConfig:
    """A ClusterQueue object (v1beta1 `cohort` or v1beta2 `cohortName`) as a `QueueConfig`."""
    spec = cq.get("spec") or {}
    groups = []
    for group in spec.get("resourceGroups") or []:
        flavors = []
        for flavor in group.get("flavors") or []:
            quotas = {
                r["name"]: Quota(milli(r.get("nominalQuota", 0)), _limit(r.get("borrowingLimit")), _limit(r.get("lendingLimit")))
                for r in flavor.get("resources") or []
            }
            flavors.append((flavor["name"], quotas))
        groups.append(ResourceGroup(tuple(group.get("coveredResources") or ()), tuple(flavors)))
    preemption = spec.get("preemption") or {}
    return QueueConfig(
        name=cq["metadata"]["name"],
        cohort=spec.get("cohort") or spec.get("cohortName") or "",
        groups=tuple(groups),
        within_cluster_queue=preemption.get("withinClusterQueue", "Never"),
        reclaim_within_cohort=preemption.get("reclaimWithinCohort", "Never"),
        borrow_within_cohort=(preemption.get("borrowWithinCohort") or {}).get("policy", "Never"),
        stopped=spec.get("stopPolicy", "None") not in ("None", ""),
    )


def pod_sets_of(workload: dict[str, Any]) -> list[PodSet]:
    result = []
    for pod_set in (workload.get("spec") or {}).get("podSets") or []:
        pod_spec = (pod_set.get("template") or {}).get("spec") or {}
        result.append(
            PodSet(pod_set["name"], int(pod_set.get("count", 1)), pod_requests(pod_spec), dict(pod_spec.get("nodeSelector") or {}))
        )
    return result


# --- quota arithmetic -----------------------------------------------------------------------------------------------


class Snapshot:
    """Queues and the quota their workloads hold, mutable while one scheduling cycle runs."""

    def __init__(self, queues: dict[str, QueueConfig], usage: dict[str, dict[FlavorResource, int]]) -> None:
        self.queues = queues
        self.usage = {name: dict(usage.get(name, {})) for name in queues}

    def members(self, queue: QueueConfig) -> list[QueueConfig]:
        if not queue.cohort:
            return [queue]
        return [q for q in self.queues.values() if q.cohort == queue.cohort]

    def used(self, queue: str, fr: FlavorResource) -> int:
        return self.usage.get(queue, {}).get(fr, 0)

    def add(self, queue: str, usage: dict[FlavorResource, int], sign: int = 1) -> None:
        table = self.usage.setdefault(queue, {})
        for fr, amount in usage.items():
            table[fr] = table.get(fr, 0) + sign * amount

    def cohort_free(self, queue: QueueConfig, fr: FlavorResource) -> int:
        capacity = used = 0
        for member in self.members(queue):
            quota = member.quota(fr)
            if quota is None:
                continue
            capacity += quota.lendable
            used += max(0, self.used(member.name, fr) - quota.guaranteed)
        return capacity - used

    def available(self, queue: QueueConfig, fr: FlavorResource) -> int:
        quota = queue.quota(fr)
        if quota is None:
            return 0
        used = self.used(queue.name, fr)
        if not queue.cohort:
            return max(0, quota.nominal - used)
        value = max(0, quota.guaranteed - used) + max(0, self.cohort_free(queue, fr))
        if quota.borrowing_limit is not None:
            value = min(value, quota.nominal + quota.borrowing_limit - used)
        return max(0, value)

    def potential(self, queue: QueueConfig, fr: FlavorResource) -> int:
        """The "maximum capacity": what the queue could use with the rest of its cohort idle."""
        quota = queue.quota(fr)
        if quota is None:
            return 0
        if not queue.cohort:
            return quota.nominal
        value = quota.guaranteed + sum(
            q.lendable for q in (m.quota(fr) for m in self.members(queue)) if q is not None
        )
        if quota.borrowing_limit is not None:
            value = min(value, quota.nominal + quota.borrowing_limit)
        return value

    def borrowing(self, queue: str, fr: FlavorResource) -> bool:
        quota = self.queues[queue].quota(fr)
        return quota is not None and self.used(queue, fr) > quota.nominal


# --- flavor assignment ---------------------------------------------------------------------------------------------


def _matches(flavor_labels: dict[str, str], node_selector: dict[str, str]) -> bool:
    return all(flavor_labels.get(k, v) == v for k, v in node_selector.items())


def assign_flavors(
    snapshot: Snapshot, queue: QueueConfig, workload: WorkloadInfo, flavor_labels: dict[str, dict[str, str]]
) -> Assignment:
    """Flavors for every pod set of `workload` in `queue`, with the mode of the worst one and Kueue's messages."""
    total: dict[FlavorResource, int] = {}
    assignments: list[PodSetAssignment] = []
    messages: list[str] = []
    worst = FIT
    for pod_set in workload.pod_sets:
        requests = {r: v * pod_set.count for r, v in pod_set.per_pod.items() if v > 0}
        reasons: list[str] = []
        chosen: dict[str, str] = {}
        mode = FIT
        by_group: dict[int, list[str]] = {}
        for resource in sorted(requests):
            group = queue.group_for(resource)
            if group is None:
                reasons.append(f"resource {resource} unavailable in ClusterQueue")
                mode = NO_FIT
                continue
            by_group.setdefault(queue.groups.index(group), []).append(resource)
        for index, resources in sorted(by_group.items()):
            group = queue.groups[index]
            best: tuple[str, str] | None = None  # (mode, flavor)
            group_reasons: list[str] = []
            for flavor, quotas in group.flavors:
                if not _matches(flavor_labels.get(flavor, {}), pod_set.node_selector):
                    group_reasons.append(f"flavor {flavor} doesn't match node affinity")
                    continue
                flavor_mode = FIT
                for resource in resources:
                    fr = (flavor, resource)
                    quota = quotas.get(resource)
                    if quota is None:
                        group_reasons.append(f"resource {resource} unavailable in flavor {flavor}")
                        flavor_mode = NO_FIT
                        continue
                    value = requests[resource] + total.get(fr, 0)
                    maximum = snapshot.potential(queue, fr)
                    available = snapshot.available(queue, fr)
                    if value > maximum:
                        group_reasons.append(
                            f"insufficient quota for {resource} in flavor {flavor}, request > maximum capacity "
                            f"({format_quantity(resource, value)} > {format_quantity(resource, maximum)})"
                        )
                        flavor_mode = NO_FIT
                    elif value > available:
                        group_reasons.append(
                            f"insufficient unused quota for {resource} in flavor {flavor}, "
                            f"{format_quantity(resource, value - available)} more needed"
                        )
                        can_preempt = value <= quota.nominal or queue.borrow_within_cohort != "Never"
                        flavor_mode = min(flavor_mode, PREEMPT if can_preempt else NO_FIT, key=_MODE_RANK.__getitem__)
                if flavor_mode == FIT:
                    best = (FIT, flavor)
                    break
                if flavor_mode == PREEMPT and best is None:
                    best = (PREEMPT, flavor)
            if best is None:
                mode = NO_FIT
                reasons.extend(group_reasons)
                continue
            if best[0] != FIT:
                reasons.extend(group_reasons)
                mode = min(mode, best[0], key=_MODE_RANK.__getitem__)
            for resource in resources:
                chosen[resource] = best[1]
                fr = (best[1], resource)
                total[fr] = total.get(fr, 0) + requests[resource]
        worst = min(worst, mode, key=_MODE_RANK.__getitem__)
        if mode != FIT:
            messages.append(f"couldn't assign flavors to pod set {pod_set.name}: {', '.join(sorted(reasons))}")
        assignments.append(PodSetAssignment(pod_set.name, pod_set.count, chosen, {r: requests[r] for r in chosen}))
    borrows = any(
        snapshot.used(queue.name, fr) + amount > (queue.quota(fr) or Quota(0)).nominal for fr, amount in total.items()
    )
    return Assignment(worst, assignments, total, "; ".join(messages), borrows)


def _fits(snapshot: Snapshot, queue: QueueConfig, usage: dict[FlavorResource, int]) -> bool:
    return all(amount <= snapshot.available(queue, fr) for fr, amount in usage.items())


# --- preemption ------------------------------------------------------------------------------------------------------


def preemption_targets(
    snapshot: Snapshot, queue: QueueConfig, preemptor: WorkloadInfo, assignment: Assignment, admitted: list[WorkloadInfo]
) -> list[tuple[WorkloadInfo, str]] | None:
    """The victims whose quota lets `preemptor` fit (classical preemption), or None when no set of them does."""
    needed = {fr for fr, amount in assignment.usage.items() if amount > snapshot.available(queue, fr)}
    cohort = {q.name for q in snapshot.members(queue)}
    candidates: list[tuple[WorkloadInfo, str]] = []
    for other in admitted:
        if not other.holds_quota or not needed.intersection(other.usage):
            continue
        if other.cluster_queue == queue.name:
            policy = queue.within_cluster_queue
            lower = other.priority < preemptor.priority
            newer_equal = other.priority == preemptor.priority and other.queued_at > preemptor.queued_at
            if (policy == "LowerPriority" and lower) or (policy == "LowerOrNewerEqualPriority" and (lower or newer_equal)):
                candidates.append((other, IN_CLUSTER_QUEUE))
        elif queue.cohort and other.cluster_queue in cohort:
            policy = queue.reclaim_within_cohort
            if policy == "Never" or (policy == "LowerPriority" and other.priority >= preemptor.priority):
                continue
            # Reclaiming is only for quota the preemptor is owed: it must fit within its own nominal quota.
            if any(assignment.usage[fr] + snapshot.used(queue.name, fr) > (queue.quota(fr) or Quota(0)).nominal for fr in needed):
                continue
            if any(snapshot.borrowing(other.cluster_queue, fr) for fr in needed):
                candidates.append((other, IN_COHORT_RECLAMATION))
    # Evictions already under way first, then other queues' borrowers, lowest priority, most recently admitted.
    candidates.sort(
        key=lambda c: (not c[0].evicted, c[0].cluster_queue == queue.name, c[0].priority, -c[0].admitted_at, c[0].key)
    )
    trial = Snapshot(snapshot.queues, snapshot.usage)
    chosen: list[tuple[WorkloadInfo, str]] = []
    for candidate, reason in candidates:
        if reason == IN_COHORT_RECLAMATION and not any(trial.borrowing(candidate.cluster_queue, fr) for fr in needed):
            continue  # that queue no longer borrows what is needed
        trial.add(candidate.cluster_queue, candidate.usage, -1)
        chosen.append((candidate, reason))
        if _fits(trial, queue, assignment.usage):
            break
    else:
        return None
    # Keep only the victims that are needed, trying to spare the last-chosen first.
    for candidate, reason in reversed(chosen[:-1]):
        trial.add(candidate.cluster_queue, candidate.usage)
        if _fits(trial, queue, assignment.usage):
            chosen.remove((candidate, reason))
        else:
            trial.add(candidate.cluster_queue, candidate.usage, -1)
    return chosen


# --- a scheduling cycle ------------------------------------------------------------------------------------------------


def queue_order(workloads: list[WorkloadInfo]) -> list[WorkloadInfo]:
    return sorted(workloads, key=lambda w: (-w.priority, w.queued_at, w.key))


def schedule(
    queues: dict[str, QueueConfig], workloads: list[WorkloadInfo], flavor_labels: dict[str, dict[str, str]]
) -> list[Decision]:
    """One scheduling cycle over every pending workload: which to admit, which to evict, why the others wait.

    `workloads` holds both the workloads holding quota (`usage` set) and the pending ones (`usage` empty).
    """
    usage: dict[str, dict[FlavorResource, int]] = {}
    for w in workloads:
        if w.holds_quota:
            table = usage.setdefault(w.cluster_queue, {})
            for fr, amount in w.usage.items():
                table[fr] = table.get(fr, 0) + amount
    snapshot = Snapshot(queues, usage)
    admitted = [w for w in workloads if w.holds_quota]
    decisions: list[Decision] = []
    # Flavor-resources a higher-priority workload is waiting to get through preemption, per cohort (or queue).
    reserved: dict[str, set[FlavorResource]] = {}
    for workload in queue_order([w for w in workloads if not w.holds_quota]):
        queue = queues.get(workload.cluster_queue)
        if queue is None:
            continue
        if queue.stopped:
            decisions.append(Pending(workload.key, f"ClusterQueue {queue.name} is inactive", "Inadmissible"))
            continue
        assignment = assign_flavors(snapshot, queue, workload, flavor_labels)
        scope = queue.cohort or queue.name
        if assignment.mode == FIT:
            if reserved.get(scope, set()).intersection(assignment.usage):
                decisions.append(Pending(workload.key, "Workload no longer fits after processing another workload"))
                continue
            snapshot.add(queue.name, assignment.usage)
            workload.usage = dict(assignment.usage)
            admitted.append(workload)
            decisions.append(Admit(workload.key, queue.name, tuple(assignment.pod_sets), assignment.borrows))
            continue
        if assignment.mode == PREEMPT:
            targets = preemption_targets(snapshot, queue, workload, assignment, admitted)
            if targets:
                for victim, reason in targets:
                    if not victim.evicted:
                        victim.evicted = True
                        decisions.append(
                            Evict(victim.key, reason, workload.key, workload.uid, workload.job_uid, queue.name, victim.cluster_queue)
                        )
                reserved.setdefault(scope, set()).update(assignment.usage)
                decisions.append(Pending(workload.key, f"{assignment.message}. Pending the preemption of {len(targets)} workload(s)"))
                continue
        decisions.append(Pending(workload.key, assignment.message))
    return decisions


def preemption_message(evict: Evict, cohort: str) -> str:
    """The message Kueue writes on a preempted workload's Evicted and Preempted conditions."""

    def path(queue: str) -> str:
        return f"/{cohort}/{queue}" if cohort else f"/{queue}"

    return (
        f"Preempted to accommodate a workload (UID: {evict.preemptor_uid or 'UNKNOWN'}, JobUID: "
        f"{evict.preemptor_job_uid or 'UNKNOWN'}) due to {HUMAN_REASONS[evict.reason]}; preemptor path: "
        f"{path(evict.preemptor_queue)}; preemptee path: {path(evict.victim_queue)}"
    )
