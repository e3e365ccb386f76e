"""The GPU view against the simulated cluster's dcgm-exporter pods, scraped through the API server's `pods/proxy`
with the official client's transport: whole GPUs, MIG under both strategies, both generations of label names, a
node without an exporter, a user without `pods/proxy`, and an idle notebook holding a whole GPU."""

from __future__ import annotations

import pytest

from app.metrics.collector import GpuCollector, is_waste
from app.metrics.summary import summarize
from tests.plugins.gpus import VIEWER, add_objects, collect, first_h100, gpu_node, gpu_pod

TEAM = "hyperpod-ns-nlp"


@pytest.fixture(scope="module")
def hyperpod_view(hyperpod_cluster):
    return collect(hyperpod_cluster)


def _node_of(kubectl, namespace: str, pod: str) -> str:
    return kubectl.json("get", "pod", pod, "-n", namespace)["spec"]["nodeName"]


def test_whole_gpus_carry_live_figures_and_their_holders(hyperpod_cluster, hyperpod_view, demo_kubectl):
    kubectl = demo_kubectl(hyperpod_cluster)
    training = [d for d in hyperpod_view.devices if d.holder and d.holder.kind == "HyperPodPyTorchJob"]
    assert len(training) == 16  # llama3-70b-pretrain: 2 nodes x 8 GPUs
    assert {d.holder.name for d in training} == {"llama3-70b-pretrain"}
    for device in training:
        assert device.mig_profile is None and device.uuid.startswith("GPU-")
        assert device.util_percent > 50 and device.mem_total_mib == 81559
        assert 0 < device.mem_used_mib < device.mem_total_mib and device.power_w > 100 and device.temp_c > 30
        assert device.node == _node_of(kubectl, device.holder.namespace, device.holder.pod)
    assert hyperpod_view.state_line() == ""
    assert hyperpod_view.exporters == len(hyperpod_view.nodes) == 8


def test_xid_errors_and_node_health(hyperpod_view):
    broken = next(n for n in hyperpod_view.nodes if n.health == "UnschedulablePendingReplacement")
    assert "XID79-GPUFallenOffBus" in broken.badges and "DeepHealthCheckFailed" in broken.badges
    assert {d.gpu: d.xid for d in broken.devices}[3] == 79
    assert all(not n.badges for n in hyperpod_view.nodes if n is not broken)


def test_mixed_strategy_mig_slices_use_the_graphics_engine_activity(hyperpod_cluster, hyperpod_view, demo_kubectl):
    kubectl = demo_kubectl(hyperpod_cluster)
    mixed = [n for n in hyperpod_view.nodes if n.mig_strategy == "mixed"]
    assert len(mixed) == 2
    for node in mixed:
        per_profile: dict[str, int] = {}
        for device in node.devices:
            per_profile[device.mig_profile] = per_profile.get(device.mig_profile, 0) + 1
            assert device.uuid.startswith("GPU-") and device.gi_id is not None  # the parent GPU's UUID
        assert len({(d.uuid, d.gi_id) for d in node.devices}) == len(node.devices)
        assert {f"nvidia.com/mig-{p}": c for p, c in per_profile.items()} == {k: v for k, v in node.capacity.items() if v}
    slices = [d for d in hyperpod_view.devices if d.holder and d.holder.kind == "JobSet"]
    assert len(slices) == 2 and all(d.mig_profile == "3g.40gb" for d in slices)
    assert all(d.util_percent > 50 for d in slices)  # the JobSet trains on its slices
    # ... though the exporter's DCGM_FI_DEV_GPU_UTIL reads 0 there, as on real MIG hardware
    node = slices[0].node
    exporter = next(n.exporter for n in hyperpod_view.nodes if n.name == node)
    namespace, pod = exporter.split("/")
    text = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:9400/proxy/metrics")
    line = next(x for x in text.splitlines()
                if x.startswith("DCGM_FI_DEV_GPU_UTIL{") and f'pod="{slices[0].holder.pod}"' in x)
    assert line.endswith(" 0")
    rows = {(r.product, r.profile): r for r in summarize(hyperpod_view.nodes, 5.0)}
    assert rows[("NVIDIA H100 80GB HBM3", "3g.40gb")].in_use == 2
    assert rows[("NVIDIA H100 80GB HBM3", "1g.10gb")].capacity == 72


def test_an_idle_notebook_on_a_whole_gpu_becomes_waste(hyperpod_cluster):
    collector = GpuCollector(idle_threshold_percent=5.0, poll_seconds=16 * 60)  # 31 min is less than 2 polls
    start = 1_000_000.0
    first = collect(hyperpod_cluster, collector=collector, now=start)
    assert next(d for d in first.devices if d.holder and d.holder.name == "alice-notebook").idle_seconds is None
    view = collect(hyperpod_cluster, collector=collector, now=start + 31 * 60)
    notebook = next(d for d in view.devices if d.holder and d.holder.name == "alice-notebook")
    assert notebook.holder.kind == "Workspace" and notebook.mig_profile is None
    assert notebook.util_percent <= 5.0 and notebook.idle_seconds == 31 * 60
    waste = [d for d in view.devices if is_waste(d, 30)]
    assert notebook in waste
    assert all(d.holder.kind in ("Workspace", "Pod") for d in waste)  # training GPUs are busy, never waste
    assert not any(is_waste(d, 30) for d in view.devices if d.holder is None)
    assert len(notebook.history) == 2
    # unseen for more than two polls (the pane was hidden): what it did meanwhile is unknown, the clock restarts
    later = collect(hyperpod_cluster, collector=collector, now=start + 31 * 60 + 40 * 60)
    again = next(d for d in later.devices if d.holder and d.holder.name == "alice-notebook")
    assert again.idle_seconds is None and len(again.history) == 3


def test_single_strategy_old_and_new_labels_and_a_node_without_exporter(bare_cluster, demo_kubectl):
    add_objects(
        bare_cluster,
        gpu_node("gpu-single", strategy="single", mig_config="all-1g.10gb", label_style="new"),
        gpu_node("gpu-old", count=4, label_style="old"),
        gpu_node("gpu-new", count=4, label_style="new"),
        gpu_node("gpu-dark", count=4, exporter=False),
    )
    add_objects(
        bare_cluster,
        gpu_pod("sweep-0", TEAM, "gpu-single", {"nvidia.com/gpu": 2}, labels={"job-name": "sweep"}),
        gpu_pod("old-0", TEAM, "gpu-old", {"nvidia.com/gpu": 1}),
        gpu_pod("new-0", TEAM, "gpu-new", {"nvidia.com/gpu": 3}),
        gpu_pod("dark-0", TEAM, "gpu-dark", {"nvidia.com/gpu": 2}, labels={"workspace.jupyter.org/workspace-name": "w"}),
    )
    view = collect(bare_cluster)
    nodes = {n.name: n for n in view.nodes}

    single = nodes["gpu-single"]
    assert single.mig_strategy == "single" and single.metrics_state == "ok"
    assert len(single.devices) == 56 and {d.mig_profile for d in single.devices} == {"1g.10gb"}
    held = [d for d in single.devices if d.holder]
    assert [(d.holder.pod, d.holder.kind, d.holder.name) for d in held] == [("sweep-0", "Job", "sweep")] * 2
    assert all(d.uuid.startswith("GPU-") for d in held)
    assert len({(d.uuid, d.gi_id) for d in single.devices}) == 56
    [row] = summarize([single], 5.0)
    assert (row.product, row.profile, row.capacity, row.allocated, row.idle_held) == (
        "NVIDIA H100 80GB HBM3", "1g.10gb", 56, 2, 2)

    kubectl = demo_kubectl(bare_cluster)
    for name, pod, count, marks in (("gpu-old", "old-0", 1, ('Hostname="gpu-old"', 'pod_name="old-0"')),
                                    ("gpu-new", "new-0", 3, ('hostname="gpu-new"', 'pod="new-0"'))):
        node = nodes[name]
        namespace, exporter = node.exporter.split("/")
        text = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{exporter}:9400/proxy/metrics")
        assert all(mark in text for mark in marks)
        assert node.metrics_state == "ok" and len(node.devices) == 4
        assert [d.holder.pod for d in node.devices if d.holder] == [pod] * count
        assert all(d.util_percent is not None for d in node.devices)

    dark = nodes["gpu-dark"]
    assert dark.metrics_state == "no-exporter" and dark.exporter is None
    assert len(dark.devices) == 4 and all(d.util_percent is None for d in dark.devices)
    assert [(d.holder.pod, d.holder.kind) for d in dark.devices if d.holder] == [("dark-0", "Workspace")] * 2
    assert "no dcgm-exporter on 1 node" in view.state_line()


def test_forbidden_proxy_access_keeps_the_allocation(demo_cluster):
    handle = demo_cluster(scenario="bare", seed=3, mlflow=False, access=VIEWER)
    add_objects(handle, gpu_pod("held", TEAM, first_h100(handle), {"nvidia.com/gpu": 2}))
    viewer = handle.call(handle.cluster.server.kubeconfig_for, "viewer")
    view = collect(handle, kubeconfig=viewer)
    assert "forbidden" in view.forbidden.lower()
    assert view.state_line().startswith("metrics forbidden:")
    assert all(n.metrics_state == "forbidden" for n in view.nodes)
    assert [d.holder.pod for d in view.devices if d.holder] == ["held", "held"]
    assert all(d.util_percent is None for d in view.devices)
    admin = collect(handle)  # the same cluster for a user who may proxy: live figures
    assert admin.forbidden == "" and all(d.util_percent is not None for d in admin.devices)
