"""The Spaces core against real servers: the simulated cluster (`bare_cluster`, its jupyter-k8s controller, kubelet
and scheduler) with the upstream Workspace CRDs applied, so every create is validated against their schema. Time
moves with `advance`. Refusals that need users and rules use the local API server with token users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.cluster import spaces
from app.cluster.actions import ActionError, ReadOnlyError
from app.cluster.connection import ApiError, ClusterConnection
from app.demo.apiserver import LocalApiServer
from app.demo.sim import DemoThread
from app.demo.sim.workspaces import preempt
from app.model.spaces import SpaceRequest, SpaceRow, space_rows
from tests.plugins.tui import closed_port, write_kubeconfig
from tests.reference import REFERENCE

NLP = "hyperpod-ns-nlp"
TEMPLATE = "sagemaker-jupyter-template"
CRDS = [REFERENCE / "crds" / f"workspace.jupyter.org_{n}.yaml" for n in ("workspaces", "workspacetemplates")]


@pytest.fixture
async def conn(bare_cluster: DemoThread, demo_kubectl) -> AsyncIterator[ClusterConnection]:
    kubectl = demo_kubectl(bare_cluster)
    for crd in CRDS:
        kubectl("apply", "--server-side", "-f", str(crd))
    connection = ClusterConnection([bare_cluster.kubeconfig_path], None)
    yield connection
    await connection.close()


async def rows(conn: ClusterConnection, namespace: str | None = NLP) -> dict[str, SpaceRow]:
    return {r.name: r for r in await spaces.fetch_spaces(conn, namespace)}


async def advance_until(cluster: DemoThread, conn: ClusterConnection, name: str, status: str, step: float = 1.0,
                        limit: float = 120) -> SpaceRow:
    """Move simulated time until the space shows `status` (or fail, saying what it showed instead)."""
    waited, row = 0.0, None
    while waited <= limit:
        row = (await rows(conn)).get(name)
        if row is not None and row.status == status:
            return row
        cluster.advance(step)
        waited += step
    raise AssertionError(f"{name} never became {status}: last {row and (row.status, row.reason)}")


def request(name: str, **fields) -> SpaceRequest:
    return SpaceRequest(name=name, namespace=NLP, template=TEMPLATE, **fields)


async def test_create_from_a_template_starts_runs_stops_and_starts_again(conn, bare_cluster) -> None:
    created = await spaces.create(conn, request("my-lab", cpu="4", memory="16Gi", queue=f"{NLP}-localqueue",
                                               priority="experimentation-priority"), readonly=False)
    spec = created["spec"]
    assert spec["templateRef"] == {"name": TEMPLATE, "namespace": "jupyter-k8s-system"}
    assert spec["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    assert spec["idleShutdown"]["idleTimeoutInMinutes"] == 120, "the template's default idle shutdown"
    assert spec["storage"] == {"size": "20Gi"}, "the template's default storage"
    bare_cluster.advance(1)
    assert (await rows(conn))["my-lab"].status == "Starting"
    running = await advance_until(bare_cluster, conn, "my-lab", "Running")
    assert running.access_url and running.queue == f"{NLP}-localqueue"
    assert running.priority == "experimentation-priority" and running.pods

    assert await spaces.set_running(conn, NLP, "my-lab", False, readonly=False) == "Running"
    bare_cluster.advance(0)  # the controller sees the change; JupyterLab takes a moment to shut its kernels down
    stopping = (await rows(conn))["my-lab"]
    assert (stopping.status, stopping.reason) == ("Stopping", "Workspace is stopping")
    await advance_until(bare_cluster, conn, "my-lab", "Stopped")
    assert await spaces.set_running(conn, NLP, "my-lab", True, readonly=False) == "Stopped"
    bare_cluster.advance(1)
    assert (await rows(conn))["my-lab"].status == "Starting"
    await advance_until(bare_cluster, conn, "my-lab", "Running")


async def test_a_space_whose_jupyterlab_keeps_crashing_is_degraded_and_says_why(conn, bare_cluster) -> None:
    await spaces.create(conn, SpaceRequest(name="tiny", namespace=NLP, cpu="1", memory="1Gi"), readonly=False)
    row = await advance_until(bare_cluster, conn, "tiny", "Degraded")
    assert "OOMKilled" in row.reason and "exit code 137" in row.reason


async def test_a_preempted_space_is_stopped_says_why_and_starts_again(conn, bare_cluster) -> None:
    await spaces.create(conn, request("governed", queue=f"{NLP}-localqueue", priority="fine-tuning-priority"),
                        readonly=False)
    await advance_until(bare_cluster, conn, "governed", "Running")
    assert bare_cluster.call(lambda: preempt(bare_cluster.cluster.simulation.world, NLP, "governed"))
    bare_cluster.advance(1)
    row = (await rows(conn))["governed"]
    assert row.status == "Preempted"
    assert row.reason == "Workspace preempted due to resource contention"
    assert row.pods == (), "Kueue evicted its pod"
    ws = await spaces.get(conn, NLP, "governed")
    assert ws["spec"]["desiredStatus"] == "Stopped"
    assert await spaces.set_running(conn, NLP, "governed", True, readonly=False) == "Preempted"
    await advance_until(bare_cluster, conn, "governed", "Running")
    ws = await spaces.get(conn, NLP, "governed")
    assert "workspace.jupyter.org/preemption-reason" not in (ws["metadata"].get("annotations") or {}), \
        "the controller drops its note once the space runs again"


async def test_out_of_bounds_bad_names_and_unknown_mig_profiles_are_refused_before_sending(conn, bare_cluster) -> None:
    cases = {
        "CPU 64 is above the template's maximum 16": request("big", cpu="64"),
        "memory 1Gi is below the template's minimum 2Gi": request("small", memory="1Gi"),
        "storage 500Gi is above the template's maximum 200Gi": request("huge-disk", storage="500Gi"),
        "GPUs 2 is above the template's maximum 1": request("two-gpus", gpus=2),
        "MIG profile 7g.80gb: no node offers it (offered: 1g.10gb, 2g.20gb, 3g.40gb)": request("mig", mig_profile="7g.80gb"),
        "name 'My_Lab': lower-case letters": request("My_Lab"),
        "image 'evil/miner:latest' is not allowed by sagemaker-jupyter-template": request("img", image="evil/miner:latest"),
        "queue 'nope': no such LocalQueue in hyperpod-ns-nlp": request("q", queue="nope"),
    }
    for expected, bad in cases.items():
        with pytest.raises(ActionError) as refused:
            await spaces.create(conn, bad, readonly=False)
        assert expected in str(refused.value) and str(refused.value).endswith("(nothing was created)")
        assert refused.value.exit_code == 2
    assert await rows(conn) == {}, "nothing was created, not even in part"
    ok = await spaces.create(conn, request("one-gpu", gpus=1), readonly=False)
    assert ok["spec"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}


async def test_a_name_the_server_rejects_is_reported_and_nothing_changes(conn, bare_cluster) -> None:
    await spaces.create(conn, request("taken", display_name="First"), readonly=False)
    with pytest.raises(ActionError) as refused:
        await spaces.create(conn, request("taken", display_name="Second"), readonly=False)
    assert "the server rejected space hyperpod-ns-nlp/taken" in str(refused.value)
    assert "already exists" in str(refused.value) and refused.value.exit_code == 2
    assert (await rows(conn))["taken"].display_name == "First"


async def test_the_crd_schema_rejects_what_a_template_cannot_catch(conn, bare_cluster) -> None:
    manifest, problems = await spaces.prepare(conn, request("valid"))
    assert problems == []
    manifest["spec"]["desiredStatus"] = "Paused"  # not in the CRD's enum
    with pytest.raises(ActionError) as refused:
        await spaces.create_manifest(conn, manifest, readonly=False)
    assert "desiredStatus" in str(refused.value) and "nothing was created" in str(refused.value)
    assert await rows(conn) == {}


async def test_edit_resources_only_of_a_stopped_space_and_within_bounds(conn, bare_cluster) -> None:
    await spaces.create(conn, request("resize"), readonly=False)
    with pytest.raises(ActionError, match="is Starting: stop it before changing its resources"):
        await spaces.edit_resources(conn, NLP, "resize", cpu="8", readonly=False)
    await spaces.set_running(conn, NLP, "resize", False, readonly=False)
    await advance_until(bare_cluster, conn, "resize", "Stopped")
    with pytest.raises(ActionError, match="CPU 32 is above the template's maximum 16"):
        await spaces.edit_resources(conn, NLP, "resize", cpu="32", readonly=False)
    await spaces.edit_resources(conn, NLP, "resize", cpu="8", mig_profile="1g.10gb", readonly=False)
    row = (await rows(conn))["resize"]
    assert (row.cpu, row.mig_profile, row.gpus) == ("8", "1g.10gb", 0)


async def test_an_edit_from_a_mig_slice_to_whole_gpus_drops_the_mig_node_selector(conn, bare_cluster,
                                                                                   demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    await spaces.create(conn, request("slices"), readonly=False)
    await spaces.set_running(conn, NLP, "slices", False, readonly=False)
    await advance_until(bare_cluster, conn, "slices", "Stopped")
    await spaces.edit_resources(conn, NLP, "slices", mig_profile="1g.10gb", readonly=False)
    spec = kubectl.json("get", "workspace", "slices", "-n", NLP)["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/mig.strategy": "mixed"}, "a MIG slice schedules on mixed-MIG nodes"
    await spaces.edit_resources(conn, NLP, "slices", cpu="2", readonly=False)
    spec = kubectl.json("get", "workspace", "slices", "-n", NLP)["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/mig.strategy": "mixed"}, "the slice is kept, so is its selector"
    await spaces.edit_resources(conn, NLP, "slices", gpus=1, readonly=False)
    spec = kubectl.json("get", "workspace", "slices", "-n", NLP)["spec"]
    assert "nvidia.com/mig.strategy" not in (spec.get("nodeSelector") or {}), \
        "a whole GPU must not be held to mixed-MIG nodes"
    row = (await rows(conn))["slices"]
    assert (row.gpus, row.mig_profile) == (1, None)
    await spaces.set_running(conn, NLP, "slices", True, readonly=False)
    assert (await advance_until(bare_cluster, conn, "slices", "Running")).gpus == 1


async def test_delete_removes_the_space_and_says_its_storage_goes(conn, bare_cluster) -> None:
    await spaces.create(conn, request("gone", storage="30Gi"), readonly=False)
    current = await spaces.get(conn, NLP, "gone")
    assert spaces.storage_note(current) == ("its 30Gi home volume is deleted with it and its files are lost "
                                            "(stop keeps them)")
    await spaces.delete(conn, NLP, "gone", readonly=False)
    assert "gone" not in await rows(conn)
    with pytest.raises(ActionError, match="no space 'gone' in namespace hyperpod-ns-nlp"):
        await spaces.delete(conn, NLP, "gone", readonly=False)


async def test_read_only_refuses_every_change_before_sending_anything() -> None:
    async with LocalApiServer() as server:
        seen: list[str] = []

        async def record(request, info) -> None:
            seen.append(request.method)

        server.api.add_request_hook(record)
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            for call in (spaces.create(conn, request("x"), readonly=True),
                         spaces.set_running(conn, NLP, "x", True, readonly=True),
                         spaces.delete(conn, NLP, "x", readonly=True),
                         spaces.edit_resources(conn, NLP, "x", cpu="2", readonly=True),
                         spaces.edit_resources(conn, NLP, "x", cpu="2", readonly=True, store="notebooks")):
                with pytest.raises(ReadOnlyError):
                    await call
            assert seen == []
        finally:
            await conn.close()


async def test_a_forbidden_namespace_is_refused_before_the_create_and_mine_is_who_the_server_says() -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list", "watch", "create"], "apiGroups": ["workspace.jupyter.org"],
             "resources": ["workspaces", "workspacetemplates"], "namespaces": ["team-a"]}]},
    ]}
    async with LocalApiServer(access=access, user="alice") as server:
        for name in ("team-a", "team-b"):
            server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            assert await spaces.whoami(conn) == "alice"
            with pytest.raises(ActionError) as refused:
                await spaces.create(conn, SpaceRequest(name="lab", namespace="team-b", cpu="1", memory="2Gi"),
                                    readonly=False)
            assert str(refused.value) == "you may not create workspaces in namespace team-b (nothing was created)"
            assert refused.value.exit_code == 2
            await spaces.create(conn, SpaceRequest(name="lab", namespace="team-a", cpu="1", memory="2Gi"),
                                readonly=False)
            stored = await spaces.get(conn, "team-a", "lab")
            assert stored["metadata"]["annotations"]["workspace.jupyter.org/created-by"] == "alice"
            mine = space_rows({"workspaces": {"team-a/lab": stored}}, owner="alice")
            assert [r.name for r in mine] == ["lab"]
        finally:
            await conn.close()


def _reviews_at(*versions: str) -> list:
    """The server's kinds with SelfSubjectReview served at `versions` only (none: not served at all), as a 1.27
    (v1beta1) or 1.26 (v1alpha1, behind its feature gate) cluster serves it."""
    from dataclasses import replace

    from app.demo.apiserver.catalog import DEFAULT_KINDS
    from app.demo.apiserver.kinds import KindVersion

    kinds = [k for k in DEFAULT_KINDS if (k.group, k.plural) != ("authentication.k8s.io", "selfsubjectreviews")]
    review = next(k for k in DEFAULT_KINDS if (k.group, k.plural) == ("authentication.k8s.io", "selfsubjectreviews"))
    if versions:
        kinds.append(replace(review, versions=tuple(KindVersion(v, storage=i == 0) for i, v in enumerate(versions))))
    return kinds


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
async def test_whoami_falls_back_to_the_version_an_older_server_serves(version: str, tmp_path) -> None:
    from tests.plugins.apiserver import Kubectl

    access = {"anonymous": False, "users": [{"name": "alice", "token": "alice-token", "rules": []}]}
    async with LocalApiServer(access=access, user="alice", kinds=_reviews_at(version)) as server:
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            seen: list[str] = []

            async def record(request, info) -> None:
                if "selfsubjectreviews" in request.path:
                    seen.append(request.path)

            server.api.add_request_hook(record)
            assert await spaces.whoami(conn) == "alice"
        finally:
            await conn.close()
        # v1 first (404 here), then the older versions in turn until one answers.
        tried = spaces.SSR_VERSIONS[:spaces.SSR_VERSIONS.index(version) + 1]
        assert seen == [f"/apis/authentication.k8s.io/{v}/selfsubjectreviews" for v in tried]
        # What kubectl's discovery sees: the group at that version only, as on the older server.
        kubectl = Kubectl(server.kubeconfig_path, tmp_path / "kubectl-cache")
        served = (await asyncio.to_thread(kubectl, "api-versions")).split()
        assert [v for v in served if v.startswith("authentication.k8s.io/")] == [f"authentication.k8s.io/{version}"]


async def test_whoami_is_none_where_no_version_is_served() -> None:
    access = {"anonymous": False, "users": [{"name": "alice", "token": "alice-token", "rules": []}]}
    async with LocalApiServer(access=access, user="alice", kinds=_reviews_at()) as server:
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            assert await spaces.whoami(conn) is None
        finally:
            await conn.close()


async def test_an_edit_keeps_limits_only_gpus_other_limits_and_the_rest(conn, bare_cluster) -> None:
    manifest, problems = await spaces.prepare(conn, request("limited", cpu="2"))
    assert problems == []
    manifest["spec"]["desiredStatus"] = "Stopped"
    manifest["spec"]["resources"] = {"requests": {"cpu": "2", "memory": "8Gi"},
                                     "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}}
    await spaces.create_manifest(conn, manifest, readonly=False)
    await advance_until(bare_cluster, conn, "limited", "Stopped")
    await spaces.edit_resources(conn, NLP, "limited", cpu="4", readonly=False)
    resources = (await spaces.get(conn, NLP, "limited"))["spec"]["resources"]
    assert resources == {"requests": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
                         "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}}
    assert (await rows(conn))["limited"].gpus == 1


async def test_queues_are_checked_when_priority_classes_are_not_readable_and_an_unreachable_server_says_so(
        tmp_path) -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list"], "apiGroups": ["kueue.x-k8s.io"], "resources": ["localqueues"]}]},
    ]}
    async with LocalApiServer(access=access, user="alice") as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        server.store.create({"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
                             "metadata": {"name": "team-a-queue", "namespace": "team-a"},
                             "spec": {"clusterQueue": "cq"}})
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            _, queues, priorities = await spaces.create_choices(conn, "team-a")
            assert (queues, priorities) == (["team-a-queue"], None), "a forbidden priority list skips only its check"
        finally:
            await conn.close()
    down = write_kubeconfig(tmp_path / "down.yaml", {"down": f"http://127.0.0.1:{closed_port()}"}, "down")
    conn = ClusterConnection([down], None)
    try:
        for call in (lambda: spaces.whoami(conn), lambda: spaces.can(conn, "create", "workspaces", "team-a"),
                     lambda: spaces.create_choices(conn, "team-a")):
            with pytest.raises(ApiError) as unreachable:
                await call()
            assert unreachable.value.status == 0, "not a made-up answer: the cluster could not be reached"
    finally:
        await conn.close()


async def test_idle_time_stops_being_asked_after_the_first_refusal() -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list"], "apiGroups": ["workspace.jupyter.org"], "resources": ["*"]}]},
    ]}
    async with LocalApiServer(access=access, user="alice") as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        for name in ("one", "two", "three"):
            server.store.put({
                "apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": {"displayName": name, "desiredStatus": "Running"},
                "status": {"conditions": [{"type": "Available", "status": "True", "reason": "ResourcesReady"}]}})
        proxied: list[str] = []

        async def record(request, info) -> None:
            if "/proxy/" in request.path:
                proxied.append(request.path)

        server.api.add_request_hook(record)
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            listed = await spaces.fetch_spaces(conn, "team-a")
            assert [(r.name, r.status, r.idle_since) for r in listed] == [
                ("one", "Running", None), ("three", "Running", None), ("two", "Running", None)], \
                "a listing shows the spaces without their idle time"
            proxied.clear()
            with pytest.raises(spaces.ActivityForbidden):
                await spaces.activities(conn, listed, parallel=1)
            assert len(proxied) == 1, "the first refusal ends the round"
        finally:
            await conn.close()


async def test_a_kubeflow_notebook_stops_starts_and_is_deleted() -> None:
    async with LocalApiServer() as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow-user"}})
        server.store.put({
            "apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb", "namespace": "kubeflow-user"},
            "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter-scipy:v1"}]}}},
            "status": {"readyReplicas": 1}})
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            assert await spaces.set_notebook_running(conn, "kubeflow-user", "nb", False, readonly=False) == "Running"
            stopped = await spaces.get(conn, "kubeflow-user", "nb", "notebooks")
            assert stopped["metadata"]["annotations"]["kubeflow-resource-stopped"]
            await spaces.set_notebook_running(conn, "kubeflow-user", "nb", True, readonly=False)
            started = await spaces.get(conn, "kubeflow-user", "nb", "notebooks")
            assert "kubeflow-resource-stopped" not in (started["metadata"].get("annotations") or {})
            await spaces.delete(conn, "kubeflow-user", "nb", store="notebooks", readonly=False)
            assert [r.name for r in await spaces.fetch_spaces(conn, "kubeflow-user")] == []
        finally:
            await conn.close()


def notebook_yaml(name: str, *, stopped: bool = True) -> str:
    """A Kubeflow Notebook as its spawner writes one: a GPU in limits only, cpu and memory limits above their
    requests, a sidecar beside the IDE's container."""
    annotations = "{kubeflow-resource-stopped: '2026-11-27T11:00:00Z'}" if stopped else "{}"
    return f"""
apiVersion: kubeflow.org/v1
kind: Notebook
metadata: {{name: {name}, namespace: {NLP}, annotations: {annotations}}}
spec:
  template:
    spec:
      serviceAccountName: default-editor
      containers:
      - name: {name}
        image: kubeflownotebookswg/jupyter-pytorch-cuda-full:v1.8.0
        env: [{{name: JUPYTER_ENABLE_LAB, value: "yes"}}]
        ports: [{{containerPort: 8888, name: notebook-port}}]
        volumeMounts: [{{name: home, mountPath: /home/jovyan}}]
        resources:
          requests: {{cpu: "1", memory: 4Gi}}
          limits: {{cpu: "2", memory: 8Gi, nvidia.com/gpu: "1"}}
      - name: log-shipper
        image: fluent/fluent-bit:3.0
        resources: {{requests: {{cpu: 100m}}}}
      volumes: [{{name: home, persistentVolumeClaim: {{claimName: {name}-home}}}}]
"""


async def test_a_stopped_kubeflow_notebook_gets_new_compute_and_keeps_the_rest(conn, bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=notebook_yaml("nb"))
    before = kubectl.json("get", "notebook", "nb", "-n", NLP)
    assert (await rows(conn))["nb"].status == "Stopped"

    await spaces.edit_resources(conn, NLP, "nb", cpu="4", memory="16Gi", gpus=2, readonly=False, store="notebooks")
    after = kubectl.json("get", "notebook", "nb", "-n", NLP)
    lab, shipper = after["spec"]["template"]["spec"]["containers"]
    assert lab["resources"] == {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
                                "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}}, \
        "limits below the new requests are raised to them; GPUs ask as much as they limit"
    old_lab, old_shipper = before["spec"]["template"]["spec"]["containers"]
    assert {k: v for k, v in lab.items() if k != "resources"} == {k: v for k, v in old_lab.items() if k != "resources"}
    assert shipper == old_shipper, "the other containers stay as they are"
    assert {k: v for k, v in after["spec"]["template"]["spec"].items() if k != "containers"} == \
        {k: v for k, v in before["spec"]["template"]["spec"].items() if k != "containers"}
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"], "it stays stopped"
    row = (await rows(conn))["nb"]
    assert (row.status, row.cpu, row.memory, row.gpus) == ("Stopped", "4", "16Gi", 2)

    await spaces.edit_resources(conn, NLP, "nb", mig_profile="1g.10gb", readonly=False, store="notebooks")
    pod_spec = kubectl.json("get", "notebook", "nb", "-n", NLP)["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"}}
    assert pod_spec["nodeSelector"] == {"nvidia.com/mig.strategy": "mixed"}
    row = (await rows(conn))["nb"]
    assert (row.gpus, row.mig_profile) == (0, "1g.10gb")

    await spaces.edit_resources(conn, NLP, "nb", gpus=0, readonly=False, store="notebooks")
    pod_spec = kubectl.json("get", "notebook", "nb", "-n", NLP)["spec"]["template"]["spec"]
    assert "nvidia.com/mig.strategy" not in (pod_spec.get("nodeSelector") or {}), "no slice, no mixed-MIG selector"
    row = (await rows(conn))["nb"]
    assert (row.gpus, row.mig_profile) == (0, None)


async def test_a_notebook_that_is_not_stopped_or_asks_for_what_no_node_has_is_refused_and_unchanged(
        conn, bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=notebook_yaml("busy", stopped=False))
    kubectl("patch", "notebook", "busy", "-n", NLP, "--subresource=status", "--type=merge",
            "-p", '{"status": {"readyReplicas": 1}}')
    kubectl("create", "-f", "-", stdin=notebook_yaml("idle"))
    versions = {n: kubectl.json("get", "notebook", n, "-n", NLP)["metadata"]["resourceVersion"]
                for n in ("busy", "idle")}
    assert (await rows(conn))["busy"].status == "Running"

    with pytest.raises(ActionError) as refused:
        await spaces.edit_resources(conn, NLP, "busy", cpu="8", readonly=False, store="notebooks")
    assert str(refused.value) == f"space {NLP}/busy is Running: stop it before changing its resources"
    assert refused.value.exit_code == 2
    cases = {
        "MIG profile 7g.80gb: no node offers it (offered: 1g.10gb, 2g.20gb, 3g.40gb) (nothing was changed)":
            {"mig_profile": "7g.80gb"},
        "CPU 'lots' is not a quantity (like 2, 500m, 16Gi) (nothing was changed)": {"cpu": "lots"},
        "memory '16GB!' is not a quantity": {"memory": "16GB!"},
        "GPUs: must not be negative (nothing was changed)": {"gpus": -1},
        "GPUs: ask for whole GPUs or a MIG profile, not both": {"gpus": 1, "mig_profile": "1g.10gb"},
    }
    for expected, asked in cases.items():
        with pytest.raises(ActionError) as refused:
            await spaces.edit_resources(conn, NLP, "idle", readonly=False, store="notebooks", **asked)
        assert expected in str(refused.value) and refused.value.exit_code == 2
    with pytest.raises(ActionError, match=f"no space 'ghost' in namespace {NLP}"):
        await spaces.edit_resources(conn, NLP, "ghost", cpu="2", readonly=False, store="notebooks")
    assert {n: kubectl.json("get", "notebook", n, "-n", NLP)["metadata"]["resourceVersion"]
            for n in ("busy", "idle")} == versions, "nothing was sent"


async def test_a_notebook_changed_while_being_edited_is_a_conflict_not_an_overwrite() -> None:
    async with LocalApiServer() as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow-user"}})
        server.store.put({
            "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": "nb", "namespace": "kubeflow-user",
                         "annotations": {"kubeflow-resource-stopped": "2026-11-27T11:00:00Z"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "nb", "image": "jupyter-scipy:v1", "resources": {"requests": {"cpu": "1"}}}]}}}})

        async def someone_else_first(request, info) -> None:
            if request.method == "PUT":  # between hyperdesk's read and its update, another client changes the image
                server.store.patch("kubeflow.org/v1", "Notebook", "nb", {"spec": {"template": {"spec": {"containers": [
                    {"name": "nb", "image": "jupyter-scipy:v2", "resources": {"requests": {"cpu": "1"}}}]}}}},
                    "kubeflow-user")

        server.api.add_request_hook(someone_else_first)
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            with pytest.raises(ActionError) as refused:
                await spaces.edit_resources(conn, "kubeflow-user", "nb", cpu="4", readonly=False, store="notebooks")
            assert "space kubeflow-user/nb changed since it was read" in str(refused.value)
            assert str(refused.value).endswith("(nothing was changed; try again)")
            container = server.store.get("kubeflow.org/v1", "Notebook", "nb", "kubeflow-user")[
                "spec"]["template"]["spec"]["containers"][0]
            assert (container["image"], container["resources"]) == ("jupyter-scipy:v2", {"requests": {"cpu": "1"}})
        finally:
            await conn.close()


async def test_find_space_passes_over_a_kind_the_user_may_not_read() -> None:
    access = {"anonymous": False, "users": [
        {"name": "kate", "token": "kate-token", "rules": [
            {"verbs": ["get"], "apiGroups": ["kubeflow.org"], "resources": ["notebooks"]}]},
        {"name": "nobody", "token": "nobody-token", "rules": []},
    ]}
    async with LocalApiServer(access=access, user="kate") as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow-user"}})
        server.store.put({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                          "metadata": {"name": "nb", "namespace": "kubeflow-user"},
                          "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter:v1"}]}}}})
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            store, found = await spaces.find_space(conn, "kubeflow-user", "nb")
            assert (store, found["kind"]) == ("notebooks", "Notebook"), "workspaces answered 403: Notebooks were asked"
            with pytest.raises(ActionError, match="no space 'other' in namespace kubeflow-user"):
                await spaces.find_space(conn, "kubeflow-user", "other")
        finally:
            await conn.close()
    async with LocalApiServer(access=access, user="nobody") as server:
        conn = ClusterConnection([server.kubeconfig_path], None)
        try:
            with pytest.raises(ActionError) as refused:
                await spaces.find_space(conn, "kubeflow-user", "nb")
            assert str(refused.value).startswith("cannot read space kubeflow-user/nb: ") and "forbidden" in str(
                refused.value).lower()
            assert refused.value.exit_code == 2
        finally:
            await conn.close()


async def test_a_jupyter_server_refusing_its_status_without_a_token_does_not_turn_idle_times_off(tmp_path) -> None:
    """Through the service proxy, a real Jupyter Server with token auth answers /api/status with its own 403. That
    is not the user lacking `services/proxy` (a SelfSubjectAccessReview says which): that space's idle time is
    unknown, the other spaces are still asked, and the next round asks again."""
    import os
    import secrets
    import subprocess
    import sys

    from tests.plugins.ssh import free_port, wait_listening

    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list"], "apiGroups": ["workspace.jupyter.org"], "resources": ["*"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["services/proxy"], "namespaces": ["team-a"]}]},
    ]}
    port, home = free_port(), tmp_path / "jupyter-home"
    (home / "work").mkdir(parents=True)
    jupyter = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={secrets.token_hex(16)}",
         "--ServerApp.open_browser=False", f"--ServerApp.root_dir={home / 'work'}", "--ServerApp.allow_root=True"],
        env={**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
             "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(port, timeout=60, process=jupyter)
        async with LocalApiServer(access=access, user="alice") as server:
            server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
            for name in ("one", "two"):
                server.store.put({
                    "apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
                    "metadata": {"name": name, "namespace": "team-a"},
                    "spec": {"displayName": name, "desiredStatus": "Running"},
                    "status": {"conditions": [{"type": "Available", "status": "True", "reason": "ResourcesReady"}]}})
                server.store.create({"apiVersion": "v1", "kind": "Service",
                                     "metadata": {"name": f"workspace-{name}-service", "namespace": "team-a"},
                                     "spec": {"ports": [{"port": 8888}]}})
                server.proxies.register_service("team-a", f"workspace-{name}-service", 8888,
                                                f"http://127.0.0.1:{port}")
            proxied: list[int] = []

            async def record(request, info) -> None:
                if "/proxy/" in request.path:
                    proxied.append(1)

            server.api.add_request_hook(record)
            conn = ClusterConnection([server.kubeconfig_path], None)
            try:
                listed = await spaces.fetch_spaces(conn, "team-a", pods=False)
                with pytest.raises(ApiError) as refused:  # what the proxy answers: Jupyter's 403
                    await conn.request("GET", "/api/v1/namespaces/team-a/services/workspace-one-service:8888/proxy/"
                                              "api/status")
                assert refused.value.status == 403
                proxied.clear()
                assert await spaces.activities(conn, listed, parallel=1) == {}  # no ActivityForbidden
                assert await spaces.activities(conn, listed, parallel=1) == {}
                assert len(proxied) == 4, "every space, every round"
            finally:
                await conn.close()
    finally:
        jupyter.terminate()
        jupyter.wait(timeout=30)
