"""Built-in job templates: what the submit form renders, checked against the upstream schemas.

PyTorchJob and the Kueue objects hyperdesk writes are validated by the local API server once the upstream CRDs
(shared/reference/crds) are applied to it, with strict field validation as kubectl uses. batch/v1 Job and the pod
templates are checked against the official client's OpenAPI models; HyperPodPyTorchJob, which has no published CRD,
against the shape shared/reference/cluster-apis.md documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from app.cluster import actions
from app.cluster.connection import ApiError, ClusterConnection
from app.config import SAFE_LOADER
from app.demo.apiserver import LocalApiServer
from app.model import templates
from app.model.templates import render, to_yaml, validate_params
from tests.reference import REFERENCE

CRDS = REFERENCE / "crds"
BASE = {"name": "llama-sft", "image": "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.5.1",
        "queue": "team-a-queue", "priority": "training-priority", "env": "NCCL_DEBUG=INFO\nMAX_STEPS=40",
        "volume": "fsx-claim:/fsx", "cpu": "16", "memory": "64Gi"}


def round_trip(model: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` read into the official client's model and written back: fields the model lacks disappear, values of
    the wrong type change."""
    api = client.ApiClient()
    return api.sanitize_for_serialization(api._ApiClient__deserialize(data, model))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("template", "hyperpod", "kind"), [
    ("fine-tune", False, "Job"), ("fine-tune", True, "Job"),
    ("ddp", True, "HyperPodPyTorchJob"), ("ddp", False, "PyTorchJob"),
])
def test_each_template_renders_its_kind_with_the_queue_labels_and_reads_back(template: str, hyperpod: bool, kind: str) -> None:
    manifest = render(template, BASE, serves_hyperpod=hyperpod)
    assert manifest["kind"] == kind
    assert manifest["metadata"] == {"name": "llama-sft", "labels": {"kueue.x-k8s.io/queue-name": "team-a-queue",
                                                                     "kueue.x-k8s.io/priority-class": "training-priority"}}
    text = to_yaml(manifest)
    assert actions.parse_manifest(text, "form") == [manifest], "the YAML the form shows is what gets submitted"
    assert "fsx-claim" in text and "NCCL_DEBUG" in text


def test_batch_job_and_pod_templates_match_the_kubernetes_openapi_models() -> None:
    job = render("fine-tune", {**BASE, "mig": "3g.40gb", "mig_count": "2"}, serves_hyperpod=False)
    assert round_trip("V1Job", job) == job
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"nvidia.com/mig-3g.40gb": "2", "cpu": "16", "memory": "64Gi"},
                                      "limits": {"nvidia.com/mig-3g.40gb": "2"}}
    assert container["command"] == ["python", "/workspace/finetune.py"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    hp = render("ddp", {**BASE, "nodes": 4, "volume": "/mnt/data:/data:ro"}, serves_hyperpod=True)
    pod_template = hp["spec"]["replicaSpecs"][0]["template"]
    assert round_trip("V1PodTemplateSpec", pod_template) == pod_template
    assert pod_template["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/mnt/data", "type": "Directory"}}]
    assert pod_template["spec"]["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]


def test_hyperpod_job_has_the_shape_cluster_apis_documents() -> None:
    """sagemaker.amazonaws.com/v1 HyperPodPyTorchJob: spec nprocPerNode, replicaSpecs[]{name, replicas, maxReplicas,
    spares, template}, runPolicy{jobMaxRetryCount, restartPolicy, suspend, ttlSecondsAfterFinished, ...}; the
    container commonly `pytorch-job-container` (shared/reference/cluster-apis.md)."""
    documented = (REFERENCE / "cluster-apis.md").read_text()
    assert "`sagemaker.amazonaws.com/v1` `HyperPodPyTorchJob`" in documented
    job = render("ddp", {**BASE, "nodes": 3, "gpus": 8, "max_retries": 2}, serves_hyperpod=True)
    assert job["apiVersion"] == "sagemaker.amazonaws.com/v1"
    assert set(job["spec"]) <= {"nprocPerNode", "replicaSpecs", "runPolicy", "elasticPolicy"}
    assert job["spec"]["nprocPerNode"] == "8"
    [replicas] = job["spec"]["replicaSpecs"]
    assert set(replicas) <= {"name", "replicas", "maxReplicas", "spares", "template"}
    assert replicas["replicas"] == 3 and replicas["name"] == "pod"
    assert set(job["spec"]["runPolicy"]) <= {"jobMaxRetryCount", "restartPolicy", "suspend", "ttlSecondsAfterFinished",
                                             "logMonitoringConfiguration"}
    assert job["spec"]["runPolicy"] == {"jobMaxRetryCount": 2}
    for field in ("nprocPerNode", "replicaSpecs", "runPolicy", "jobMaxRetryCount", "pytorch-job-container"):
        assert field in documented
    assert replicas["template"]["spec"]["containers"][0]["name"] == "pytorch-job-container"
    assert replicas["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}


def test_ddp_as_pytorchjob_has_a_master_and_workers_on_the_pytorch_container() -> None:
    job = render("ddp", {**BASE, "nodes": 3, "gpus": 4}, serves_hyperpod=False)
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in specs.items()} == {"Master": 1, "Worker": 2}
    assert all(v["template"]["spec"]["containers"][0]["name"] == "pytorch" for v in specs.values())
    assert job["spec"]["nprocPerNode"] == "4"
    single = render("ddp", {**BASE, "nodes": 1}, serves_hyperpod=False)
    assert list(single["spec"]["pytorchReplicaSpecs"]) == ["Master"]


def test_validation_names_every_field_that_is_wrong() -> None:
    problems = validate_params("fine-tune", {"name": "Llama_SFT", "image": "pytorch: latest", "nodes": 2, "gpus": 2,
                                             "mig": "9g.99gb", "env": "1BAD=x", "volume": "claim:relative",
                                             "queue": "other-queue", "priority": "urgent", "cpu": "lots"},
                               queues=["team-a-queue"], priorities=["training-priority", "fine-tuning-priority"])
    fields = [p.split(":", 1)[0] for p in problems]
    assert fields == ["name", "image", "nodes", "mig", "gpus", "cpu", "queue", "priority", "env", "volume"]
    assert "queue: other-queue is not offered here (team-a-queue)" in problems
    assert validate_params("ddp", {}) == ["name: required", "image: required"]
    assert validate_params("ddp", {**BASE, "command": "torchrun 'unbalanced"}) == ["command: unbalanced quotes"]
    assert validate_params("ddp", {**BASE, "nodes": "0"}) == ["nodes: a whole number, at least 1"]
    assert validate_params("ddp", BASE, queues=["team-a-queue"], priorities=["training-priority"]) == []
    assert validate_params("notebook", BASE) == ["unknown template 'notebook' (one of fine-tune, ddp)"]
    with pytest.raises(templates.TemplateError) as raised:
        render("ddp", {"name": "x"}, serves_hyperpod=True)
    assert raised.value.problems == ["image: required"]


def test_fields_describe_every_parameter_the_form_offers() -> None:
    for name in templates.TEMPLATES:
        offered = {f.name for f in templates.FIELDS[name]}
        assert {"name", "image", "command", "gpus", "mig", "queue", "priority", "env", "volume"} <= offered
        assert render(name, {**templates.defaults(name), "name": "x", "image": "i"}, serves_hyperpod=True)
    assert "nodes" in {f.name for f in templates.FIELDS["ddp"]}


# --- against the upstream CRDs ------------------------------------------------------------------------------------

@pytest.fixture
async def crd_server() -> AsyncIterator[tuple[LocalApiServer, ClusterConnection]]:
    async with LocalApiServer() as server:
        connection = ClusterConnection([server.kubeconfig_path], None)
        for name in ("kubeflow.org_pytorchjobs.yaml", "kueue.x-k8s.io_workloads.yaml",
                     "kueue.x-k8s.io_workloadpriorityclasses.yaml", "kueue.x-k8s.io_localqueues.yaml"):
            crd = yaml.load((CRDS / name).read_text(), Loader=SAFE_LOADER)
            await connection.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
        try:
            yield server, connection
        finally:
            await connection.close()


async def test_rendered_pytorchjob_and_kueue_writes_validate_against_the_upstream_crds(crd_server) -> None:
    server, conn = crd_server
    kueue = "/apis/kueue.x-k8s.io/v1beta2"
    await conn.request("POST", f"{kueue}/workloadpriorityclasses",
                       body={"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
                             "metadata": {"name": "training-priority"}, "value": 70})
    await conn.request("POST", f"{kueue}/workloadpriorityclasses",
                       body={"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
                             "metadata": {"name": "experimentation-priority"}, "value": 80})
    await conn.request("POST", f"{kueue}/namespaces/default/localqueues",
                       body={"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                             "metadata": {"name": "team-a-queue", "namespace": "default"},
                             "spec": {"clusterQueue": "cq"}})
    manifest = render("ddp", {**BASE, "nodes": 2, "gpus": 8}, serves_hyperpod=False)
    created = await actions.submit(conn, [manifest], readonly=False)
    assert created == ["PyTorchJob/default/llama-sft"]
    stored = await conn.request("GET", "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs/llama-sft")
    assert stored["spec"]["pytorchReplicaSpecs"] == manifest["spec"]["pytorchReplicaSpecs"], "nothing pruned"
    assert stored["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 3, "suspend": False}, \
        "the CRD's default applied: its schema is in force"

    # The schema is in force: a field PyTorchJob does not declare is refused (strict, as kubectl validates).
    broken = render("ddp", {**BASE, "name": "typo"}, serves_hyperpod=False)
    broken["spec"]["pytorchReplicaSpec"] = broken["spec"].pop("pytorchReplicaSpecs")
    with pytest.raises(actions.ActionError) as refused:
        await actions.submit(conn, [broken], readonly=False)
    assert "unknown field" in str(refused.value) and "nothing was created" in str(refused.value)

    # What Kueue would create for it, then hyperdesk's writes to it: each validated against the Workload CRD.
    await conn.request("POST", f"{kueue}/namespaces/default/workloads", body={
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "pytorchjob-llama-sft-1a2b3", "namespace": "default",
                     "labels": {"kueue.x-k8s.io/job-uid": stored["metadata"]["uid"]},
                     "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "llama-sft",
                                          "uid": stored["metadata"]["uid"], "controller": True}]},
        "spec": {"queueName": "team-a-queue", "priority": 70,
                 "priorityClassRef": {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "training-priority"},
                 "podSets": [{"name": "master", "count": 1, "template": manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]},
                             {"name": "worker", "count": 1, "template": manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]}]},
    })
    assert await actions.set_priority(conn, "pytorchjobs", "default", "llama-sft", "experimentation-priority",
                                      readonly=False) == 80
    changed = await actions.set_suspended(conn, "pytorchjobs", "default", "llama-sft", True, readonly=False)
    assert changed == "Workload default/pytorchjob-llama-sft-1a2b3 spec.active=false"
    workload = await conn.request("GET", f"{kueue}/namespaces/default/workloads/pytorchjob-llama-sft-1a2b3")
    assert workload["spec"]["priority"] == 80 and workload["spec"]["active"] is False
    assert workload["spec"]["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass",
                                                    "name": "experimentation-priority"}
    job = await conn.request("GET", "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs/llama-sft")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "experimentation-priority"

    # And the server still refuses what the CRD forbids, so the checks above were real.
    with pytest.raises(ApiError) as invalid:
        await conn.request("PATCH", f"{kueue}/namespaces/default/workloads/pytorchjob-llama-sft-1a2b3",
                           body={"spec": {"priorityClassRef": {"group": "example.com", "kind": "X", "name": "y"}}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert invalid.value.status == 422
