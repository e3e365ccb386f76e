"""The REST core driven by the official client (sync `kubernetes.client` and `kubernetes.aio`), over real sockets."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from kubernetes import client
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

from app.demo.apiserver import LocalApiServer, ServerThread
from tests.plugins.apiserver import Kubectl
from tests.reference import REFERENCE

KUEUE = ("kueue.x-k8s.io", "v1beta2")
WORKLOADS_CRD = str(REFERENCE / "crds" / "kueue.x-k8s.io_workloads.yaml")


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def workload(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def status_of(exc: client.ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


# --- objects: identity, versions, errors ---------------------------------------------------------------------------


def test_create_get_sets_server_fields_and_rejects_duplicates(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    created = core.create_namespaced_pod("default", pod("p1"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.status.phase == "Pending"
    fetched = core.read_namespaced_pod("p1", "default")
    assert fetched.metadata.resource_version == created.metadata.resource_version
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("default", pod("p1"))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"], body["message"]) == (409, "AlreadyExists", 'pods "p1" already exists')
    assert body["details"] == {"name": "p1", "kind": "pods"}


def test_resource_version_is_cluster_wide_and_monotonic(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    versions = [
        int(core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}}).metadata.resource_version)
        for i in range(3)
    ]
    versions.append(int(core.create_namespace({"metadata": {"name": "team-a"}}).metadata.resource_version))
    versions.append(int(core.list_namespaced_config_map("default").metadata.resource_version))
    assert versions == sorted(versions) and len(set(versions[:4])) == 4
    assert versions[4] == versions[3], "a LIST reports the latest committed revision"


def test_missing_objects_namespaces_and_kinds_are_404(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod("ghost", "default")
    assert status_of(caught.value)["message"] == 'pods "ghost" not found'
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("nowhere", pod("p", "nowhere"))
    assert status_of(caught.value)["message"] == 'namespaces "nowhere" not found'
    custom = client.CustomObjectsApi(k8s_client)
    with pytest.raises(client.ApiException) as caught:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == "the server could not find the requested resource"


def test_update_uses_optimistic_concurrency(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    first = core.read_namespaced_config_map("cfg", "default")
    second = core.read_namespaced_config_map("cfg", "default")
    first.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cfg", "default", first)
    assert int(updated.metadata.resource_version) > int(second.metadata.resource_version)
    second.data = {"a": "3"}
    with pytest.raises(client.ApiException) as caught:
        core.replace_namespaced_config_map("cfg", "default", second)
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your '
        "changes to the latest version and try again"
    )
    assert core.read_namespaced_config_map("cfg", "default").data == {"a": "2"}


def test_generation_follows_spec_changes_only(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    created = custom.create_namespaced_custom_object(*KUEUE, "default", "workloads", workload("w", queueName="q"))
    assert created["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(
        *KUEUE, "default", "workloads", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = custom.patch_namespaced_custom_object_status(
        *KUEUE, "default", "workloads", "w", {"status": {"conditions": [{"type": "QuotaReserved", "status": "True"}]}}
    )
    assert status["metadata"]["generation"] == 1 and status["status"]["conditions"][0]["type"] == "QuotaReserved"
    respec = custom.patch_namespaced_custom_object(*KUEUE, "default", "workloads", "w", {"spec": {"queueName": "r"}})
    assert respec["metadata"]["generation"] == 2
    assert respec["status"] == status["status"], "a main-resource write keeps the status"
    ignored = custom.patch_namespaced_custom_object(*KUEUE, "default", "workloads", "w", {"status": {"x": 1}})
    assert ignored["status"] == status["status"], "status changes through the main resource are ignored"


def test_status_is_dropped_on_create_of_status_subresource_kinds(k8s_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    body = workload("w2", queueName="q")
    body["status"] = {"admission": {"clusterQueue": "cq"}}
    assert "status" not in custom.create_namespaced_custom_object(*KUEUE, "default", "workloads", body)


def test_both_kueue_versions_serve_the_same_objects(k8s_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    custom.create_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta1", "default", "workloads", {**workload("old"), "apiVersion": "kueue.x-k8s.io/v1beta1"}
    )
    listed = custom.list_namespaced_custom_object(*KUEUE, "default", "workloads")
    assert [(i["apiVersion"], i["metadata"]["name"]) for i in listed["items"]] == [("kueue.x-k8s.io/v1beta2", "old")]
    old = custom.get_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", "default", "workloads", "old")
    assert old["apiVersion"] == "kueue.x-k8s.io/v1beta1"


V1BETA1 = ("kueue.x-k8s.io", "v1beta1")


@pytest.mark.parametrize("with_crds", [False, True], ids=["catalogue", "upstream CRDs"])
def test_kueue_versions_convert_renamed_fields(
    with_crds: bool, k8s_client: client.ApiClient, kubectl: Kubectl
) -> None:
    if with_crds:
        for name in ("clusterqueues", "localqueues", "workloads"):
            kubectl("apply", "--server-side", "-f", str(REFERENCE / "crds" / f"kueue.x-k8s.io_{name}.yaml"))
    custom = client.CustomObjectsApi(k8s_client)
    cq: dict[str, Any] = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ClusterQueue", "metadata": {"name": "gpus"}}
    cq["spec"] = {"cohort": "all", "resourceGroups": []}
    custom.create_cluster_custom_object(*V1BETA1, "clusterqueues", cq)
    assert custom.get_cluster_custom_object(*KUEUE, "clusterqueues", "gpus")["spec"]["cohortName"] == "all"
    assert "cohort" not in custom.get_cluster_custom_object(*KUEUE, "clusterqueues", "gpus")["spec"]
    assert custom.get_cluster_custom_object(*V1BETA1, "clusterqueues", "gpus")["spec"]["cohort"] == "all"
    custom.patch_cluster_custom_object(*KUEUE, "clusterqueues", "gpus", {"spec": {"cohortName": "other"}})
    assert custom.get_cluster_custom_object(*V1BETA1, "clusterqueues", "gpus")["spec"]["cohort"] == "other"
    for version in ("v1beta1", "v1beta2"):
        printed = kubectl("get", f"clusterqueues.{version}.kueue.x-k8s.io", "gpus").splitlines()
        assert printed[0].split()[:2] == ["NAME", "COHORT"] and printed[1].split()[:2] == ["gpus", "other"], version

    podsets = [{"name": "main", "count": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}]
    old = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "Workload",
        "metadata": {"name": "w"},
        "spec": {
            "podSets": podsets,
            "priority": 100,
            "priorityClassName": "high",
            "priorityClassSource": "kueue.x-k8s.io/workloadpriorityclass",
        },
    }
    custom.create_namespaced_custom_object(*V1BETA1, "default", "workloads", old)
    new = custom.get_namespaced_custom_object(*KUEUE, "default", "workloads", "w")["spec"]
    assert new["priorityClassRef"] == {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "high"}
    assert "priorityClassName" not in new and "priorityClassSource" not in new
    back = custom.get_namespaced_custom_object(*V1BETA1, "default", "workloads", "w")["spec"]
    assert (back["priorityClassName"], back["priorityClassSource"]) == ("high", "kueue.x-k8s.io/workloadpriorityclass")
    assert "priorityClassRef" not in back
    # A writer that sends both shapes: the fields of the version it writes at win.
    both = {
        "priorityClassName": "low",
        "priorityClassSource": "scheduling.k8s.io/priorityclass",
        "priorityClassRef": {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "mid"},
    }
    custom.patch_namespaced_custom_object(*KUEUE, "default", "workloads", "w", {"spec": both})
    back = custom.get_namespaced_custom_object(*V1BETA1, "default", "workloads", "w")["spec"]
    assert back["priorityClassName"] == "mid"
    custom.patch_namespaced_custom_object(*V1BETA1, "default", "workloads", "w", {"spec": both})
    ref = custom.get_namespaced_custom_object(*KUEUE, "default", "workloads", "w")["spec"]["priorityClassRef"]
    assert ref == {"group": "scheduling.k8s.io", "kind": "PriorityClass", "name": "low"}

    lq = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue", "metadata": {"name": "q"}}
    custom.create_namespaced_custom_object(*V1BETA1, "default", "localqueues", {**lq, "spec": {"clusterQueue": "gpus"}})
    usage = [{"name": "ml.p5.48xlarge", "resources": [{"name": "nvidia.com/gpu", "total": "8"}]}]
    status = {"status": {"flavorUsage": usage}}
    custom.patch_namespaced_custom_object_status(*V1BETA1, "default", "localqueues", "q", status)
    assert custom.get_namespaced_custom_object(*KUEUE, "default", "localqueues", "q")["status"]["flavorsUsage"] == usage
    assert custom.get_namespaced_custom_object(*V1BETA1, "default", "localqueues", "q")["status"] == status["status"]


def test_generate_name_and_dry_run(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    body = pod("")
    body["metadata"] = {"generateName": "train-"}
    made = core.create_namespaced_pod("default", body)
    assert made.metadata.name.startswith("train-") and len(made.metadata.name) == len("train-") + 5
    dry = core.create_namespaced_pod("default", pod("dry"), dry_run="All")
    assert dry.metadata.name == "dry"
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod("dry", "default")
    core.delete_namespaced_pod(made.metadata.name, "default", dry_run="All")
    assert core.read_namespaced_pod(made.metadata.name, "default").metadata.name == made.metadata.name


# --- patch ------------------------------------------------------------------------------------------------------------


def test_patch_flavours(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    spec = pod("p", app="x")
    spec["spec"]["containers"].append({"name": "side", "image": "envoy:1"})
    core.create_namespaced_pod("default", spec)
    # dict body: the client sends a strategic merge patch; containers merge by name.
    patched = core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    assert [(c.name, c.image) for c in patched.spec.containers] == [("main", "busybox:1.37"), ("side", "envoy:1")]
    # list body: a JSON patch.
    patched = core.patch_namespaced_pod(
        "p", "default", [{"op": "add", "path": "/metadata/labels/tier", "value": "gpu"}]
    )
    assert patched.metadata.labels == {"app": "x", "tier": "gpu"}
    # merge patch, explicitly.
    patched = core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"app": None}}}, _content_type="application/merge-patch+json"
    )
    assert patched.metadata.labels == {"tier": "gpu"}
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_pod("p", "default", [{"op": "remove", "path": "/spec/nothing"}])
    assert caught.value.status == 422


def test_strategic_merge_patch_on_a_custom_resource_is_415(k8s_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    custom.create_namespaced_custom_object(*KUEUE, "default", "workloads", workload("w"))
    with pytest.raises(client.ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *KUEUE, "default", "workloads", "w", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert caught.value.status == 415 and status_of(caught.value)["reason"] == "UnsupportedMediaType"


def test_pod_spec_is_immutable_except_images(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert caught.value.status == 422
    assert "pod updates may not change fields other than" in status_of(caught.value)["message"]
    assert core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "main", "image": "b:2"}]}})


def test_scale_subresource(k8s_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.kind, scale.spec.replicas) == ("Scale", 1)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    deployment = apps.read_namespaced_deployment("web", "default")
    assert deployment.spec.replicas == 4 and deployment.metadata.generation == 2


# --- delete -----------------------------------------------------------------------------------------------------------


def test_finalizers_defer_deletion(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    body = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    core.create_namespaced_config_map("default", body)
    core.delete_namespaced_config_map("held", "default")
    pending = core.read_namespaced_config_map("held", "default")
    assert pending.metadata.deletion_timestamp is not None
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": ["example.com/hold", "x/y"]}})
    assert "no new finalizers can be added if the object is being deleted" in status_of(caught.value)["message"]
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map("held", "default")
    assert caught.value.status == 404


def test_namespace_deletion_terminates_then_removes_contents(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_pod("doomed", pod("a", "doomed"))
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    core.create_namespaced_config_map("doomed", held)
    core.delete_namespace("doomed")
    namespace = core.read_namespace("doomed")
    assert namespace.status.phase == "Terminating"
    assert core.list_namespaced_pod("doomed").items == []
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("doomed", pod("b", "doomed"))
    assert caught.value.status == 403
    assert "because it is being terminated" in status_of(caught.value)["message"]
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as caught:
        core.read_namespace("doomed")
    assert caught.value.status == 404


def test_delete_preconditions(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(client.ApiException) as caught:
        core.delete_namespaced_config_map("c", "default", body=client.V1DeleteOptions(preconditions={"uid": "other"}))
    assert caught.value.status == 409 and "Precondition failed: UID in precondition: other" in caught.value.body
    assert core.delete_namespaced_config_map("c", "default")["status"] == "Success"


# --- validation ----------------------------------------------------------------------------------------------------


def test_names_and_labels_are_validated(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("default", pod("Bad_Name"))
    body = status_of(caught.value)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith(
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_pod("default", pod("ok", **{"bad key": "v"}))
    assert 'metadata.labels: Invalid value: "bad key"' in status_of(caught.value)["message"]


def test_crd_schema_rejects_invalid_objects_and_nothing_is_written(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient
) -> None:
    import yaml

    with open(WORKLOADS_CRD) as handle:
        client.ApiextensionsV1Api(k8s_client).create_custom_resource_definition(yaml.safe_load(handle))
    custom = client.CustomObjectsApi(k8s_client)
    before = apiserver_thread.store.resource_version
    v1beta1 = {**workload("x"), "apiVersion": "kueue.x-k8s.io/v1beta1"}
    with pytest.raises(client.ApiException) as caught:
        custom.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", "default", "workloads", v1beta1)
    body = status_of(caught.value)
    assert caught.value.status == 422
    assert body["message"] == 'Workload.kueue.x-k8s.io "x" is invalid: spec.podSets: Required value'
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.podSets"}
    ]
    assert apiserver_thread.store.resource_version == before
    valid = workload(
        "ok",
        podSets=[{"name": "main", "count": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}],
    )
    created = custom.create_namespaced_custom_object(*KUEUE, "default", "workloads", valid)
    assert created["spec"]["active"] is True, "schema defaults are applied"
    with pytest.raises(client.ApiException) as caught:
        custom.patch_namespaced_custom_object(*KUEUE, "default", "workloads", "ok", {"spec": {"active": "yes"}})
    assert (
        'spec.active: Invalid value: "string": spec.active in body must be of type boolean'
        in status_of(caught.value)["message"]
    )
    assert custom.get_namespaced_custom_object(*KUEUE, "default", "workloads", "ok")["spec"]["active"] is True
    selected = custom.list_namespaced_custom_object(
        *KUEUE, "default", "workloads", field_selector="status.admission.clusterQueue="
    )
    assert [w["metadata"]["name"] for w in selected["items"]] == ["ok"], "CRD selectableFields work as field selectors"


def test_malformed_bodies_are_400(apiserver_thread: ServerThread) -> None:
    for payload, content_type in ((b'{"metadata": ', "application/json"), (b"a: [b", "application/yaml")):
        request = urllib.request.Request(
            f"{apiserver_thread.url}/api/v1/namespaces/default/configmaps",
            data=payload,
            method="POST",
            headers={"Content-Type": content_type},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        body = json.loads(caught.value.read())
        assert (caught.value.code, body["kind"], body["reason"]) == (400, "Status", "BadRequest")
    assert apiserver_thread.store.list("v1", "ConfigMap", "default") == []


# --- LIST: selectors, pagination, resourceVersion ----------------------------------------------------------------------


def test_label_and_field_selectors(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    for name, labels in (("a", {"app": "x", "tier": "gpu"}), ("b", {"app": "y"}), ("c", {})):
        core.create_namespaced_pod("default", pod(name, **labels))
    apiserver_thread.store.patch("v1", "Pod", "b", {"status": {"phase": "Running"}}, "default", subresource="status")

    def names(**query: str) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod("default", **query).items]

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app in (x,y),tier notin (cpu)") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="app,app!=x") == ["b"]
    assert names(field_selector="status.phase=Running") == ["b"]
    assert names(field_selector="metadata.name!=a,status.phase=Pending") == ["c"]
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert (caught.value.status, status_of(caught.value)["message"]) == (400, "field label not supported: spec.bogus")


def test_pagination_returns_every_object_once_while_writes_happen(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s_client)
    names = {f"cm-{i:03d}" for i in range(120)}
    for name in names:
        apiserver_thread.store.put(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}
        )
    seen: list[str] = []
    token = None
    rvs = set()
    for page_number in range(100):
        page = core.list_namespaced_config_map("default", limit=25, _continue=token)
        seen.extend(item.metadata.name for item in page.items)
        rvs.add(page.metadata.resource_version)
        # Writes between pages: new objects, changed objects, deleted objects.
        apiserver_thread.store.put(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"aa-new-{page_number}", "namespace": "default"},
            }
        )
        apiserver_thread.store.patch("v1", "ConfigMap", "cm-119", {"data": {"n": str(page_number)}}, "default")
        token = page.metadata._continue
        if not token:
            break
    assert sorted(seen) == sorted(names), "a paginated LIST is one consistent snapshot"
    assert len(rvs) == 1


def test_list_resource_version_semantics(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    then = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    exact = core.list_namespaced_config_map("default", resource_version=then, resource_version_match="Exact")
    assert [i.metadata.name for i in exact.items] == ["one"] and exact.metadata.resource_version == then
    assert len(core.list_namespaced_config_map("default", resource_version="0").items) == 2
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_config_map("default", resource_version="99999")
    assert caught.value.status == 504 and "Too large resource version" in caught.value.body
    apiserver_thread.call(apiserver_thread.server.store.compact)
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_config_map("default", resource_version=then, resource_version_match="Exact")
    assert caught.value.status == 410


# --- async client -----------------------------------------------------------------------------------------------------


async def test_aio_client_round_trip(apiserver: LocalApiServer) -> None:
    api_client = await aio_config.new_client_from_config(str(apiserver.kubeconfig_path))
    async with api_client:
        core = aio_client.CoreV1Api(api_client)
        await core.create_namespaced_pod("default", pod("p", app="x"))
        listed = await core.list_namespaced_pod("default", label_selector="app=x")
        assert [p.metadata.name for p in listed.items] == ["p"]
        patched = await core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "y"}}})
        assert patched.metadata.labels == {"app": "y"}
        assert apiserver.store.get("v1", "Pod", "p", "default")["metadata"]["labels"] == {"app": "y"}
        await core.delete_namespaced_pod("p", "default")
        assert (await core.list_namespaced_pod("default")).items == []


async def test_raw_list_carries_kind_and_api_version(apiserver: LocalApiServer) -> None:
    apiserver.store.create(pod("p"))
    async with aiohttp.ClientSession() as session, session.get(f"{apiserver.url}/api/v1/pods") as response:
        body = await response.json()
    assert (body["kind"], body["apiVersion"]) == ("PodList", "v1")
    assert [item["metadata"]["name"] for item in body["items"]] == ["p"]
    assert body["items"][0]["kind"] == "Pod"


# --- decoding: wrongly typed fields are 400s, never 500s, and nothing is stored ---------------------------------------

_PODSPEC = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
CORE, APPS, BATCH = "/api/v1/namespaces/default", "/apis/apps/v1/namespaces/default", "/apis/batch/v1/namespaces/default"
KUEUE_PATH = "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/workloads"
WRONGLY_TYPED = [
    (f"{CORE}/pods", {"metadata": {"finalizers": "x"}, "spec": _PODSPEC}, "ObjectMeta.metadata.finalizers"),
    (f"{CORE}/pods", {"metadata": {"ownerReferences": "abc"}, "spec": _PODSPEC}, "ObjectMeta.metadata.ownerReferences"),
    (f"{CORE}/pods", {"metadata": {"labels": ["a"]}, "spec": _PODSPEC}, "ObjectMeta.metadata.labels"),
    (f"{CORE}/pods", {"spec": {"containers": "x"}}, "PodSpec.spec.containers"),
    (f"{CORE}/pods", {"spec": _PODSPEC, "status": {"containerStatuses": "oops"}}, "PodStatus.status.containerStatuses"),
    (f"{CORE}/services", {"spec": {"ports": ["x"]}}, "ServiceSpec.spec.ports"),
    (f"{CORE}/configmaps", {"data": {"a": 1}}, "ConfigMap.data"),
    (f"{CORE}/secrets", {"data": ["a"]}, "Secret.data"),
    (f"{APPS}/deployments", {"spec": {"selector": "x", "template": {"spec": _PODSPEC}}}, "DeploymentSpec.spec.selector"),
    (f"{BATCH}/jobs", {"spec": {"template": "x"}}, "JobSpec.spec.template"),
    (KUEUE_PATH, {"metadata": {"finalizers": [1]}}, "ObjectMeta.metadata.finalizers"),
]


@pytest.mark.parametrize(("path", "body", "field"), WRONGLY_TYPED, ids=[f for _, _, f in WRONGLY_TYPED])
async def test_wrongly_typed_bodies_are_400_and_nothing_is_stored(
    apiserver: LocalApiServer, path: str, body: dict[str, Any], field: str
) -> None:
    body = {**body, "metadata": {"name": "bad", **body.get("metadata", {})}}
    before = apiserver.store.resource_version
    async with aiohttp.ClientSession() as session:
        async with session.post(apiserver.url + path, json=body) as response:
            status = await response.json()
            assert response.status == 400, status
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "BadRequest", 400)
        assert "cannot be handled as a" in status["message"]
        assert "json: cannot unmarshal" in status["message"] and f"Go struct field {field} of type" in status["message"]
        async with session.get(f"{apiserver.url}{path}/bad") as response:
            assert response.status == 404
    assert apiserver.store.resource_version == before


async def test_wrongly_typed_patches_and_delete_options_change_nothing(apiserver: LocalApiServer) -> None:
    apiserver.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})
    url = f"{apiserver.url}/api/v1/namespaces/default/configmaps/c"
    before = apiserver.store.resource_version
    async with aiohttp.ClientSession() as session:
        patch = {"data": {"a": 1}}
        merge = {"Content-Type": "application/merge-patch+json"}
        async with session.patch(url, data=json.dumps(patch), headers=merge) as response:
            assert response.status == 400
            assert "Go struct field ConfigMap.data of type string" in (await response.json())["message"]
        async with session.put(url, json={"metadata": {"name": "c", "labels": "x"}}) as response:
            assert response.status == 400
        for options, field in (({"preconditions": "x"}, "preconditions"), ({"dryRun": "All"}, "dryRun")):
            async with session.delete(url, json=options) as response:
                assert response.status == 400, "a DeleteOptions that does not decode deletes nothing"
                assert f"Go struct field DeleteOptions.{field}" in (await response.json())["message"]
        async with session.get(url) as response:
            assert response.status == 200 and "data" not in await response.json()
    assert apiserver.store.resource_version == before


def test_a_printer_column_the_server_cannot_evaluate_never_fails_a_listing(kubectl: Kubectl) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "NotReady", "type": "string", "jsonPath": '.status.conditions[?(@.type!="Ready")].type'},
                    ],
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 3}}
    kubectl("apply", "-f", "-", stdin=json.dumps(gadget))
    lines = kubectl("get", "gadgets").splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "NOTREADY"]
    assert lines[1].split() == ["g", "3"], "the cell kubectl cannot fill is empty"


async def test_unquoted_dates_in_yaml_bodies_stay_strings(apiserver: LocalApiServer) -> None:
    url = f"{apiserver.url}/api/v1/namespaces/default/configmaps"
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dated\ndata:\n  since: 2024-01-31\n"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=manifest, headers={"Content-Type": "application/yaml"}) as response:
            assert response.status == 201 and (await response.json())["data"] == {"since": "2024-01-31"}
        replaced = manifest.replace("2024-01-31", "2025-02-01 10:00:00")
        async with session.put(f"{url}/dated", data=replaced, headers={"Content-Type": "application/yaml"}) as response:
            assert response.status == 200 and (await response.json())["data"] == {"since": "2025-02-01 10:00:00"}
        applied = manifest.replace("dated", "applied")
        headers = {"Content-Type": "application/apply-patch+yaml"}
        async with session.patch(f"{url}/applied?fieldManager=me", data=applied, headers=headers) as response:
            assert response.status == 201 and (await response.json())["data"] == {"since": "2024-01-31"}


def _protobuf_field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field: a varint (wire type 0) for an int, length-delimited (wire type 2) for bytes."""

    def varint(value: int) -> bytes:
        out = b""
        while value > 0x7F:
            out += bytes(((value & 0x7F) | 0x80,))
            value >>= 7
        return out + bytes((value,))

    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


async def test_protobuf_bodies_with_wrong_wire_types_are_400(apiserver: LocalApiServer) -> None:
    type_meta = _protobuf_field(1, b"v1") + _protobuf_field(2, b"ConfigMap")
    good_meta = _protobuf_field(1, _protobuf_field(1, b"pb"))
    bodies = {
        "metadata as a varint": _protobuf_field(1, 7),
        "name as a varint": _protobuf_field(1, _protobuf_field(1, 7)),
        "immutable as bytes": good_meta + _protobuf_field(4, b"yes"),
        "a map entry's key as a varint": good_meta + _protobuf_field(2, _protobuf_field(1, 3)),
    }
    url = f"{apiserver.url}/api/v1/namespaces/default/configmaps"
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    async with aiohttp.ClientSession() as session:
        for what, raw in bodies.items():
            body = b"k8s\x00" + _protobuf_field(1, type_meta) + _protobuf_field(2, raw)
            async with session.post(url, data=body, headers=headers) as response:
                status = await response.json()
                assert (response.status, status["reason"]) == (400, "BadRequest"), what
                assert status["message"].startswith("unable to decode protobuf body"), what
        body = b"k8s\x00" + _protobuf_field(1, type_meta) + _protobuf_field(2, good_meta)
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 201 and (await response.json())["metadata"]["name"] == "pb"


async def test_list_cost_follows_the_page_not_the_table(apiserver: LocalApiServer) -> None:
    """With 50,000 objects elsewhere, a namespace's LIST and a continued page cost about what a GET costs."""
    store = apiserver.store
    kind = store.registry.lookup("", "v1", "configmaps")
    assert kind is not None
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "small"}})
    for i in range(50_000):  # loaded straight into the store: the writes are not what this test measures
        meta = {"name": f"c{i:05d}", "namespace": "default"}
        store.commit(kind, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, None)
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only", "namespace": "small"}})
    base = f"{apiserver.url}/api/v1/namespaces"
    async with aiohttp.ClientSession() as session:

        async def best(url: str) -> float:
            fastest = float("inf")
            for _ in range(30):
                started = time.perf_counter()
                async with session.get(url) as response:
                    assert response.status == 200
                    await response.read()
                fastest = min(fastest, time.perf_counter() - started)
            return fastest

        async with session.get(f"{base}/default/configmaps?limit=1") as response:
            token = (await response.json())["metadata"]["continue"]
        get = await best(f"{base}/small/configmaps/only")
        namespace_list = await best(f"{base}/small/configmaps")
        next_page = await best(f"{base}/default/configmaps?limit=1&continue={token}")
    assert namespace_list < get + 0.001, (namespace_list, get)
    assert next_page < get + 0.001, (next_page, get)


def test_list_parameters_are_checked(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    for namespace in ("team-a", "team-b"):
        core.create_namespace({"metadata": {"name": namespace}})
        for i in range(3):
            core.create_namespaced_config_map(namespace, {"metadata": {"name": f"c{i}"}})
    token = core.list_namespaced_config_map("team-a", limit=1).metadata._continue
    assert [c.metadata.name for c in core.list_namespaced_config_map("team-a", limit=1, _continue=token).items] == [
        "c1"
    ]
    for misuse in (
        lambda: core.list_namespaced_config_map("team-b", limit=1, _continue=token),
        lambda: core.list_config_map_for_all_namespaces(limit=1, _continue=token),
        lambda: core.list_namespaced_secret("team-a", limit=1, _continue=token),
    ):
        with pytest.raises(client.ApiException) as caught:
            misuse()
        assert caught.value.status == 400
        assert status_of(caught.value)["message"].startswith("continue key is not valid")
    rv = core.list_namespaced_config_map("team-a").metadata.resource_version
    assert len(core.list_namespaced_config_map("team-a", resource_version=rv, resource_version_match="Exact").items) == 3
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_config_map("team-a", resource_version=rv, resource_version_match="Newest")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan"'
    )
