"""`hyperdesk get gpus`, run as a user runs it: a subprocess against the simulated cluster's kubeconfig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.tui import closed_port, write_kubeconfig

pytestmark = pytest.mark.usefixtures("isolated_home")

FIELDS = {"node", "gpu", "uuid", "model", "mig_profile", "util_percent", "mem_used_mib", "mem_total_mib", "power_w",
          "temp_c", "namespace", "pod", "holder_kind", "holder_name"}


def hyperdesk(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}
    result = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **extra})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_json_has_one_object_per_gpu_or_mig_slice(hyperpod_cluster):
    result = hyperdesk("get", "gpus", "-o", "json", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert all(FIELDS <= set(item) for item in items)
    whole = [i for i in items if i["mig_profile"] is None]
    slices = [i for i in items if i["mig_profile"] is not None]
    assert len(whole) == 4 * 8 + 2 * 4  # four p5 nodes, two g5 nodes
    assert len(slices) == 8 * 7 + 8 * (2 + 1 + 1)  # all-1g.10gb and the mixed layout
    pretrain = [i for i in items if i["holder_name"] == "llama3-70b-pretrain"]
    assert len(pretrain) == 16 and all(i["holder_kind"] == "HyperPodPyTorchJob" for i in pretrain)
    assert all(i["util_percent"] > 50 and i["mem_total_mib"] == 81559 for i in pretrain)
    assert len({(i["uuid"], i["gpu_instance_id"]) for i in items}) == len(items)
    assert all(i["uuid"].startswith("GPU-") for i in items)  # MIG series carry their parent GPU's UUID
    assert all(i["idle_seconds"] is None for i in items)  # one reading cannot say how long a GPU has idled


def test_idle_lists_held_gpus_under_the_threshold(hyperpod_cluster):
    result = hyperdesk("get", "gpus", "--idle", "-o", "json", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert {(i["holder_kind"], i["holder_name"]) for i in items} == {("Workspace", "alice-notebook"),
                                                                     ("Workspace", "bob-mig-lab")}
    assert all(i["util_percent"] <= 5 for i in items)


def test_the_table_names_the_holder(hyperpod_cluster):
    result = hyperdesk("get", "gpu", "--idle", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NODE", "GPU", "MIG", "MODEL", "UTIL", "MEMORY", "POWER", "TEMP", "XID", "HOLDER"]
    assert any("(Workspace alice-notebook)" in row and "<none>" in row for row in rows)  # whole GPU: no MIG
    assert any("2g.20gb" in row and "(Workspace bob-mig-lab)" in row for row in rows)


def _nvml_works() -> bool:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no library, no driver, no GPU
        return False
    return True


def test_nvml_reads_the_local_gpus_or_says_clearly_why_not():
    result = hyperdesk("get", "gpus", "--source", "nvml", "-o", "json")
    if not _nvml_works():
        assert result.returncode == 1
        assert result.stderr.startswith("hyperdesk: error: NVML")
        assert result.stdout == ""
        return
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert items and all(FIELDS <= set(item) for item in items)
    assert all(i["uuid"] and i["model"] for i in items)


def test_an_unreachable_cluster_and_bad_usage(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kc", {"gone": f"http://127.0.0.1:{closed_port()}"}, "gone")
    result = hyperdesk("get", "gpus", kubeconfig=kubeconfig)
    assert result.returncode == 1 and "cannot reach" in result.stderr
    result = hyperdesk("get", "gpus", "--source", "smoke-signals", kubeconfig=kubeconfig)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_prometheus_source_needs_its_url(hyperpod_cluster):
    result = hyperdesk("get", "gpus", "--source", "prometheus", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 2 and "gpus.prometheus_url" in result.stderr


def test_without_pods_proxy_rights_the_allocation_prints_with_a_warning(demo_cluster):
    from tests.plugins.gpus import add_objects, gpu_pod
    from tests.plugins.gpus import VIEWER, first_h100

    handle = demo_cluster(scenario="bare", seed=3, mlflow=False, access=VIEWER)
    add_objects(handle, gpu_pod("held", "hyperpod-ns-nlp", first_h100(handle), {"nvidia.com/gpu": 3}))
    viewer = handle.call(handle.cluster.server.kubeconfig_for, "viewer")
    result = hyperdesk("get", "gpus", "-o", "json", kubeconfig=viewer)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("hyperdesk: warning: metrics forbidden:")
    items = json.loads(result.stdout)
    assert [i["pod"] for i in items if i["pod"]] == ["held"] * 3
    assert all(i["util_percent"] is None and i["uuid"] is None for i in items)


def test_a_namespace_scoped_user_gets_its_namespaces_holders_and_is_told_so(demo_cluster):
    """A HyperPod team user may list the pods of its own namespace only: `get gpus -n TEAM` lists that namespace's
    pods instead of failing on the cluster-wide list, and says the holders cover that namespace."""
    from tests.plugins.gpus import add_objects, gpu_node, gpu_pod
    from tests.test_metrics_collector import TEAM, _team_access

    handle = demo_cluster(scenario="bare", seed=3, mlflow=False, access=_team_access())
    add_objects(handle, gpu_node("gpu-a", count=2), gpu_node("gpu-b", count=2))
    add_objects(handle, gpu_pod("mine", TEAM, "gpu-a", {"nvidia.com/gpu": 1}),
                gpu_pod("theirs", "hyperpod-ns-vision", "gpu-b", {"nvidia.com/gpu": 2}))
    team = handle.call(handle.cluster.server.kubeconfig_for, "team")
    result = hyperdesk("get", "gpus", "-n", TEAM, "-o", "json", kubeconfig=team)
    assert result.returncode == 0, result.stderr
    assert f"allocation of namespace {TEAM} only" in result.stderr
    items = json.loads(result.stdout)
    assert [i["pod"] for i in items if i["node"] == "gpu-a" and i["pod"]] == ["mine"]
    assert {i["node"] for i in items} >= {"gpu-a", "gpu-b"}
    result = hyperdesk("get", "gpus", "-A", kubeconfig=team)  # every namespace asked for: the refusal stands
    assert result.returncode == 1 and "forbidden" in result.stderr
