"""The `hyperpod` scenario as a user finds it: kubectl, the official client, dcgm-exporter text through the API
server's proxy (parsed with prometheus_client), the MLflow client. One cluster for the module; time only moves
forward, each test advances it to where it needs to look."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from app.demo.sim import DemoCluster, DemoThread
from app.demo.sim.scenario import PREROLL
from tests.plugins.apiserver import Kubectl

RESEARCH, NLP, VISION = "hyperpod-ns-research", "hyperpod-ns-nlp", "hyperpod-ns-vision"


@pytest.fixture(scope="module")
def api(hyperpod_cluster: DemoThread) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(str(hyperpod_cluster.kubeconfig_path))
    yield api_client
    api_client.close()


@pytest.fixture
def kubectl(hyperpod_cluster: DemoThread, demo_kubectl: Callable[[DemoThread], Kubectl]) -> Kubectl:
    return demo_kubectl(hyperpod_cluster)


def advance_to(cluster: DemoThread, elapsed: float) -> None:
    simulation = cluster.cluster.simulation
    assert simulation is not None
    if simulation.elapsed < elapsed:
        cluster.advance(elapsed - simulation.elapsed)


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", "")) for c in obj.get("status", {}).get("conditions", [])}


def workload_of(kubectl: Kubectl, namespace: str, job: str) -> dict[str, Any]:
    return next(w for w in kubectl.json("get", "workloads", "-n", namespace)["items"]
                if w["metadata"]["ownerReferences"][0]["name"] == job)


def metrics(api: client.ApiClient, node: str) -> dict[str, list[Any]]:
    """The dcgm-exporter text of `node`, fetched through pods/proxy, parsed: metric name -> samples."""
    core = client.CoreV1Api(api)
    exporter = next(p for p in core.list_namespaced_pod("gpu-operator", label_selector="app=nvidia-dcgm-exporter").items
                    if p.spec.node_name == node)
    text = core.connect_get_namespaced_pod_proxy_with_path(f"{exporter.metadata.name}:9400", "gpu-operator", "metrics")
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_the_cluster_kubectl_shows(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    assert len(nodes) == 8
    types = sorted(n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in nodes)
    assert types == ["ml.g5.12xlarge"] * 2 + ["ml.p5.48xlarge"] * 6
    mig = [n for n in nodes if n["metadata"]["labels"].get("nvidia.com/mig.strategy") == "mixed"]
    assert sorted(n["metadata"]["labels"]["nvidia.com/mig.config"] for n in mig) == ["all-1g.10gb", "mixed-2-1g.10gb-1-2g.20gb-1-3g.40gb"]
    assert all(n["metadata"]["labels"]["nvidia.com/mig.config.state"] == "success" for n in mig)
    assert {n["status"]["allocatable"].get("nvidia.com/mig-1g.10gb") for n in mig} == {"56", "16"}
    broken = [n for n in nodes if n["metadata"]["labels"]["sagemaker.amazonaws.com/node-health-status"] != "Schedulable"]
    assert [n["metadata"]["labels"]["sagemaker.amazonaws.com/node-health-status"] for n in broken] == ["UnschedulablePendingReplacement"]
    assert broken[0]["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in kubectl("get", "node", broken[0]["metadata"]["name"])
    whole = [n for n in nodes if n["status"]["capacity"].get("nvidia.com/gpu") not in (None, "0")]
    assert sorted(n["status"]["capacity"]["nvidia.com/gpu"] for n in whole) == ["4", "4", "8", "8", "8", "8"]

    priorities = {w["metadata"]["name"]: w["value"] for w in kubectl.json("get", "workloadpriorityclasses")["items"]}
    assert priorities == {"inference-priority": 90, "experimentation-priority": 80, "training-priority": 70, "fine-tuning-priority": 50}
    queues = kubectl.json("get", "clusterqueues")["items"]
    assert sorted(q["metadata"]["name"] for q in queues) == [f"hyperpod-ns-{t}-clusterqueue" for t in ("nlp", "research", "vision")]
    v1beta1 = kubectl.json("get", "clusterqueues.v1beta1.kueue.x-k8s.io")["items"]  # HyperPod task governance's version
    assert {q["spec"]["cohort"] for q in v1beta1} == {"hyperpod-cohort"}
    assert "hyperpod-cohort" in kubectl("get", "clusterqueues")
    quota = next(q for q in queues if q["metadata"]["name"] == "hyperpod-ns-research-clusterqueue")["spec"]["resourceGroups"][0]["flavors"][0]
    gpu = next(r for r in quota["resources"] if r["name"] == "nvidia.com/gpu")
    assert (quota["name"], gpu["nominalQuota"], gpu["borrowingLimit"], gpu["lendingLimit"]) == ("ml.p5.48xlarge", 16, 8, 8)
    local = kubectl.json("get", "localqueue", "hyperpod-ns-research-localqueue", "-n", RESEARCH)
    assert local["spec"]["clusterQueue"] == "hyperpod-ns-research-clusterqueue" and local["status"]["admittedWorkloads"] == 2

    table = kubectl("get", "nodes,pods,workloads,clusterqueues", "-A")
    assert re.search(r"pod/llama3-70b-pretrain-pod-0\s+1/1\s+Running", table)
    assert re.search(r"pod/bert-ner-sweep-\w+\s+0/1\s+Completed", table)
    assert re.search(r"hyperpod-ns-vision-clusterqueue\s+hyperpod-cohort\s+1", table)
    jobs = kubectl("get", "hyperpodpytorchjobs,workspaces", "-A")
    assert re.search(r"llama3-70b-pretrain\s+Running", jobs)
    assert re.search(r"alice-notebook\s+True\s+False\s+False", jobs)
    assert re.search(r"carol-code-editor\s+False\s+False\s+False", jobs)


def test_a_job_too_big_for_its_team_is_told_so(kubectl: Kubectl) -> None:
    workload = workload_of(kubectl, VISION, "sam2-hiera-pretrain")
    assert conditions(workload)["QuotaReserved"] == (
        "False", "Pending",
        "couldn't assign flavors to pod set worker: flavor ml.g5.12xlarge doesn't match node affinity, insufficient quota "
        "for nvidia.com/gpu in flavor ml.p5.48xlarge, request > maximum capacity (24 > 16)",
    )
    assert kubectl.json("get", "pytorchjob", "sam2-hiera-pretrain", "-n", VISION)["status"]["conditions"][-1]["type"] == "Suspended"
    pending = json.loads(kubectl("get", "--raw", "/apis/visibility.kueue.x-k8s.io/v1beta1/clusterqueues/"
                                                 "hyperpod-ns-vision-clusterqueue/pendingworkloads"))["items"]
    assert [(w["metadata"]["name"], w["priority"], w["positionInClusterQueue"]) for w in pending] == [
        (workload["metadata"]["name"], 70, 0)]


def test_the_fine_tune_crashed_once_and_restarted(kubectl: Kubectl) -> None:
    worker = kubectl.json("get", "pod", "mistral-7b-sft-worker-0", "-n", NLP)
    status = worker["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1 and status["lastState"]["terminated"]["reason"] == "Error"
    previous = kubectl("logs", "mistral-7b-sft-worker-0", "-n", NLP, "--previous")
    assert "Watchdog caught collective operation timeout" in previous
    assert "torch.distributed.DistBackendError: NCCL communicator was aborted on rank 1." in previous
    master = kubectl("logs", "mistral-7b-sft-master-0", "-n", NLP)
    assert "Resumed from checkpoint /fsx/checkpoints/mistral-7b-sft/step_000150" in master
    assert conditions(kubectl.json("get", "pytorchjob", "mistral-7b-sft", "-n", NLP))["Restarting"][0] == "False"


def test_training_logs_steps_and_its_mlflow_history_grows(hyperpod_cluster: DemoThread, kubectl: Kubectl) -> None:
    job = kubectl.json("get", "hyperpodpytorchjob", "llama3-70b-pretrain", "-n", RESEARCH)
    simulation = hyperpod_cluster.cluster.simulation
    assert simulation is not None and simulation.world is not None and simulation.world.mlflow is not None
    writer = simulation.world.mlflow
    assert writer.flush(60) and writer.error is None
    tracking = MlflowClient(tracking_uri=hyperpod_cluster.mlflow_uri)
    runs = tracking.search_runs([tracking.get_experiment_by_name(RESEARCH).experiment_id],
                                filter_string="attributes.run_name = 'llama3-70b-pretrain'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["kubernetes.job.uid"] == job["metadata"]["uid"]
    assert run.data.tags["hyperdesk.job"] == f"{RESEARCH}/llama3-70b-pretrain"
    assert run.data.params["model"] == "llama-3-70b" and run.info.status == "RUNNING"
    before = tracking.get_metric_history(run.info.run_id, "loss")
    assert len(before) > 200
    values = [m.value for m in sorted(before, key=lambda m: m.step)]
    assert sum(values[:20]) / 20 > sum(values[-20:]) / 20 + 0.5, "the loss decays"
    assert len(tracking.get_metric_history(run.info.run_id, "eval_loss")) >= 2
    assert set(run.data.metrics) >= {"loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second"}
    last_step = max(m.step for m in before)
    logs = kubectl("logs", "llama3-70b-pretrain-pod-0", "-n", RESEARCH, "--tail", "3")
    assert re.search(rf"step\s+{last_step}/20000 \| loss \d+\.\d{{4}}", logs)

    hyperpod_cluster.advance(60)
    assert writer.flush(60)
    after = tracking.get_metric_history(run.info.run_id, "loss")
    assert max(m.step for m in after) == last_step + 10, "a step every 6 simulated seconds"
    started = datetime.fromtimestamp(min(m.timestamp for m in after) / 1000, UTC)
    assert started < datetime.now(UTC), "history lies in the past"


def test_gpu_metrics_follow_what_the_pods_do(api: client.ApiClient, kubectl: Kubectl) -> None:
    pods = {p["metadata"]["name"]: p for p in kubectl.json("get", "pods", "-A")["items"]}
    trainer = pods["llama3-70b-pretrain-pod-0"]
    samples = metrics(api, trainer["spec"]["nodeName"])
    assert set(samples) >= {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
                            "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_XID_ERRORS",
                            "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"}
    util = [s for s in samples["DCGM_FI_DEV_GPU_UTIL"] if s.labels["pod"] == "llama3-70b-pretrain-pod-0"]
    assert sorted(s.labels["gpu"] for s in util) == [str(i) for i in range(8)]
    assert all(s.value >= 85 for s in util)
    labels = util[0].labels
    assert set(labels) >= {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "pod", "namespace", "container"}
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3" and labels["namespace"] == RESEARCH
    assert labels["Hostname"] == trainer["spec"]["nodeName"] and labels["container"] == "pytorch-job-container"

    notebook = next(p for name, p in pods.items() if name.startswith("workspace-alice-notebook-"))
    idle = metrics(api, notebook["spec"]["nodeName"])
    held = [s for s in idle["DCGM_FI_DEV_GPU_UTIL"] if s.labels["pod"] == notebook["metadata"]["name"]]
    assert len(held) == 1 and held[0].value == 0, "an idle notebook holding a GPU: the waste case"
    memory = [s for s in idle["DCGM_FI_DEV_FB_USED"] if s.labels["pod"] == notebook["metadata"]["name"]]
    assert memory[0].value > 1000, "it still holds GPU memory"

    whisper = next(p for name, p in pods.items() if name.startswith("whisper-distill-trainer-0-"))
    mig = metrics(api, whisper["spec"]["nodeName"])
    slices = [s for s in mig["DCGM_FI_DEV_GPU_UTIL"] if s.labels.get("pod") == whisper["metadata"]["name"]]
    assert len(slices) == 1 and slices[0].labels["GPU_I_PROFILE"] == "3g.40gb" and slices[0].labels["GPU_I_ID"]
    assert slices[0].value == 0, "DCGM_FI_DEV_GPU_UTIL reads 0 on MIG instances"
    active = [s for s in mig["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] if s.labels.get("pod") == whisper["metadata"]["name"]]
    assert active[0].value > 0.8
    assert {s.labels["GPU_I_PROFILE"] for s in mig["DCGM_FI_DEV_FB_FREE"]} == {"1g.10gb", "2g.20gb", "3g.40gb"}

    broken = next(n for n in kubectl.json("get", "nodes")["items"] if n["spec"].get("unschedulable"))
    xid = {s.labels["gpu"]: s.value for s in metrics(api, broken["metadata"]["name"])["DCGM_FI_DEV_XID_ERRORS"]}
    assert xid["3"] == 79 and xid["0"] == 0


def test_inference_endpoints_answer_through_the_service_proxy(api: client.ApiClient, kubectl: Kubectl) -> None:
    jumpstart = kubectl.json("get", "jumpstartmodel", "deepseek-r1-distill", "-n", NLP)["status"]
    assert jumpstart["state"] == "DeploymentComplete" and jumpstart["endpoints"]["sagemaker"]["state"] == "InService"
    assert jumpstart["endpoints"]["sagemaker"]["endpointArn"].endswith(":endpoint/deepseek-r1-distill-ep")
    config_status = kubectl.json("get", "inferenceendpointconfig", "llama3-8b-instruct", "-n", NLP)["status"]
    assert config_status["state"] == "DeploymentComplete" and config_status["deploymentStatus"]["status"]["readyReplicas"] == 1

    path = f"/api/v1/namespaces/{NLP}/services/deepseek-r1-distill-service:8080/proxy/invocations"
    answers = []
    for _ in range(2):
        response = api.call_api("POST", api.configuration.host + path, body={"inputs": "Why do GPUs idle?"},
                                header_params={"Content-Type": "application/json", "Accept": "application/json"})
        assert response.status == 200 and int(response.getheader("X-Demo-Latency-Ms")) > 0
        answers.append(json.loads(response.read()))
    assert answers[0] == answers[1] and answers[0][0]["generated_text"].startswith("[demo completion from deepseek-llm-r1-distill")


def test_after_the_demo_opens_an_endpoint_comes_up_and_an_experiment_preempts_the_fine_tune(
    hyperpod_cluster: DemoThread, kubectl: Kubectl
) -> None:
    advance_to(hyperpod_cluster, PREROLL + 31)  # the InferenceService is created 30 s after the demo opens
    isvc = kubectl.json("get", "inferenceservice", "clip-vit-l", "-n", VISION)
    assert conditions(isvc)["Ready"][0] != "True"
    advance_to(hyperpod_cluster, PREROLL + 60)
    assert conditions(workload_of(kubectl, NLP, "mistral-7b-sft"))["Admitted"][0] == "True"

    advance_to(hyperpod_cluster, PREROLL + 130)  # llama3-8b-dpo arrives at 90 s
    victim = workload_of(kubectl, NLP, "mistral-7b-sft")
    assert conditions(victim)["Preempted"][:2] == ("True", "InClusterQueue")
    assert kubectl.json("get", "pytorchjob", "mistral-7b-sft", "-n", NLP)["status"]["conditions"][-1]["type"] == "Suspended"
    assert conditions(workload_of(kubectl, NLP, "llama3-8b-dpo"))["Admitted"][0] == "True"
    pods = kubectl.json("get", "pods", "-n", NLP, "-l", "HPJob=llama3-8b-dpo")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]

    isvc = kubectl.json("get", "inferenceservice", "clip-vit-l", "-n", VISION)
    assert conditions(isvc)["Ready"][0] == "True" and isvc["status"]["modelStatus"]["states"]["activeModelState"] == "Loaded"
    answer = json.loads(kubectl("get", "--raw", f"/api/v1/namespaces/{VISION}/services/clip-vit-l-predictor:80/proxy/v1/models/clip-vit-l"))
    assert answer["ready"] is True


def _snapshot(cluster: DemoCluster) -> dict[str, Any]:
    """Everything a seed decides, without what the API server assigns (uids, creation times, revisions)."""
    store = cluster.server.store
    volatile = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    result = {}
    for api_version, kind in (("v1", "Node"), ("v1", "Pod"), ("kueue.x-k8s.io/v1beta1", "Workload"),
                              ("kubeflow.org/v1", "PyTorchJob"), ("workspace.jupyter.org/v1alpha1", "Workspace")):
        for obj in store.list(api_version, kind):
            meta = obj["metadata"]
            for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                meta.pop(field, None)
            result[f"{kind}/{meta.get('namespace', '')}/{meta['name']}"] = volatile.sub("UID", json.dumps(obj, sort_keys=True))
    return result


async def test_a_seed_gives_the_same_cluster_and_curves() -> None:
    epoch = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
    snapshots, logs = [], []
    for seed in (11, 11, 12):
        async with DemoCluster("hyperpod", seed=seed, speed=0, epoch=epoch, preroll=900, mlflow=False) as cluster:
            snapshots.append(_snapshot(cluster))
            url = f"{cluster.url}/api/v1/namespaces/{RESEARCH}/pods/llama3-70b-pretrain-pod-0/log"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                logs.append(await response.text())
    assert snapshots[0] == snapshots[1]
    assert logs[0] == logs[1] and "step    100/20000" in logs[0]
    assert snapshots[0] != snapshots[2] and logs[0] != logs[2]
    assert set(snapshots[0]) != set(snapshots[2]), "node names and pod suffixes come from the seed"
