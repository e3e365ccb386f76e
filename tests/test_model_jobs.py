"""Job rows from raw objects (pure): states from job conditions refined by the Workload, GPUs, hints, joins."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.model.jobs import JobRow, human_duration, job_rows, job_state

NS = "hyperpod-ns-team-a"


def hp_job(name: str, conditions: list[tuple[str, str]] = (), uid: str = "uid-1", replicas: int = 2,
           gpus: str = "8", labels: dict | None = None) -> dict:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": uid, "creationTimestamp": "2026-11-27T10:00:00Z",
                     "labels": {"kueue.x-k8s.io/queue-name": "hyperpod-ns-team-a-localqueue",
                                "kueue.x-k8s.io/priority-class": "training-priority", **(labels or {})}},
        "spec": {"nprocPerNode": 8, "replicaSpecs": [{"name": "pod", "replicas": replicas, "template": {"spec": {
            "containers": [{"name": "pytorch-job-container", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}}}]},
        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions],
                   "startTime": "2026-11-27T10:05:00Z"},
    }


def workload(owner_uid: str, conditions: list[tuple[str, str, str, str]], active: bool = True) -> dict:
    return {
        "metadata": {"name": f"wl-{owner_uid}", "namespace": NS,
                     "ownerReferences": [{"kind": "HyperPodPyTorchJob", "uid": owner_uid}]},
        "spec": {"queueName": "hyperpod-ns-team-a-localqueue", "active": active},
        "status": {"conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions]},
    }


def rows(*jobs: dict, workloads: tuple[dict, ...] = (), pods: tuple[dict, ...] = (),
         positions: dict | None = None) -> list[JobRow]:
    def keyed(objs):
        return {f"{o['metadata'].get('namespace')}/{o['metadata']['name']}": o for o in objs}

    return job_rows({"hyperpodpytorchjobs": keyed(jobs), "workloads": keyed(workloads), "pods": keyed(pods)},
                    positions)


QUEUED = [("QuotaReserved", "False", "Inadmissible",
           "couldn't assign flavors to pod set pod: insufficient quota for nvidia.com/gpu in flavor ml.p5.48xlarge")]


@pytest.mark.parametrize(
    ("job_conditions", "wl_conditions", "active", "state"),
    [
        ([("Created", "True")], QUEUED, True, "Queued"),
        ([("Created", "True")], [("QuotaReserved", "True", "QuotaReserved", ""), ("Admitted", "True", "Admitted", "")],
         True, "Admitted"),
        ([("Created", "True"), ("PodsRunning", "True"), ("Running", "True")],
         [("Admitted", "True", "Admitted", "")], True, "Running"),
        ([("Created", "True"), ("Running", "False"), ("Succeeded", "True")], [("Admitted", "True", "", "")], True,
         "Succeeded"),
        ([("Created", "True"), ("Failed", "True")], [("Admitted", "True", "", "")], True, "Failed"),
        ([("Created", "True")], QUEUED, False, "Suspended"),
        ([("Created", "True"), ("Running", "False")],
         [("Admitted", "False", "NoReservation", ""), ("Evicted", "True", "Preempted", "Preempted to accommodate a "
          "workload (UID: u2, JobUID: j2) due to prioritization in the ClusterQueue"),
          ("Preempted", "True", "InClusterQueue", "Preempted to accommodate a workload (UID: u2) due to "
           "prioritization in the ClusterQueue")], True, "Preempted"),
    ],
)
def test_states(job_conditions, wl_conditions, active, state) -> None:
    (row,) = rows(hp_job("llama", job_conditions), workloads=(workload("uid-1", wl_conditions, active),))
    assert row.state == state


def test_queued_job_says_why_and_where_it_is() -> None:
    (row,) = rows(hp_job("llama", [("Created", "True")]), workloads=(workload("uid-1", QUEUED),),
                  positions={f"{NS}/wl-uid-1": 3})
    assert row.hint.startswith("couldn't assign flavors to pod set pod: insufficient quota for nvidia.com/gpu")
    assert row.position == 3
    assert (row.team, row.queue, row.priority) == ("team-a", "hyperpod-ns-team-a-localqueue", "training-priority")
    assert (row.gpus, row.nodes, row.procs) == (16, 2, 8)


def test_preempted_job_names_the_reason() -> None:
    preempted = workload("uid-1", [("Preempted", "True", "InCohortReclamation",
                                    "Preempted to accommodate a workload (UID: u9) due to reclamation within the cohort")])
    (row,) = rows(hp_job("llama", [("Created", "True")]), workloads=(preempted,))
    assert row.state == "Preempted"
    assert row.hint == ("InCohortReclamation: Preempted to accommodate a workload (UID: u9) due to reclamation "
                        "within the cohort")


def test_mig_slices_and_pods_by_label() -> None:
    job = hp_job("mig-ft", [("Created", "True"), ("Running", "True")], gpus="0", replicas=1)
    job["spec"]["replicaSpecs"][0]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/mig-3g.40gb": "2"}}
    pod = {"metadata": {"name": "mig-ft-pod-0", "namespace": NS, "labels": {"HPJob": "mig-ft"}},
           "spec": {"nodeName": "node-7"},
           "status": {"containerStatuses": [{"name": "c", "restartCount": 2}]}}
    (row,) = rows(job, pods=(pod,))
    assert row.mig == {"3g.40gb": 2} and row.gpus == 0
    assert row.gpu_text == "2×3g.40gb"
    assert row.pods == (f"{NS}/mig-ft-pod-0",)
    assert row.restarts == 2
    assert row.state == "Running", "without a Workload, the job's own conditions decide"


def test_a_plain_job_owned_pods_and_completion() -> None:
    job = {"metadata": {"name": "eval", "namespace": NS, "uid": "j1", "creationTimestamp": "2026-11-27T09:00:00Z"},
           "spec": {"parallelism": 3, "template": {"spec": {"containers": [
               {"name": "c", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]}}},
           "status": {"conditions": [{"type": "Complete", "status": "True"}], "startTime": "2026-11-27T09:00:10Z",
                      "completionTime": "2026-11-27T09:10:10Z"}}
    (row,) = job_rows({"jobs": {f"{NS}/eval": job}})
    assert (row.kind, row.state, row.gpus, row.nodes) == ("Job", "Succeeded", 3, 3)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    assert row.run_seconds(now) == 600
    assert human_duration(row.age_seconds(now)) == "3h"


def test_suspended_without_kueue() -> None:
    job = hp_job("paused", [])
    job["spec"]["runPolicy"] = {"suspend": True}
    assert job_state("HyperPodPyTorchJob", job, None) == "Suspended"


@pytest.mark.parametrize(("seconds", "text"), [(None, ""), (45, "45s"), (90, "1m"), (7199, "119m"), (7200, "2h"),
                                               (3 * 86400, "3d")])
def test_human_duration(seconds, text) -> None:
    assert human_duration(seconds) == text


def test_a_jobset_is_one_row_running_when_its_pods_run() -> None:
    jobset = {"metadata": {"name": "whisper", "namespace": NS, "uid": "js1"},
              "spec": {"replicatedJobs": [{"name": "trainer", "replicas": 2, "template": {"spec": {
                  "parallelism": 1, "template": {"spec": {"containers": [
                      {"name": "c", "resources": {"limits": {"nvidia.com/mig-3g.40gb": "1"}}}]}}}}}]},
              "status": {}}
    child = {"metadata": {"name": "whisper-trainer-0", "namespace": NS, "uid": "j1",
                          "ownerReferences": [{"kind": "JobSet", "uid": "js1"}]},
             "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}, "status": {"active": 1}}
    pod = {"metadata": {"name": "whisper-trainer-0-abc", "namespace": NS,
                        "labels": {"jobset.sigs.k8s.io/jobset-name": "whisper"}},
           "status": {"phase": "Running"}}
    admitted = workload("js1", [("Admitted", "True", "Admitted", "")])
    result = job_rows({"jobsets": {f"{NS}/whisper": jobset}, "jobs": {f"{NS}/whisper-trainer-0": child},
                       "workloads": {f"{NS}/wl": admitted}, "pods": {f"{NS}/p": pod}})
    assert [(r.kind, r.name, r.state, r.gpu_text) for r in result] == [("JobSet", "whisper", "Running", "2×3g.40gb")]


def test_nproc_per_node_auto_counts_as_one() -> None:
    job = hp_job("auto-procs", [("Created", "True")])
    job["spec"]["nprocPerNode"] = "auto"
    (row,) = rows(job)
    assert row.procs == 1
