"""Kueue's admission decisions as the simulator makes them (app/demo/sim/kueue_logic.py), on plain data."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.demo.sim.kueue_logic import (
    Admit,
    Evict,
    Pending,
    PodSet,
    Snapshot,
    WorkloadInfo,
    queue_config,
    schedule,
)

GPU = "nvidia.com/gpu"
P5, G5 = "ml.p5.48xlarge", "ml.g5.12xlarge"
LABELS = {P5: {"node.kubernetes.io/instance-type": P5}, G5: {"node.kubernetes.io/instance-type": G5}}


def cluster_queue(name: str, gpus: dict[str, tuple[int, int | None, int | None]], *, cohort: str = "all",
                  within: str = "LowerPriority", reclaim: str = "Any") -> Any:
    """A ClusterQueue object: per flavor (nominal, borrowingLimit, lendingLimit) of GPUs."""
    flavors = []
    for flavor, (nominal, borrowing, lending) in gpus.items():
        resource: dict[str, Any] = {"name": GPU, "nominalQuota": nominal}
        if borrowing is not None:
            resource["borrowingLimit"] = borrowing
        if lending is not None:
            resource["lendingLimit"] = lending
        flavors.append({"name": flavor, "resources": [resource]})
    return queue_config({
        "metadata": {"name": name},
        "spec": {"cohort": cohort, "resourceGroups": [{"coveredResources": [GPU], "flavors": flavors}],
                 "preemption": {"withinClusterQueue": within, "reclaimWithinCohort": reclaim}},
    })


def workload(name: str, queue: str, gpus: int, *, priority: int = 0, queued_at: float = 0, holds: str | None = None,
             selector: dict[str, str] | None = None, pod_sets: list[PodSet] | None = None) -> WorkloadInfo:
    sets = pod_sets or [PodSet("main", gpus, {GPU: 1000}, selector or {})]
    usage = {(holds, GPU): gpus * 1000} if holds else {}
    return WorkloadInfo(("team", name), queue, priority, queued_at, sets, uid=f"uid-{name}", job_uid=f"job-{name}",
                        usage=usage, admitted_at=queued_at)


def by_name(decisions: list[Any]) -> dict[str, Any]:
    return {d.key[1]: d for d in decisions}


def test_higher_priority_is_admitted_first_and_the_other_waits_with_kueues_message() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None)}, cohort="")}
    low = workload("low", "a", 8, priority=50, queued_at=0)
    high = workload("high", "a", 8, priority=80, queued_at=10)
    decisions = by_name(schedule(queues, [low, high], LABELS))
    assert isinstance(decisions["high"], Admit) and decisions["high"].pod_sets[0].flavors == {GPU: P5}
    assert decisions["low"] == Pending(
        ("team", "low"), f"couldn't assign flavors to pod set main: insufficient unused quota for {GPU} in flavor {P5}, 8 more needed"
    )


def test_equal_priorities_are_admitted_in_queue_order() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None)}, cohort="")}
    decisions = by_name(schedule(queues, [workload("second", "a", 8, queued_at=5), workload("first", "a", 8, queued_at=1)], LABELS))
    assert isinstance(decisions["first"], Admit) and isinstance(decisions["second"], Pending)


def test_borrowing_is_bounded_by_the_borrowing_limit_and_what_others_lend() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, 4, None)}), "b": cluster_queue("b", {P5: (8, None, 6)})}
    decisions = by_name(schedule(queues, [workload("twelve", "a", 12)], LABELS))
    assert isinstance(decisions["twelve"], Admit) and decisions["twelve"].borrows
    decisions = by_name(schedule(queues, [workload("sixteen", "a", 16)], LABELS))
    assert decisions["sixteen"].message == (
        f"couldn't assign flavors to pod set main: insufficient quota for {GPU} in flavor {P5}, "
        "request > maximum capacity (16 > 12)"
    )
    # b lends at most 6: with a's limit raised, 8 + 6 is the ceiling.
    queues["a"] = cluster_queue("a", {P5: (8, 100, None)})
    assert by_name(schedule(queues, [workload("fifteen", "a", 15)], LABELS))["fifteen"].message.endswith("(15 > 14)")


def test_the_maximum_capacity_message_of_a_multi_pod_set_job() -> None:
    """HyperPod's vision team: nominal 8, borrowing limit 8; a 24-GPU job can never fit."""
    queues = {"vision": cluster_queue("vision", {P5: (8, 8, 4)}), "research": cluster_queue("research", {P5: (16, 8, 8)})}
    job = workload("sam2", "vision", 24, pod_sets=[PodSet("master", 1, {GPU: 8000}), PodSet("worker", 2, {GPU: 8000})])
    decision = by_name(schedule(queues, [job], LABELS))["sam2"]
    assert decision.message == (
        f"couldn't assign flavors to pod set worker: insufficient quota for {GPU} in flavor {P5}, "
        "request > maximum capacity (24 > 16)"
    )


def test_lower_priority_is_preempted_in_the_cluster_queue_then_the_preemptor_admitted() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None)}, cohort="")}
    running = workload("fine-tune", "a", 8, priority=50, holds=P5)
    urgent = workload("eval", "a", 8, priority=80, queued_at=100)
    decisions = schedule(queues, [running, urgent], LABELS)
    assert decisions == [
        Evict(("team", "fine-tune"), "InClusterQueue", ("team", "eval"), "uid-eval", "job-eval", "a", "a"),
        Pending(("team", "eval"), f"couldn't assign flavors to pod set main: insufficient unused quota for {GPU} in flavor "
                                  f"{P5}, 8 more needed. Pending the preemption of 1 workload(s)"),
    ]
    # Once the victim's pods are gone its quota is released, and the preemptor is admitted.
    released = workload("fine-tune", "a", 8, priority=50, queued_at=101)
    decisions = by_name(schedule(queues, [released, urgent], LABELS))
    assert isinstance(decisions["eval"], Admit) and isinstance(decisions["fine-tune"], Pending)


def test_equal_or_higher_priority_is_never_preempted_within_the_queue() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None)}, cohort="")}
    decisions = schedule(queues, [workload("running", "a", 8, priority=80, holds=P5), workload("new", "a", 8, priority=80)], LABELS)
    assert [type(d) for d in decisions] == [Pending]


def test_a_queue_reclaims_its_nominal_quota_from_a_borrower() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, 8, None)}), "b": cluster_queue("b", {P5: (8, None, None)})}
    borrower = workload("borrower", "a", 16, priority=90, holds=P5)
    owner = workload("owner", "b", 8, priority=10)
    decisions = by_name(schedule(queues, [borrower, owner], LABELS))
    assert decisions["borrower"].reason == "InCohortReclamation"
    assert decisions["owner"].message.endswith("Pending the preemption of 1 workload(s)")


def test_flavors_are_tried_in_order_and_must_match_the_node_selector() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None), G5: (4, None, None)}, cohort="")}
    on_g5 = workload("notebook", "a", 1, selector={"node.kubernetes.io/instance-type": G5})
    anywhere = workload("job", "a", 2)
    decisions = by_name(schedule(queues, [on_g5, anywhere], LABELS))
    assert decisions["notebook"].pod_sets[0].flavors == {GPU: G5}
    assert decisions["job"].pod_sets[0].flavors == {GPU: P5}
    too_big = workload("big", "a", 6, selector={"node.kubernetes.io/instance-type": G5})
    assert by_name(schedule(queues, [too_big], LABELS))["big"].message == (
        f"couldn't assign flavors to pod set main: flavor {P5} doesn't match node affinity, "
        f"insufficient quota for {GPU} in flavor {G5}, request > maximum capacity (6 > 4)"
    )


def test_a_resource_the_queue_does_not_cover_is_reported() -> None:
    queues = {"a": cluster_queue("a", {P5: (8, None, None)}, cohort="")}
    fpga = workload("fpga", "a", 0, pod_sets=[PodSet("main", 1, {GPU: 1000, "example.com/fpga": 1000})])
    assert by_name(schedule(queues, [fpga], LABELS))["fpga"].message == (
        "couldn't assign flavors to pod set main: resource example.com/fpga unavailable in ClusterQueue"
    )


@settings(max_examples=60, deadline=None)
@given(
    quotas=st.lists(st.tuples(st.integers(0, 16), st.one_of(st.none(), st.integers(0, 16)), st.one_of(st.none(), st.integers(0, 16))),
                    min_size=1, max_size=3),
    jobs=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 12), st.integers(0, 3)), max_size=10),
)
def test_admissions_never_exceed_quota(quotas: list[tuple[int, int | None, int | None]], jobs: list[tuple[int, int, int]]) -> None:
    """Whatever is submitted, admitted usage stays within every queue's limits and the cohort's nominal total."""
    queues = {f"q{i}": cluster_queue(f"q{i}", {P5: quota}) for i, quota in enumerate(quotas)}
    infos = [workload(f"w{n}", f"q{q % len(quotas)}", gpus, priority=prio * 10, queued_at=n) for n, (q, gpus, prio) in enumerate(jobs)]
    decisions = schedule(queues, infos, LABELS)
    used: dict[str, int] = {}
    for decision in decisions:
        if isinstance(decision, Admit):
            used[decision.cluster_queue] = used.get(decision.cluster_queue, 0) + sum(p.usage[GPU] for p in decision.pod_sets) // 1000
    total_nominal = sum(q[0] for q in quotas)
    assert sum(used.values()) <= total_nominal
    for name, amount in used.items():
        quota = queues[name].quota((P5, GPU))
        assert quota is not None
        if quota.borrowing_limit is not None:
            assert amount <= quota.nominal + quota.borrowing_limit
    # What the queues borrow from each other never exceeds what they lend.
    snapshot = Snapshot(queues, {n: {(P5, GPU): v * 1000} for n, v in used.items()})
    quotas_of = [(q.name, q.quota((P5, GPU))) for q in queues.values()]
    pooled = sum(max(0, snapshot.used(name, (P5, GPU)) - quota.guaranteed) for name, quota in quotas_of if quota)
    assert pooled <= sum(quota.lendable for _, quota in quotas_of if quota)
