"""kubectl as a second client: what a user types against a real cluster works against the embedded server."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

import pytest
import yaml

from app.demo.apiserver import ServerThread
from tests.plugins.apiserver import Kubectl
from tests.reference import REFERENCE

pytestmark = pytest.mark.kubectl

CRDS = REFERENCE / "crds"
# Too big for client-side apply's last-applied annotation (the real server rejects it too): needs --server-side.
SERVER_SIDE_ONLY = "kueue.x-k8s.io_workloads.yaml"

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  labels: {app: train}
spec:
  containers:
  - name: main
    image: pytorch/pytorch:2.3.0
"""


def test_object_lifecycle_and_output_formats(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", "-", stdin=POD).strip() == "pod/trainer created"
    assert kubectl("apply", "-f", "-", stdin=POD).strip() == "pod/trainer unchanged"
    table = kubectl("get", "pods").splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["trainer", "0/1", "Pending", "0"]
    wide = kubectl("get", "pods", "-o", "wide").splitlines()[0]
    assert wide.split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert kubectl("get", "pods", "-o", "name").strip() == "pod/trainer"
    as_json = kubectl.json("get", "pod", "trainer")
    assert (as_json["kind"], as_json["metadata"]["labels"]) == ("Pod", {"app": "train"})
    as_yaml = yaml.safe_load(kubectl("get", "pod", "trainer", "-o", "yaml"))
    assert as_yaml["metadata"]["uid"] == as_json["metadata"]["uid"]

    assert kubectl("label", "pod", "trainer", "team=vision").strip() == "pod/trainer labeled"
    assert "app=train,team=vision" in kubectl("get", "pods", "--show-labels")
    assert kubectl("get", "pods", "-l", "team=vision", "-o", "name").strip() == "pod/trainer"
    assert kubectl("get", "pods", "-l", "team!=vision", "-o", "name").strip() == ""
    kubectl("annotate", "pod", "trainer", "note=hello")
    kubectl("patch", "pod", "trainer", "--type", "merge", "-p", '{"metadata":{"labels":{"tier":"gpu"}}}')
    kubectl("patch", "pod", "trainer", "--type", "json", "-p", '[{"op":"remove","path":"/metadata/labels/app"}]')
    kubectl(
        "patch", "pod", "trainer", "-p", '{"spec":{"containers":[{"name":"main","image":"pytorch/pytorch:2.4.0"}]}}'
    )
    patched = kubectl.json("get", "pod", "trainer")
    assert patched["metadata"]["labels"] == {"team": "vision", "tier": "gpu"}
    assert patched["metadata"]["annotations"]["note"] == "hello"
    assert patched["spec"]["containers"][0]["image"] == "pytorch/pytorch:2.4.0"
    assert kubectl("get", "pods", "--field-selector", "status.phase=Pending", "-o", "name").strip() == "pod/trainer"

    assert kubectl("delete", "pod", "trainer").strip() == 'pod "trainer" deleted'
    result = kubectl.run("get", "pods")
    assert "No resources found in default namespace." in result.stderr


def test_imperative_create_commands(kubectl: Kubectl) -> None:
    """`kubectl create <kind>` sends protobuf bodies; the server reads them."""
    assert kubectl("create", "namespace", "team-a").strip() == "namespace/team-a created"
    kubectl("create", "configmap", "settings", "--from-literal=lr=0.01", "-n", "team-a")
    kubectl("create", "secret", "generic", "token", "--from-literal=key=s3cret", "-n", "team-a")
    kubectl("create", "serviceaccount", "runner", "-n", "team-a")
    secret = kubectl.json("get", "secret", "token", "-n", "team-a")
    assert (secret["type"], secret["data"]) == ("Opaque", {"key": "czNjcmV0"})
    assert kubectl.json("get", "configmap", "settings", "-n", "team-a")["data"] == {"lr": "0.01"}
    lines = kubectl("get", "cm,secret,sa", "-n", "team-a").split()
    assert "configmap/settings" in lines and "secret/token" in lines and "serviceaccount/runner" in lines
    namespace = kubectl.json("get", "namespace", "team-a")
    assert namespace["status"]["phase"] == "Active"
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
    assert kubectl("delete", "namespace", "team-a").strip() == 'namespace "team-a" deleted'
    assert "team-a" not in kubectl("get", "namespaces", "-o", "name")


def test_upstream_crds_and_samples_apply(kubectl: Kubectl, tmp_path: Path) -> None:
    client_side = tmp_path / "crds"
    client_side.mkdir()
    for crd in CRDS.glob("*.yaml"):
        if crd.name != SERVER_SIDE_ONLY:
            (client_side / crd.name).write_text(crd.read_text())
    created = kubectl("apply", "-f", str(client_side)).splitlines()
    assert len(created) == 10 and all(line.endswith(" created") for line in created)
    rejected = kubectl.run("apply", "-f", str(CRDS / SERVER_SIDE_ONLY), check=False)
    assert rejected.returncode != 0
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in rejected.stderr
    applied = kubectl("apply", "--server-side", "-f", str(CRDS / SERVER_SIDE_ONLY)).strip()
    assert applied == "customresourcedefinition.apiextensions.k8s.io/workloads.kueue.x-k8s.io serverside-applied"
    crds = kubectl("get", "crd", "-o", "name").split()
    assert len(crds) == 11 and "customresourcedefinition.apiextensions.k8s.io/workloads.kueue.x-k8s.io" in crds
    established = kubectl.json("get", "crd", "workloads.kueue.x-k8s.io")["status"]["conditions"]
    assert {c["type"]: c["status"] for c in established} == {"NamesAccepted": "True", "Established": "True"}

    for namespace in ("ns-team-a", "jupyter-k8s-shared"):
        kubectl("create", "namespace", namespace)
    drifted = REFERENCE / "samples" / "endpoints" / "v1_deepseek_model15b.yaml"
    for folder in ("queue", "spaces", "endpoints"):
        for sample in sorted((REFERENCE / "samples" / folder).glob("*.yaml")):
            verb = "create" if "generateName" in sample.read_text() else "apply"
            if sample != drifted:
                kubectl(verb, "-f", str(sample))
    # This upstream sample sets fields its CRD does not declare: strict validation rejects it, as a real cluster
    # would; without validation the server prunes them.
    strict = kubectl.run("apply", "-f", str(drifted), check=False)
    assert 'strict decoding error: unknown field "spec.server.maxAutoScaleReplicas"' in strict.stderr
    kubectl("apply", "--validate=false", "-f", str(drifted))
    pruned = kubectl.json("get", "jumpstartmodel", "deepseek-sample", "-n", "ns-team-a")["spec"]["server"]
    assert pruned == {"instanceType": "ml.g5.8xlarge"}
    kueue = kubectl("get", "resourceflavors,clusterqueues,localqueues", "-A", "-o", "name").split()
    assert "clusterqueue.kueue.x-k8s.io/cluster-queue" in kueue and "localqueue.kueue.x-k8s.io/user-queue" in kueue
    workspaces = kubectl("get", "workspaces").splitlines()
    assert workspaces[0].split() == ["NAME", "AVAILABLE", "PROGRESSING", "DEGRADED", "AGE"]
    assert len(workspaces) == 4
    template = kubectl.json("get", "workspacetemplate", "production-notebook-template", "-n", "jupyter-k8s-shared")
    assert template["spec"]["defaultImage"] == "jk8s-application-jupyter-uv:latest"
    assert kubectl("get", "jumpstartmodels,inferenceendpointconfigs", "-n", "ns-team-a", "-o", "name").split() == [
        "jumpstartmodel.inference.sagemaker.aws.amazon.com/deepseek-sample",
        "inferenceendpointconfig.inference.sagemaker.aws.amazon.com/testing-custom-deployment-inf",
    ]
    jobs = kubectl("get", "jobs,pytorchjobs", "-o", "name").split()
    assert any(j.startswith("job.batch/sample-job-") for j in jobs) and "pytorchjob.kubeflow.org/pytorch-simple" in jobs
    # Re-applying the samples is idempotent.
    assert (
        kubectl("apply", "-f", str(REFERENCE / "samples" / "queue" / "single-clusterqueue-setup.yaml"))
        .split()
        .count("unchanged")
        == 3
    )

    explained = kubectl("explain", "workloads.spec.podSets")
    assert "KIND:       Workload" in explained and "count\t<integer>" in explained
    assert "FIELD: displayName <string>" in kubectl("explain", "workspace.spec.displayName")


def test_server_errors_read_like_a_real_cluster(kubectl: Kubectl) -> None:
    missing = kubectl.run("get", "pod", "ghost", check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "ghost" not found'
    unknown = kubectl.run("get", "widgets", check=False)
    assert unknown.stderr.strip() == 'error: the server doesn\'t have a resource type "widgets"'
    duplicate = kubectl.run("create", "namespace", "default", check=False)
    assert duplicate.stderr.strip() == 'Error from server (AlreadyExists): namespaces "default" already exists'
    kubectl("apply", "-f", str(CRDS / "kueue.x-k8s.io_localqueues.yaml"))
    invalid = kubectl.run(
        "apply",
        "-f",
        "-",
        check=False,
        stdin="apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: q}\nspec: {stopPolicy: Pause}\n",
    )
    assert (
        'The LocalQueue "q" is invalid: spec.stopPolicy: Unsupported value: "Pause": supported values: "None", "Hold", "HoldAndDrain"'
        in invalid.stderr
    )
    strict = kubectl.run(
        "apply",
        "-f",
        "-",
        check=False,
        stdin="apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: q}\nspec: {clusterQueue: cq, colour: red}\n",
    )
    assert 'strict decoding error: unknown field "spec.colour"' in strict.stderr
    assert kubectl.run("get", "localqueue", "q", check=False).returncode != 0, "nothing was written"
    bad_name = kubectl.run("apply", "-f", "-", check=False, stdin=POD.replace("name: trainer", "name: Trainer"))
    assert 'The Pod "Trainer" is invalid: metadata.name: Invalid value: "Trainer"' in bad_name.stderr


def test_get_watch_prints_rows_as_objects_change(apiserver_thread: ServerThread, kubectl: Kubectl) -> None:
    store = apiserver_thread.store
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": "default"}})
    watcher = kubectl.popen("get", "configmaps", "-w")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        assert lines.get(timeout=10).split() == ["NAME", "DATA", "AGE"]
        assert lines.get(timeout=10).split()[:2] == ["first", "0"]
        store.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "second", "namespace": "default"},
                "data": {"a": "1"},
            }
        )
        assert lines.get(timeout=10).split()[:2] == ["second", "1"]
        store.patch("v1", "ConfigMap", "first", {"data": {"x": "1", "y": "2"}}, "default")
        assert lines.get(timeout=10).split()[:2] == ["first", "2"]
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_explain_and_api_resources(kubectl: Kubectl) -> None:
    assert "KIND:       Pod" in kubectl("explain", "pods")
    resources = kubectl("api-resources", "--api-group=kueue.x-k8s.io", "-o", "name").split()
    assert resources == [
        "clusterqueues.kueue.x-k8s.io",
        "localqueues.kueue.x-k8s.io",
        "resourceflavors.kueue.x-k8s.io",
        "workloadpriorityclasses.kueue.x-k8s.io",
        "workloads.kueue.x-k8s.io",
    ]
    versions = json.loads(kubectl("version", "-o", "json"))
    assert versions["serverVersion"]["gitVersion"].startswith("v1.32")


JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:1.36}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80}
"""


def test_replacing_with_the_creating_manifest_succeeds(kubectl: Kubectl) -> None:
    """Defaults apply on every write: `kubectl replace -f` of an unchanged manifest changes nothing."""
    for manifest in (POD, JOB, SERVICE):
        kubectl("create", "-f", "-", stdin=manifest)
    created = {name: kubectl.json("get", name) for name in ("pod/trainer", "job/once", "service/web")}
    for manifest in (POD, JOB, SERVICE):
        assert "replaced" in kubectl("replace", "-f", "-", stdin=manifest)
    for name, before in created.items():
        after = kubectl.json("get", name)
        assert after["spec"] == before["spec"], name
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], f"{name} is unchanged"
    labels = created["job/once"]["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "once" and "batch.kubernetes.io/controller-uid" in labels
    manual = yaml.safe_load(JOB)
    manual["spec"]["manualSelector"] = True
    manual["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "other"}}
    changed = kubectl.run("replace", "-f", "-", stdin=json.dumps(manual), check=False)
    assert changed.returncode != 0 and "spec.selector: Invalid value" in changed.stderr
    assert "field is immutable" in changed.stderr


def test_system_namespaces_may_not_be_deleted(kubectl: Kubectl) -> None:
    for name in ("default", "kube-system", "kube-public"):
        refused = kubectl.run("delete", "namespace", name, check=False)
        assert refused.returncode != 0
        assert refused.stderr.strip() == (
            f'Error from server (Forbidden): namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
        assert kubectl.json("get", "namespace", name)["status"]["phase"] == "Active"
    assert kubectl("delete", "namespace", "kube-node-lease").strip() == 'namespace "kube-node-lease" deleted'
