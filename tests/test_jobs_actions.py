"""The Jobs pane's headless core, against real servers: submit, cancel, suspend/resume, priority, edit, queue
positions, quotas and logs. The simulated cluster (`bare_cluster`: Kueue, the training operators, the kubelet) plays
the controllers; time is moved with `advance`. Bad input and refusals use the local API server directly, with token
users where access matters and its fault injection where a create must fail half-way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from app.cluster import actions
from app.cluster.actions import ActionError, ReadOnlyError, parse_manifest
from app.cluster.connection import ClusterConnection
from app.cluster.discovery import discover
from app.cluster.logs import LogBuffer, job_logs, split_timestamp, stream_logs
from app.cluster.queues import fetch_jobs, queue_positions, quota_rows, submit_choices
from app.demo.apiserver import LocalApiServer
from app.demo.sim import DemoThread
from app.demo.sim.base import JobHints
from app.model.jobs import JobRow
from app.model.templates import render

NLP = "hyperpod-ns-nlp"
NLP_QUEUE = f"{NLP}-localqueue"
NLP_CQ = f"{NLP}-clusterqueue"
KUEUE = "/apis/kueue.x-k8s.io/v1beta1"
MERGE = {"Content-Type": "application/merge-patch+json"}
IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


@pytest.fixture
async def conn(bare_cluster: DemoThread) -> AsyncIterator[ClusterConnection]:
    connection = ClusterConnection([bare_cluster.kubeconfig_path], None)
    yield connection
    await connection.close()


@pytest.fixture
async def local() -> AsyncIterator[tuple[LocalApiServer, ClusterConnection, list[tuple[str, str]]]]:
    """A bare API server, a connection to it, and every (method, path?query) it receives."""
    async with LocalApiServer() as server:
        seen: list[tuple[str, str]] = []

        async def record(request: Any, info: Any) -> None:
            seen.append((request.method, request.path_qs))

        server.api.add_request_hook(record)
        connection = ClusterConnection([server.kubeconfig_path], None)
        try:
            yield server, connection, seen
        finally:
            await connection.close()


async def jobs_of(conn: ClusterConnection, namespace: str | None = NLP) -> dict[str, JobRow]:
    """The rows `hyperdesk get jobs` and the Jobs pane show."""
    return {row.name: row for row in await fetch_jobs(conn, await discover(conn), namespace)}


def batch_job(name: str, gpus: int = 8, *, queue: str | None = NLP_QUEUE, priority: str | None = None,
              namespace: str = NLP) -> dict[str, Any]:
    labels = {k: v for k, v in (("kueue.x-k8s.io/queue-name", queue), ("kueue.x-k8s.io/priority-class", priority)) if v}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})},
            "spec": {"parallelism": 1, "completions": 1, "template": {"spec": {
                "restartPolicy": "Never", "nodeSelector": {"node.kubernetes.io/instance-type": "ml.p5.48xlarge"},
                "containers": [{"name": "main", "image": IMAGE, "command": ["python", "train.py", "--max-steps", "5000"],
                                "resources": {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}}]}}}}


def configmap(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"}}


# --- manifests ----------------------------------------------------------------------------------------------------

def test_manifest_errors_name_the_file_and_line() -> None:
    broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n data: x\n"
    with pytest.raises(ActionError) as error:
        parse_manifest(broken, "jobs.yaml")
    assert str(error.value).startswith("jobs.yaml:10: invalid YAML: ") and error.value.exit_code == 2
    with pytest.raises(ActionError, match=r"^jobs.yaml:6: missing apiVersion$"):
        parse_manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# second\nkind: Job\nmetadata: {name: b}\n",
                       "jobs.yaml")
    with pytest.raises(ActionError, match=r"^x.yaml:1: a document must be a mapping"):
        parse_manifest("- just\n- a list\n", "x.yaml")
    with pytest.raises(ActionError, match=r"^x.yaml:2: Job has no metadata.name \(or metadata.generateName\)$"):
        parse_manifest("---\napiVersion: batch/v1\nkind: Job\nmetadata: {labels: {a: b}}\n", "x.yaml")
    with pytest.raises(ActionError, match=r"^empty.yaml: no objects to submit$"):
        parse_manifest("---\n# nothing\n---\n", "empty.yaml")
    listed = parse_manifest("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
                            "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\n---\n"
                            "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: sweep-}\n", "many.yaml")
    assert [(d["kind"], d["metadata"].get("name") or d["metadata"]["generateName"]) for d in listed] == [
        ("ConfigMap", "a"), ("ConfigMap", "b"), ("Job", "sweep-")]


# --- read-only, bad input, nothing half-created --------------------------------------------------------------------

async def test_read_only_refuses_every_change_before_sending_anything(local) -> None:
    server, conn, seen = local
    attempts = [
        (actions.submit(conn, [configmap("a")], readonly=True), "submitting 1 object"),
        (actions.cancel(conn, "pytorchjobs", NLP, "x", readonly=True), f"cancelling PyTorchJob {NLP}/x"),
        (actions.set_suspended(conn, "jobs", NLP, "x", True, readonly=True), f"suspending Job {NLP}/x"),
        (actions.set_suspended(conn, "jobsets", NLP, "x", False, readonly=True), f"resuming JobSet {NLP}/x"),
        (actions.set_priority(conn, "hyperpodpytorchjobs", NLP, "x", "training-priority", readonly=True),
         f"changing the priority of HyperPodPyTorchJob {NLP}/x"),
        (actions.apply_yaml(conn, yaml.safe_dump(configmap("a")), readonly=True), "applying the edited YAML"),
    ]
    for call, doing in attempts:
        with pytest.raises(ReadOnlyError) as refused:
            await call
        assert str(refused.value) == f"hyperdesk is read-only (--readonly): not {doing}"
        assert refused.value.exit_code == 2
    assert seen == [], "nothing reached the server"

    # A server-side dry run changes nothing: a read-only session may validate a manifest.
    assert await actions.submit(conn, [configmap("a")], readonly=True, dry_run=True) == ["ConfigMap/default/a"]
    assert [m for m, _ in seen if m != "GET"] == ["POST"] and "dryRun=All" in seen[-1][1]
    assert server.store.list("v1", "ConfigMap", "default") == []


async def test_unknown_kinds_are_refused_before_anything_is_created(local) -> None:
    server, conn, _ = local
    frob = {"apiVersion": "example.com/v1", "kind": "Frob", "metadata": {"name": "f"}}
    with pytest.raises(ActionError) as unknown:
        await actions.submit(conn, [configmap("a"), frob], readonly=False)
    assert str(unknown.value) == "unknown kind Frob: the cluster does not serve the API example.com/v1"
    assert unknown.value.exit_code == 2
    widget = {"apiVersion": "batch/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(ActionError, match="^unknown kind Widget: the cluster serves batch/v1 but no kind Widget in it$"):
        await actions.submit(conn, [configmap("a"), widget], readonly=False)
    assert server.store.list("v1", "ConfigMap", "default") == []


async def test_a_name_the_server_rejects_creates_nothing_and_says_why(local) -> None:
    server, conn, _ = local
    bad = batch_job("Fine_Tune", queue=None, namespace="default")
    with pytest.raises(ActionError) as rejected:
        await actions.submit(conn, [configmap("first"), bad], readonly=False)
    message = str(rejected.value)
    assert message.startswith('the server rejected Job default/Fine_Tune: Job.batch "Fine_Tune" is invalid: metadata.name: '
                              'Invalid value: "Fine_Tune"')
    assert message.endswith("(nothing was created)") and rejected.value.exit_code == 2
    assert server.store.list("v1", "ConfigMap", "default") == [], "the valid object before it was not created either"


async def test_a_forbidden_namespace_is_refused_and_nothing_is_created() -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list", "create", "delete"], "apiGroups": ["", "batch"], "resources": ["configmaps", "jobs"],
             "namespaces": ["team-a"]}]},
        {"name": "admin", "token": "admin-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
    ]}
    async with LocalApiServer(access=access, user="admin") as server:
        for name in ("team-a", "team-b"):
            server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        conn = ClusterConnection([server.kubeconfig_for("alice")], None)
        try:
            with pytest.raises(ActionError) as refused:
                await actions.submit(conn, [configmap("settings", "team-a"), batch_job("train", queue=None, namespace="team-b")],
                                     readonly=False)
            assert str(refused.value) == (
                'the server rejected Job team-b/train: jobs.batch is forbidden: User "alice" cannot create resource '
                '"jobs" in API group "batch" in the namespace "team-b" (nothing was created)')
            assert refused.value.exit_code == 2
            assert server.store.list("v1", "ConfigMap", "team-a") == []
            assert await actions.submit(conn, [configmap("settings", "team-a")], readonly=False) == [
                "ConfigMap/team-a/settings"]
        finally:
            await conn.close()


async def test_a_create_that_fails_half_way_deletes_what_was_created(local) -> None:
    server, conn, _ = local
    creates = []

    def second_job_create(info: Any) -> bool:
        if info.verb == "create" and info.resource == "jobs":
            creates.append(info)
            return len(creates) == 2  # the dry run passes; the real create fails
        return False

    server.faults.fail(1.0, times=1, match=second_job_create)
    with pytest.raises(ActionError) as failed:
        await actions.submit(conn, [configmap("a"), configmap("b"), batch_job("c", queue=None, namespace="default")],
                             readonly=False)
    assert str(failed.value) == ("creating Job default/c failed: Internal error occurred: injected fault; deleted the 2 "
                                 "objects it had created (ConfigMap/default/a, ConfigMap/default/b)")
    assert failed.value.exit_code == 1
    assert server.store.list("v1", "ConfigMap", "default") == [] and server.store.list("batch/v1", "Job", "default") == []


async def test_edit_replaces_the_object_and_a_concurrent_change_is_a_clear_conflict(local) -> None:
    server, conn, _ = local
    await actions.submit(conn, [batch_job("edited", queue=None, namespace="default")], readonly=False)
    opened = await actions.job_yaml(conn, "jobs", "default", "edited")
    assert "managedFields" not in opened and "resourceVersion" in opened
    edited = yaml.safe_load(opened)
    edited["metadata"].setdefault("labels", {})["team"] = "nlp"
    assert await actions.apply_yaml(conn, yaml.safe_dump(edited), readonly=False) == "Job/default/edited"
    assert server.store.get("batch/v1", "Job", "edited", "default")["metadata"]["labels"] == {"team": "nlp"}

    stale = yaml.safe_load(opened)
    stale["metadata"].setdefault("labels", {})["team"] = "vision"
    with pytest.raises(ActionError) as conflict:
        await actions.apply_yaml(conn, yaml.safe_dump(stale), readonly=False)
    assert str(conflict.value) == ("Job default/edited was changed on the cluster after it was opened (409 Conflict); "
                                   "nothing was applied: open it again and redo the edit")
    assert conflict.value.exit_code == 1
    assert server.store.get("batch/v1", "Job", "edited", "default")["metadata"]["labels"] == {"team": "nlp"}
    del stale["metadata"]["resourceVersion"]
    with pytest.raises(ActionError, match="metadata.resourceVersion is missing") as missing:
        await actions.apply_yaml(conn, yaml.safe_dump(stale), readonly=False)
    assert missing.value.exit_code == 2


# --- Kueue: queue and priority checks, positions, quotas -----------------------------------------------------------

async def test_queue_and_priority_are_checked_against_what_the_cluster_offers(conn: ClusterConnection) -> None:
    discovery = await discover(conn)
    choices = await submit_choices(conn, discovery, NLP)
    assert choices.queues == (NLP_QUEUE,) and choices.serves_hyperpod
    assert [(p.name, p.value) for p in choices.priorities] == [
        ("inference-priority", 90), ("experimentation-priority", 80), ("training-priority", 70), ("fine-tuning-priority", 50)]

    cases = [
        ({}, batch_job("unqueued", queue=None),
         f"Job {NLP}/unqueued has no kueue.x-k8s.io/queue-name label, and namespace {NLP} queues its jobs through "
         f"Kueue: pass --queue {NLP_QUEUE} (LocalQueues here: {NLP_QUEUE})"),
        ({"queue": "gpu-queue"}, batch_job("wrong-queue"),
         f"Job {NLP}/wrong-queue: namespace {NLP} has no LocalQueue gpu-queue (it has {NLP_QUEUE})"),
        ({"priority": "urgent"}, batch_job("wrong-priority"),
         f"Job {NLP}/wrong-priority: no WorkloadPriorityClass urgent (the cluster offers inference-priority (90), "
         "experimentation-priority (80), training-priority (70), fine-tuning-priority (50))"),
        ({"queue": NLP_QUEUE}, configmap("settings", NLP), "--queue applies to jobs, and none of the 1 objects is one"),
    ]
    for options, doc, message in cases:
        with pytest.raises(ActionError) as refused:
            await actions.submit(conn, [doc], readonly=False, discovery=discovery, **options)
        assert (str(refused.value), refused.value.exit_code) == (message, 2)
    assert await jobs_of(conn) == {}


async def test_a_template_job_runs_then_suspends_and_resumes_through_its_workload(conn: ClusterConnection,
                                                                                   bare_cluster: DemoThread) -> None:
    manifest = render("ddp", {"name": "llama-ddp", "image": IMAGE, "nodes": 2, "gpus": 8,
                              "command": "hyperpodrun --nnodes 2 train.py --max-steps 5000"}, serves_hyperpod=True)
    created = await actions.submit(conn, [manifest], readonly=False, queue=NLP_QUEUE, priority="training-priority",
                                   namespace=NLP)
    assert created == [f"HyperPodPyTorchJob/{NLP}/llama-ddp"]
    bare_cluster.advance(0)
    row = (await jobs_of(conn))["llama-ddp"]
    assert (row.state, len(row.pods)) == ("Admitted", 2), "admitted, its pods still starting"
    bare_cluster.advance(30)
    row = (await jobs_of(conn))["llama-ddp"]
    assert (row.kind, row.state, row.queue, row.priority, row.gpus) == (
        "HyperPodPyTorchJob", "Running", NLP_QUEUE, "training-priority", 16)
    assert row.pods == (f"{NLP}/llama-ddp-pod-0", f"{NLP}/llama-ddp-pod-1")

    changed = await actions.set_suspended(conn, "hyperpodpytorchjobs", NLP, "llama-ddp", True, readonly=False)
    assert changed.startswith(f"Workload {NLP}/hyperpodpytorchjob-llama-ddp-") and changed.endswith("spec.active=false")
    bare_cluster.advance(5)
    row = (await jobs_of(conn))["llama-ddp"]
    assert (row.state, row.pods) == ("Suspended", ())
    queue = quota_rows([await conn.request("GET", f"{KUEUE}/clusterqueues/{NLP_CQ}")])[0]
    assert queue.admitted == 0 and queue.total("nvidia.com/gpu")[0] == 0, "its quota was released"

    await actions.set_suspended(conn, "hyperpodpytorchjobs", NLP, "llama-ddp", False, readonly=False)
    bare_cluster.advance(30)
    assert (await jobs_of(conn))["llama-ddp"].state == "Running"


async def test_a_higher_priority_job_preempts_and_the_victim_says_why(conn: ClusterConnection,
                                                                     bare_cluster: DemoThread) -> None:
    low = render("ddp", {"name": "mistral-sft", "image": IMAGE, "nodes": 2, "gpus": 8}, serves_hyperpod=False)
    await actions.submit(conn, [low], readonly=False, queue=NLP_QUEUE, priority="fine-tuning-priority", namespace=NLP)
    bare_cluster.advance(30)
    assert (await jobs_of(conn))["mistral-sft"].state == "Running"

    high = render("fine-tune", {"name": "urgent-eval", "image": IMAGE, "gpus": 8}, serves_hyperpod=False)
    await actions.submit(conn, [high], readonly=False, queue=NLP_QUEUE, priority="experimentation-priority", namespace=NLP)
    bare_cluster.advance(1)
    rows = await jobs_of(conn)
    victim = rows["mistral-sft"]
    assert victim.state == "Preempted"
    assert victim.hint.startswith("InClusterQueue: Preempted to accommodate a workload (UID: ")
    assert "due to prioritization in the ClusterQueue" in victim.hint
    assert victim.pods == ()
    positions = await queue_positions(conn, await discover(conn), [NLP_CQ])
    assert positions == {victim.workload: 0}, "back in its queue, first in line"
    bare_cluster.advance(30)
    rows = await jobs_of(conn)
    assert rows["urgent-eval"].state == "Running" and rows["mistral-sft"].state == "Preempted"


async def test_priority_change_moves_a_pending_job_ahead_in_its_queue(conn: ClusterConnection,
                                                                      bare_cluster: DemoThread) -> None:
    await conn.request("PATCH", f"{KUEUE}/clusterqueues/{NLP_CQ}", body={"spec": {"stopPolicy": "Hold"}}, headers=MERGE)
    await actions.submit(conn, [batch_job("first", priority="fine-tuning-priority")], readonly=False)
    bare_cluster.advance(1)
    await actions.submit(conn, [batch_job("second", priority="fine-tuning-priority")], readonly=False)
    bare_cluster.advance(1)
    rows = await jobs_of(conn)
    assert [(rows[n].state, rows[n].position) for n in ("first", "second")] == [("Queued", 0), ("Queued", 1)]
    assert "inactive" in rows["first"].hint

    assert await actions.set_priority(conn, "jobs", NLP, "second", "experimentation-priority", readonly=False) == 80
    bare_cluster.advance(1)
    rows = await jobs_of(conn)
    assert rows["second"].priority == "experimentation-priority"
    assert [(rows[n].state, rows[n].position) for n in ("second", "first")] == [("Queued", 0), ("Queued", 1)]
    # Written at the version discovery prefers (v1beta2: priorityClassRef), while it still waits for quota.
    workload = await conn.request("GET", f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NLP}/workloads/"
                                         f"{rows['second'].workload.split('/')[1]}")
    assert workload["spec"]["priority"] == 80
    assert workload["spec"]["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass",
                                                    "name": "experimentation-priority"}

    positions = await queue_positions(conn, await discover(conn), [NLP_CQ, "no-such-queue"])
    assert positions == {rows["second"].workload: 0, rows["first"].workload: 1}
    with pytest.raises(ActionError, match=r"^no WorkloadPriorityClass urgent \(the cluster offers "):
        await actions.set_priority(conn, "jobs", NLP, "second", "urgent", readonly=False)


async def test_cancel_removes_the_job_its_pods_and_its_workload(conn: ClusterConnection, bare_cluster: DemoThread) -> None:
    await actions.submit(conn, [batch_job("doomed")], readonly=False)
    bare_cluster.advance(20)
    assert (await jobs_of(conn))["doomed"].state == "Running"
    await actions.cancel(conn, "jobs", NLP, "doomed", readonly=False)
    bare_cluster.advance(1)
    assert await jobs_of(conn) == {}
    assert (await conn.request("GET", f"{KUEUE}/namespaces/{NLP}/workloads"))["items"] == []
    assert (await conn.request("GET", f"/api/v1/namespaces/{NLP}/pods"))["items"] == []
    with pytest.raises(ActionError) as gone:
        await actions.cancel(conn, "jobs", NLP, "doomed", readonly=False)
    assert (str(gone.value), gone.value.exit_code) == (f"Job {NLP}/doomed not found (already deleted?)", 2)


async def test_a_job_kueue_does_not_queue_is_suspended_through_its_own_field(conn: ClusterConnection,
                                                                            bare_cluster: DemoThread) -> None:
    manifest = render("ddp", {"name": "solo", "image": IMAGE, "nodes": 1, "gpus": 1}, serves_hyperpod=False)
    await actions.submit(conn, [manifest], readonly=False, namespace="default")  # `default` has no LocalQueue
    bare_cluster.advance(20)
    assert (await jobs_of(conn, "default"))["solo"].state == "Running"
    changed = await actions.set_suspended(conn, "pytorchjobs", "default", "solo", True, readonly=False)
    assert changed == "PyTorchJob default/solo spec.runPolicy.suspend=true"
    bare_cluster.advance(2)
    row = (await jobs_of(conn, "default"))["solo"]
    assert (row.state, row.pods, row.queue) == ("Suspended", (), None)
    await actions.set_suspended(conn, "pytorchjobs", "default", "solo", False, readonly=False)
    bare_cluster.advance(20)
    assert (await jobs_of(conn, "default"))["solo"].state == "Running"


async def test_quota_rows_show_nominal_usage_borrowing_and_lending(conn: ClusterConnection, bare_cluster: DemoThread) -> None:
    await actions.submit(conn, [render("ddp", {"name": "big", "image": IMAGE, "nodes": 2, "gpus": 8}, serves_hyperpod=False)],
                         readonly=False, queue=NLP_QUEUE, namespace=NLP)
    bare_cluster.advance(5)
    cqs = (await conn.request("GET", f"{KUEUE}/clusterqueues"))["items"]
    lqs = (await conn.request("GET", f"{KUEUE}/localqueues"))["items"]
    rows = {row.name: row for row in quota_rows(cqs, lqs)}
    assert list(rows) == [NLP_CQ, "hyperpod-ns-research-clusterqueue", "hyperpod-ns-vision-clusterqueue"]
    nlp = rows[NLP_CQ]
    assert (nlp.cohort, nlp.admitted, nlp.pending) == ("hyperpod-cohort", 1, 0)
    assert [(lq.namespace, lq.name, lq.admitted) for lq in nlp.local_queues] == [(NLP, NLP_QUEUE, 1)]
    gpu = next(q for q in nlp.quota if q.flavor == "ml.p5.48xlarge" and q.resource == "nvidia.com/gpu")
    assert (gpu.nominal, gpu.used, gpu.borrowed, gpu.borrowing_limit, gpu.lendable, gpu.guaranteed) == (8, 16, 8, 8, 8, 0)
    vision = next(q for q in rows["hyperpod-ns-vision-clusterqueue"].quota
                  if q.flavor == "ml.p5.48xlarge" and q.resource == "nvidia.com/gpu")
    assert (vision.nominal, vision.used, vision.lending_limit, vision.lendable, vision.guaranteed) == (8, 0, 4, 4, 4)
    memory = next(q for q in nlp.quota if q.flavor == "ml.p5.48xlarge" and q.resource == "memory")
    assert memory.nominal == 3 * 2**40 and memory.as_dict()["nominal"] == 3 * 2**40


# --- logs -----------------------------------------------------------------------------------------------------------

async def test_a_crashed_rank_restarts_and_its_previous_log_says_why(conn: ClusterConnection, bare_cluster: DemoThread) -> None:
    world = bare_cluster.cluster.simulation.world
    # The simulator's scripted behaviour for this job: its last rank crashes once at step 5 (an NCCL timeout).
    bare_cluster.call(world.hints.__setitem__, (NLP, "flaky"), JobHints(total_steps=400, step_seconds=1.0, fail_at_step=5))
    manifest = render("ddp", {"name": "flaky", "image": IMAGE, "nodes": 2, "gpus": 4}, serves_hyperpod=False)
    await actions.submit(conn, [manifest], readonly=False, queue=NLP_QUEUE, namespace=NLP)
    bare_cluster.advance(60)
    row = (await jobs_of(conn))["flaky"]
    assert row.restarts == 1 and row.state == "Running"
    previous = [line async for line in stream_logs(conn, NLP, "flaky-worker-0", previous=True)]
    assert any("Watchdog caught collective operation timeout" in line for line in previous)
    assert previous[-1].startswith("ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1)")
    with pytest.raises(ActionError) as none:
        [line async for line in stream_logs(conn, NLP, "flaky-master-0", previous=True)]
    assert str(none.value) == (f'logs of pod {NLP}/flaky-master-0: previous terminated container "pytorch" in pod '
                               '"flaky-master-0" not found') and none.value.exit_code == 2

    # Both ranks, in time order, each line with its pod.
    lines = [(pod, line) async for pod, line in job_logs(conn, list(row.pods), prefix=True)]
    assert {pod for pod, _ in lines} == {f"{NLP}/flaky-master-0", f"{NLP}/flaky-worker-0"}
    assert lines[0] == (f"{NLP}/flaky-master-0",
                        "[flaky-master-0] [rank0] torch.distributed initialized: backend=nccl world_size=2 rank=0 local_gpus=4")
    texts = [line for _, line in lines]
    watchdog = next(i for i, line in enumerate(texts) if line.startswith("[flaky-master-0] [rank0] NCCL watchdog: rank 1"))
    # The worker's log is its restarted container's: it starts after the crash, and the merge puts it there.
    rejoined = texts.index("[flaky-worker-0] [rank1] torch.distributed initialized: backend=nccl world_size=2 rank=1 local_gpus=4")
    assert rejoined > watchdog
    assert texts.count("[flaky-master-0] [rank0] torch.distributed initialized: backend=nccl world_size=2 rank=0 local_gpus=4") == 2


async def test_a_job_that_crashes_without_retries_left_fails(conn: ClusterConnection, bare_cluster: DemoThread) -> None:
    world = bare_cluster.cluster.simulation.world
    bare_cluster.call(world.hints.__setitem__, (NLP, "doomed"), JobHints(total_steps=400, step_seconds=1.0, fail_at_step=3))
    manifest = render("ddp", {"name": "doomed", "image": IMAGE, "nodes": 1, "gpus": 8, "max_retries": 0},
                      serves_hyperpod=True)
    await actions.submit(conn, [manifest], readonly=False, queue=NLP_QUEUE, namespace=NLP)
    bare_cluster.advance(45)
    row = (await jobs_of(conn))["doomed"]
    assert (row.state, row.restarts) == ("Failed", 0)
    with pytest.raises(ActionError) as refused:
        await actions.set_suspended(conn, "hyperpodpytorchjobs", NLP, "doomed", True, readonly=False)
    assert (str(refused.value), refused.value.exit_code) == (
        f"HyperPodPyTorchJob {NLP}/doomed has failed: there is nothing to suspend", 2)


async def test_following_a_job_streams_new_lines_as_training_steps(conn: ClusterConnection, bare_cluster: DemoThread) -> None:
    manifest = render("fine-tune", {"name": "follow-me", "image": IMAGE, "command": "python sft.py --max-steps 500"},
                      serves_hyperpod=False)
    await actions.submit(conn, [manifest], readonly=False, queue=NLP_QUEUE, namespace=NLP)
    bare_cluster.advance(25)
    row = (await jobs_of(conn))["follow-me"]
    stream = job_logs(conn, list(row.pods), follow=True, tail_lines=2, timestamps=True)
    try:
        first = [(await asyncio.wait_for(stream.__anext__(), 5))[1] for _ in range(2)]
        bare_cluster.advance(10)  # five more steps of two seconds
        later: list[str] = []
        while sum(" | loss " in line for line in later) < 5:
            later.append((await asyncio.wait_for(stream.__anext__(), 5))[1])
    finally:
        await stream.aclose()
    assert all(split_timestamp(line)[0] for line in first + later), "each line starts with its timestamp"
    steps = [int(split_timestamp(line)[1].split()[1].split("/")[0]) for line in later if " | loss " in line]
    assert steps == list(range(steps[0], steps[0] + 5)), "new steps, in order, as they were written"


async def test_log_streams_pick_the_default_container_cut_long_lines_and_end_with_the_pod(local) -> None:
    server, conn, _ = local
    server.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "trainer-0", "namespace": "default",
        "annotations": {"kubectl.kubernetes.io/default-container": "trainer"}},
        "spec": {"containers": [{"name": "sidecar", "image": "busybox"}, {"name": "trainer", "image": IMAGE}]}})
    server.logs.write("default", "trainer-0", "trainer", ["epoch 1", "x" * 40_000, "epoch 2"])
    server.logs.write("default", "trainer-0", "sidecar", ["sidecar says hi"])
    lines = [line async for line in stream_logs(conn, "default", "trainer-0")]
    assert lines[0] == "epoch 1" and lines[2] == "epoch 2"
    assert len(lines[1]) < 17_000 and lines[1].endswith("…[line cut]")
    assert [line async for line in stream_logs(conn, "default", "trainer-0", container="sidecar")] == ["sidecar says hi"]

    following = stream_logs(conn, "default", "trainer-0", follow=True, tail_lines=1)
    assert await asyncio.wait_for(following.__anext__(), 5) == "epoch 2"
    server.logs.write("default", "trainer-0", "trainer", ["epoch 3"])
    assert await asyncio.wait_for(following.__anext__(), 5) == "epoch 3"
    server.store.delete("v1", "Pod", "trainer-0", "default")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(following.__anext__(), 5)

    errors: list[tuple[str, str]] = []
    got = [x async for x in job_logs(conn, ["default/gone-0"], on_error=lambda pod, msg: errors.append((pod, msg)))]
    assert got == [] and errors == [("default/gone-0", 'logs of pod default/gone-0: pods "gone-0" not found')]
    with pytest.raises(ActionError, match='pods "gone-0" not found'):
        [x async for x in job_logs(conn, ["default/gone-0"])]


def test_log_buffer_keeps_the_newest_lines_and_searches_them() -> None:
    buffer = LogBuffer(maxlen=3, max_line_chars=10)
    buffer.extend(["step 1 loss 2.0", "step 2", "eval 2", "step 3", "NCCL error"])
    assert len(buffer) == 3 and buffer.dropped == 2
    assert list(buffer) == ["eval 2", "step 3", "NCCL error"]
    assert buffer.search("STEP") == [1] and buffer.search(r"^(eval|nccl)", regex=True) == [0, 2]
    buffer.append("y" * 50)
    assert buffer[-1] == "y" * 10 + " …[line cut]" and buffer.dropped == 3
    assert buffer.tail(2) == ["NCCL error", "y" * 10 + " …[line cut]"]
    assert split_timestamp("2025-01-02T03:04:05.1Z hello") == ("2025-01-02T03:04:05.100000000", "hello")
