"""The simulator's controllers, seen through the API as a user sees them: the `bare` scenario, kubectl and the
official client. Time is paused; each test submits objects and moves simulated time with `advance`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import portforward

from app.demo.sim import DemoThread
from tests.plugins.apiserver import Kubectl

NLP = "hyperpod-ns-nlp"
P5 = "ml.p5.48xlarge"
VISIBILITY = "/apis/visibility.kueue.x-k8s.io/v1beta1"


@pytest.fixture
def api(bare_cluster: DemoThread) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(str(bare_cluster.kubeconfig_path))
    yield api_client
    api_client.close()


def batch_job(name: str, priority: str, gpus: int, *, pods: int = 1, command: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NLP, "labels": {"kueue.x-k8s.io/queue-name": f"{NLP}-localqueue",
                                                                  "kueue.x-k8s.io/priority-class": priority}},
        "spec": {
            "parallelism": pods, "completions": pods,
            "template": {"spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"node.kubernetes.io/instance-type": P5},
                "containers": [{"name": "main", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                "command": command or ["python", "train.py", "--max-steps", "1000"],
                                "resources": {"requests": {"nvidia.com/gpu": gpus, "cpu": "8", "memory": "64Gi"},
                                              "limits": {"nvidia.com/gpu": gpus}}}],
            }},
        },
    }


def create(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(objects))


def workload_of(kubectl: Kubectl, job: str) -> dict[str, Any]:
    items = kubectl.json("get", "workloads", "-n", NLP)["items"]
    owned = [w for w in items if w["metadata"]["ownerReferences"][0]["name"] == job]
    assert len(owned) == 1, f"one Workload owned by {job}: {[w['metadata']['name'] for w in items]}"
    return owned[0]


def raw(kubectl: Kubectl, path: str) -> Any:
    return json.loads(kubectl("get", "--raw", path))


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", "")) for c in obj.get("status", {}).get("conditions", [])}


def pods_of(kubectl: Kubectl, selector: str) -> list[dict[str, Any]]:
    return kubectl.json("get", "pods", "-n", NLP, "-l", selector)["items"]


def test_a_queued_job_gets_its_workload_then_pods_that_run_to_completion(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    create(kubectl, batch_job("sleeper", "training-priority", 2, pods=2, command=["/bin/sh", "-c", "sleep 30"]))
    bare_cluster.advance(0)
    job = kubectl.json("get", "job", "sleeper", "-n", NLP)
    workload = workload_of(kubectl, "sleeper")
    assert workload["metadata"]["labels"]["kueue.x-k8s.io/job-uid"] == job["metadata"]["uid"]
    assert workload["metadata"]["ownerReferences"][0]["controller"] is True
    assert workload["spec"]["podSets"][0]["count"] == 2 and workload["spec"]["priority"] == 70
    assert workload["status"]["admission"]["clusterQueue"] == f"{NLP}-clusterqueue"
    assert workload["status"]["admission"]["podSetAssignments"][0]["flavors"]["nvidia.com/gpu"] == P5
    assert conditions(workload)["Admitted"][:2] == ("True", "Admitted")
    assert job["spec"]["suspend"] is False, "Kueue unsuspends an admitted job"
    pods = pods_of(kubectl, "batch.kubernetes.io/job-name=sleeper")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Pending"}
    assert all(p["spec"]["nodeName"] and p["spec"]["nodeSelector"]["node.kubernetes.io/instance-type"] == P5 for p in pods)
    assert "ContainerCreating" in kubectl("get", "pods", "-n", NLP)

    bare_cluster.advance(20)
    assert {p["status"]["phase"] for p in pods_of(kubectl, "batch.kubernetes.io/job-name=sleeper")} == {"Running"}
    queue = kubectl.json("get", "clusterqueue", f"{NLP}-clusterqueue")["status"]
    p5 = next(f for f in queue["flavorsUsage"] if f["name"] == P5)
    assert {"name": "nvidia.com/gpu", "total": "4", "borrowed": "0"} in p5["resources"]
    assert queue["admittedWorkloads"] == 1

    bare_cluster.advance(30)
    assert {p["status"]["phase"] for p in pods_of(kubectl, "batch.kubernetes.io/job-name=sleeper")} == {"Succeeded"}
    assert "Complete" in kubectl("get", "job", "sleeper", "-n", NLP)
    assert conditions(workload_of(kubectl, "sleeper"))["Finished"][:2] == ("True", "Succeeded")
    assert kubectl.json("get", "clusterqueue", f"{NLP}-clusterqueue")["status"]["admittedWorkloads"] == 0

    kubectl("delete", "job", "sleeper", "-n", NLP)
    bare_cluster.advance(0)
    assert kubectl.json("get", "workloads", "-n", NLP)["items"] == [], "the garbage collector removes owned objects"
    assert pods_of(kubectl, "batch.kubernetes.io/job-name=sleeper") == []


def test_admission_follows_priority_then_submission_order(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    queue = f"{NLP}-clusterqueue"
    kubectl("patch", "clusterqueue", queue, "--type=merge", "-p", '{"spec": {"stopPolicy": "Hold"}}')
    create(kubectl, batch_job("a-fine-tune", "fine-tuning-priority", 8), batch_job("b-fine-tune", "fine-tuning-priority", 8),
           batch_job("c-training", "training-priority", 8), batch_job("d-experiment", "experimentation-priority", 8))
    bare_cluster.advance(0)
    held = conditions(workload_of(kubectl, "a-fine-tune"))["QuotaReserved"]
    assert held == ("False", "Inadmissible", f"ClusterQueue {queue} is inactive")
    pending = raw(kubectl, f"{VISIBILITY}/clusterqueues/{queue}/pendingworkloads")["items"]
    assert [(w["metadata"]["ownerReferences"][0]["name"], w["positionInClusterQueue"]) for w in pending] == [
        ("d-experiment", 0), ("c-training", 1), ("a-fine-tune", 2), ("b-fine-tune", 3)]

    kubectl("patch", "clusterqueue", queue, "--type=merge", "-p", '{"spec": {"stopPolicy": "None"}}')
    bare_cluster.advance(0)
    admitted = {j: conditions(workload_of(kubectl, j)).get("Admitted", ("",))[0] == "True"
                for j in ("a-fine-tune", "b-fine-tune", "c-training", "d-experiment")}
    # nlp may use 8 GPUs of its own and borrow 8 from the cohort: the two highest priorities get them.
    assert admitted == {"a-fine-tune": False, "b-fine-tune": False, "c-training": True, "d-experiment": True}
    status = kubectl.json("get", "clusterqueue", queue)["status"]
    p5 = next(f for f in status["flavorsReservation"] if f["name"] == P5)
    assert {"name": "nvidia.com/gpu", "total": "16", "borrowed": "8"} in p5["resources"]
    assert status["pendingWorkloads"] == 2
    waiting = conditions(workload_of(kubectl, "a-fine-tune"))["QuotaReserved"]
    assert waiting == ("False", "Pending", "couldn't assign flavors to pod set main: flavor ml.g5.12xlarge doesn't match "
                                           f"node affinity, insufficient unused quota for nvidia.com/gpu in flavor {P5}, 8 more needed")
    pending = raw(kubectl, f"{VISIBILITY}/namespaces/{NLP}/localqueues/{NLP}-localqueue/pendingworkloads")["items"]
    assert [(w["metadata"]["ownerReferences"][0]["name"], w["positionInLocalQueue"]) for w in pending] == [
        ("a-fine-tune", 0), ("b-fine-tune", 1)]
    assert kubectl.json("get", "localqueue", f"{NLP}-localqueue", "-n", NLP)["status"]["pendingWorkloads"] == 2


def test_a_higher_priority_job_preempts_a_lower_one_in_its_queue(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    create(kubectl, batch_job("tune-1", "fine-tuning-priority", 8))
    bare_cluster.advance(5)  # admitted now, the other one five simulated seconds later
    create(kubectl, batch_job("tune-2", "fine-tuning-priority", 8))
    bare_cluster.advance(30)
    assert all(p["status"]["phase"] == "Running" for p in pods_of(kubectl, "batch.kubernetes.io/job-name in (tune-1,tune-2)"))

    create(kubectl, batch_job("urgent-eval", "experimentation-priority", 8))
    bare_cluster.advance(0)
    preemptor = workload_of(kubectl, "urgent-eval")
    victim = workload_of(kubectl, "tune-2")  # the most recently admitted of the lower priority
    evicted, preempted = conditions(victim)["Evicted"], conditions(victim)["Preempted"]
    assert evicted[:2] == ("True", "Preempted") and preempted[:2] == ("True", "InClusterQueue")
    assert preempted[2].startswith(f"Preempted to accommodate a workload (UID: {preemptor['metadata']['uid']}, JobUID: "
                                   f"{preemptor['metadata']['labels']['kueue.x-k8s.io/job-uid']}) due to prioritization "
                                   "in the ClusterQueue")
    assert "admission" not in victim["status"], "quota released once the victim's pods are gone"
    assert conditions(victim)["QuotaReserved"][:2] == ("False", "Pending")
    assert conditions(victim)["Requeued"][0] == "True"
    assert victim["status"]["schedulingStats"]["evictions"] == [{"reason": "Preempted", "underlyingCause": "InClusterQueue", "count": 1}]
    assert kubectl.json("get", "job", "tune-2", "-n", NLP)["spec"]["suspend"] is True
    assert pods_of(kubectl, "batch.kubernetes.io/job-name=tune-2") == []
    assert conditions(workload_of(kubectl, "tune-1"))["Admitted"][0] == "True"
    assert conditions(preemptor)["Admitted"][0] == "True"
    events = kubectl("get", "events", "-n", NLP, "--field-selector", f"involvedObject.name={victim['metadata']['name']}")
    assert "Preempted" in events

    bare_cluster.advance(30)
    assert [p["status"]["phase"] for p in pods_of(kubectl, "batch.kubernetes.io/job-name=urgent-eval")] == ["Running"]
    pending = raw(kubectl, f"{VISIBILITY}/clusterqueues/{NLP}-clusterqueue/pendingworkloads")["items"]
    assert [w["metadata"]["name"] for w in pending] == [victim["metadata"]["name"]]


def test_a_pytorchjob_trains_writing_step_logs_and_completes(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [{
        "name": "pytorch", "image": "pytorch/pytorch:2.5.1", "command": ["torchrun", "train.py", "--max-steps", "40"],
        "resources": {"requests": {"nvidia.com/mig-1g.10gb": 1}, "limits": {"nvidia.com/mig-1g.10gb": 1}}}]}}}
    create(kubectl, {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                     "metadata": {"name": "tiny", "namespace": NLP, "labels": {"kueue.x-k8s.io/queue-name": f"{NLP}-localqueue"}},
                     "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}})
    bare_cluster.advance(0)
    assert kubectl.json("get", "pytorchjob", "tiny", "-n", NLP)["spec"]["runPolicy"]["suspend"] is False
    names = sorted(p["metadata"]["name"] for p in pods_of(kubectl, "training.kubeflow.org/job-name=tiny"))
    assert names == ["tiny-master-0", "tiny-worker-0"]
    master = kubectl.json("get", "pod", "tiny-master-0", "-n", NLP)
    assert master["metadata"]["labels"]["training.kubeflow.org/replica-type"] == "master"
    assert master["spec"]["nodeSelector"]["nvidia.com/mig.strategy"] == "mixed", "Kueue put the MIG flavor's node labels"

    bare_cluster.advance(60)
    state = conditions(kubectl.json("get", "pytorchjob", "tiny", "-n", NLP))
    assert state["Running"][:2] == ("True", "PyTorchJobRunning")
    logs = kubectl("logs", "tiny-master-0", "-n", NLP)
    assert "torch.distributed initialized: backend=nccl world_size=2 rank=0" in logs
    steps = [line for line in logs.splitlines() if line.startswith("step ")]
    assert steps and steps[0].startswith("step      1/40 | loss ")

    bare_cluster.advance(60)
    job = kubectl.json("get", "pytorchjob", "tiny", "-n", NLP)
    assert job["status"]["conditions"][-1]["type"] == "Succeeded"
    assert job["status"]["replicaStatuses"]["Master"].get("succeeded") == 1
    assert "Training complete: 40 steps" in kubectl("logs", "tiny-master-0", "-n", NLP)
    assert kubectl("get", "pytorchjob", "tiny", "-n", NLP, "--no-headers").split()[1] == "Succeeded"


def test_a_workspace_starts_serves_its_jupyterlab_and_stops(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl],
                                                            api: client.ApiClient) -> None:
    kubectl = demo_kubectl(bare_cluster)
    create(kubectl, {"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
                     "metadata": {"name": "lab", "namespace": NLP},
                     "spec": {"displayName": "My lab", "desiredStatus": "Running",
                              "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}})
    bare_cluster.advance(0)
    assert conditions(kubectl.json("get", "workspace", "lab", "-n", NLP))["Progressing"][0] == "True"
    bare_cluster.advance(40)
    workspace = kubectl.json("get", "workspace", "lab", "-n", NLP)
    assert conditions(workspace)["Available"][:2] == ("True", "ResourcesReady")
    assert workspace["status"]["serviceName"] == "workspace-lab-service"
    assert workspace["status"]["deploymentName"] == "workspace-lab"
    pods = pods_of(kubectl, "workspace.jupyter.org/workspace-name=lab")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
    assert pods[0]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8888

    page = kubectl("get", "--raw", f"/api/v1/namespaces/{NLP}/services/workspace-lab-service:8888/proxy/lab")
    assert "hyperdesk demo JupyterLab" in page and f"{NLP}/lab" in page
    core = client.CoreV1Api(api)
    forward = portforward(core.connect_get_namespaced_pod_portforward, pods[0]["metadata"]["name"], NLP, ports="8888")
    sock = forward.socket(8888)
    sock.setblocking(True)
    sock.sendall(b"GET /lab HTTP/1.1\r\nHost: localhost:8888\r\nConnection: close\r\n\r\n")
    received = b""
    deadline = time.monotonic() + 10
    while b"</html>" not in received and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    sock.close()
    forward.close()
    assert received.startswith(b"HTTP/1.1 200 OK") and b"hyperdesk demo JupyterLab" in received

    kubectl("patch", "workspace", "lab", "-n", NLP, "--type=merge", "-p", '{"spec": {"desiredStatus": "Stopped"}}')
    bare_cluster.advance(1)
    assert pods_of(kubectl, "workspace.jupyter.org/workspace-name=lab") == []
    state = conditions(kubectl.json("get", "workspace", "lab", "-n", NLP))
    assert state["Stopped"][:2] == ("True", "DesiredStateStopped") and state["Available"][0] == "False"
    assert kubectl.json("get", "deployment", "workspace-lab", "-n", NLP)["spec"]["replicas"] == 0
    refused = kubectl.run("get", "--raw", f"/api/v1/namespaces/{NLP}/services/workspace-lab-service:8888/proxy/", check=False)
    assert refused.returncode != 0 and "connection refused" in refused.stderr


def test_a_pod_that_fits_nowhere_says_why(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    create(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greedy", "namespace": NLP},
                     "spec": {"containers": [{"name": "main", "image": "busybox", "resources": {
                         "requests": {"nvidia.com/gpu": 16}, "limits": {"nvidia.com/gpu": 16}}}]}})
    bare_cluster.advance(1)
    scheduled = conditions(kubectl.json("get", "pod", "greedy", "-n", NLP))["PodScheduled"]
    assert scheduled[:2] == ("False", "Unschedulable")
    assert scheduled[2].startswith("0/8 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }, ")
    assert "Insufficient nvidia.com/gpu" in scheduled[2]
    assert "FailedScheduling" in kubectl("get", "events", "-n", NLP, "--field-selector", "involvedObject.name=greedy")


def test_time_runs_by_itself_at_the_requested_speed(demo_cluster: Callable[..., DemoThread],
                                                    demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    cluster = demo_cluster(scenario="bare", seed=5, speed=60, mlflow=False)
    kubectl = demo_kubectl(cluster)
    create(kubectl, batch_job("quick", "training-priority", 1, command=["sleep", "5"]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "Complete" in kubectl("get", "job", "quick", "-n", NLP, "--no-headers"):
            break
        time.sleep(0.1)
    assert "Complete" in kubectl("get", "job", "quick", "-n", NLP, "--no-headers")


def test_a_job_for_a_queue_that_does_not_exist_is_inadmissible(bare_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> None:
    kubectl = demo_kubectl(bare_cluster)
    job = batch_job("lost", "training-priority", 1)
    job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "no-such-queue"
    create(kubectl, job)
    bare_cluster.advance(5)
    assert conditions(workload_of(kubectl, "lost"))["QuotaReserved"] == ("False", "Inadmissible", "LocalQueue no-such-queue doesn't exist")
    assert kubectl.json("get", "job", "lost", "-n", NLP)["spec"]["suspend"] is True
    assert pods_of(kubectl, "batch.kubernetes.io/job-name=lost") == []
