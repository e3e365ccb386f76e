"""The collector's memory between refreshes, and what it does when a scrape fails or pods are scoped.

Pure parts (`GpuCollector._build`) over the simulator's own exposition text; the scoped-user cases against the
embedded API server with RBAC rules."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.demo.sim.gpus import exposition, node_inventory
from app.metrics.collector import FORGET_SECONDS, STALE_GRACE_SECONDS, GpuCollector, GpuView
from tests.plugins.gpus import add_objects, collect, gpu_node, gpu_pod

TEAM = "hyperpod-ns-nlp"
NODE = gpu_node("gpu-a", count=2)
NOTEBOOK = gpu_pod("nb-0", TEAM, "gpu-a", {"nvidia.com/gpu": 1},
                   labels={"workspace.jupyter.org/workspace-name": "nb"})
EXPORTERS = {"gpu-a": ("gpu-operator", "nvidia-dcgm-exporter-abcde")}


def _text(t: float) -> str:
    inventory = node_inventory(NODE)
    inventory.devices[0].holder = (TEAM, "nb-0", "main")
    return exposition(inventory, {(TEAM, "nb-0"): "idle"}, seed=1, t=t)


def _build(collector: GpuCollector, now: float, ok: bool) -> GpuView:
    view = GpuView()
    texts = {"gpu-a": _text(now)} if ok else {}
    failures = {} if ok else {"gpu-a": ("error", "gpu-operator/nvidia-dcgm-exporter-abcde did not answer within 5 s")}
    collector._build(view, [NODE], [NOTEBOOK], EXPORTERS, texts, failures, now)
    return view


def test_a_failed_scrape_keeps_the_last_figures_marked_stale_then_lets_them_go():
    collector = GpuCollector(poll_seconds=2.0)
    _build(collector, 1000.0, ok=True)
    first = _build(collector, 1002.0, ok=True)
    held = next(d for d in first.devices if d.holder)
    assert held.idle_seconds == 2.0 and len(held.history) == 2

    failed = _build(collector, 1004.0, ok=False)
    [node] = failed.nodes
    assert node.metrics_state == "stale" and node.stale_seconds == 2.0
    kept = next(d for d in node.devices if d.holder)
    assert kept.util_percent is not None and len(kept.history) == 2 and kept.idle_seconds == 2.0
    assert "scrape failed on 1 node" in failed.state_line()

    back = _build(collector, 1006.0, ok=True)  # one missed poll: the sparkline and the idle clock go on
    held = next(d for d in back.devices if d.holder)
    assert len(held.history) == 3 and held.idle_seconds == 6.0

    gone = _build(collector, 1006.0 + STALE_GRACE_SECONDS + 1, ok=False)
    assert gone.nodes[0].metrics_state == "error" and all(d.util_percent is None for d in gone.devices)
    later = _build(collector, 1006.0 + FORGET_SECONDS + 1, ok=True)
    held = next(d for d in later.devices if d.holder)
    assert len(held.history) == 1 and held.idle_seconds is None  # forgotten: starts afresh


def test_a_gap_longer_than_two_polls_restarts_the_idle_clock():
    collector = GpuCollector(poll_seconds=2.0, timeout=5.0)
    for t in (0.0, 2.0, 4.0):
        view = _build(collector, 1000.0 + t, ok=True)
    assert next(d for d in view.devices if d.holder).idle_seconds == 4.0
    view = _build(collector, 1004.0 + 60, ok=True)  # the pane was hidden for a minute
    assert next(d for d in view.devices if d.holder).idle_seconds is None
    view = _build(collector, 1004.0 + 62, ok=True)
    assert next(d for d in view.devices if d.holder).idle_seconds == 2.0


def _team_access(proxy: bool = True) -> dict:
    rules = [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"], "namespaces": [TEAM]},
             {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]}]
    if proxy:
        rules.append({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/proxy"],
                      "namespaces": ["gpu-operator"]})
    return {"anonymous": False, "users": [
        {"name": "admin", "token": "admin-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "team", "token": "team-token", "rules": rules}]}


@pytest.fixture
def team_cluster(demo_cluster):
    handle = demo_cluster(scenario="bare", seed=3, mlflow=False, access=_team_access())
    add_objects(handle, gpu_node("gpu-a", count=2), gpu_node("gpu-b", count=2))
    add_objects(handle, gpu_pod("mine", TEAM, "gpu-a", {"nvidia.com/gpu": 1}),
                gpu_pod("theirs", "hyperpod-ns-vision", "gpu-b", {"nvidia.com/gpu": 2}))
    return handle


def test_a_namespace_scoped_pane_still_sees_every_holder_when_pods_may_be_listed(team_cluster):
    view = collect(team_cluster, namespace=TEAM)  # admin: the pods of TEAM at hand, the rest listed
    holders = sorted(d.holder.pod for d in view.devices if d.holder and d.node in ("gpu-a", "gpu-b"))
    assert holders == ["mine", "theirs", "theirs"]
    assert view.pods_note == "" and view.exporters == len(view.nodes) > 2 and "allocation of" not in view.state_line()


def test_a_namespace_scoped_user_keeps_the_known_exporters_and_says_what_it_lacks(team_cluster):
    collector = GpuCollector()
    known = collect(team_cluster, collector=collector, namespace=TEAM).exporters  # admin found them
    assert known > 2
    team = team_cluster.call(team_cluster.cluster.server.kubeconfig_for, "team")
    view = collect(team_cluster, kubeconfig=team, collector=collector, namespace=TEAM)
    line = view.state_line()
    assert f"allocation of namespace {TEAM} only" in line
    assert view.forbidden == ""  # not mistaken for a pods/proxy refusal
    assert view.exporters == known and all(d.util_percent is not None for d in view.devices)  # still scraped
    # the exporter's labels still name the other team's pod (as a bare pod: its owner is not visible)
    assert sorted(d.holder.pod for d in view.devices if d.holder) == ["mine", "theirs", "theirs"]

    fresh = collect(team_cluster, kubeconfig=team, collector=GpuCollector(), namespace=TEAM)
    line = fresh.state_line()
    assert "needs list on pods in all namespaces" in line and "pods/proxy" not in line
    assert fresh.discovery_forbidden and fresh.exporters == 0


def test_a_scrape_404_looks_for_the_exporters_again(team_cluster):
    collector = GpuCollector()
    collect(team_cluster, collector=collector, namespace=TEAM)
    collector._exporters["gpu-a"] = ("gpu-operator", "nvidia-dcgm-exporter-gone")
    collector._next_discovery = float("inf")
    team = team_cluster.call(team_cluster.cluster.server.kubeconfig_for, "team")
    view = collect(team_cluster, kubeconfig=team, collector=collector, namespace=TEAM)
    node = next(n for n in view.nodes if n.name == "gpu-a")
    assert node.metrics_state == "stale" and ("404" in node.metrics_error or "not found" in node.metrics_error.lower())
    assert collector._next_discovery == 0.0 and "gpu-a" not in collector._exporters


def test_a_time_sliced_gpu_shows_every_pod_sharing_it():
    from app.metrics.collector import join
    from app.metrics.dcgm import parse
    from app.metrics.model import NodeGpus

    inventory = node_inventory(NODE)
    base = exposition(inventory, {}, seed=1, t=0.0)
    shared = "\n".join(line.replace('namespace="",pod=""', f'namespace="{TEAM}",pod="{pod}"')
                       for pod in ("nb-0", "nb-1") for line in base.splitlines()
                       if line.startswith("DCGM_") and 'gpu="0"' in line)
    [device] = join(NodeGpus("gpu-a"), parse(shared).series, {f"{TEAM}/nb-0": NOTEBOOK})
    assert (device.holder.pod, device.holder.kind) == ("nb-0", "Workspace")
    assert [h.pod for h in device.sharers] == ["nb-1"]
    assert device.as_dict()["shared_with"] == [f"{TEAM}/nb-1"]


def test_a_failed_history_query_is_not_mistaken_for_missing_figures():
    from app.metrics.model import NodeGpus

    view = GpuView(nodes=[NodeGpus("n", metrics_state="ok")], exporters=1, source="prometheus",
                   history_error="Prometheus at http://p:9090 answered HTTP 503: overloaded")
    assert view.state_line() == "no history: Prometheus at http://p:9090 answered HTTP 503: overloaded"


def test_one_nodes_403_does_not_mark_the_others_forbidden():
    """Exporters in two namespaces, proxying allowed in one: the refused node says forbidden, the one that timed
    out says so, the one read keeps its figures; the summary names both troubles, not "allocation only"."""
    nodes = [gpu_node(name, count=2) for name in ("gpu-a", "gpu-b", "gpu-c")]
    exporters = {"gpu-a": ("gpu-operator", "dcgm-a"), "gpu-b": ("monitoring", "dcgm-b"), "gpu-c": ("gpu-operator", "dcgm-c")}
    refusal = 'pods "dcgm-b" is forbidden: User "team" cannot get resource "pods/proxy" in namespace "monitoring"'
    view = GpuView(forbidden=refusal)
    failures = {"gpu-b": ("forbidden", refusal), "gpu-c": ("error", "gpu-operator/dcgm-c did not answer within 5 s")}
    GpuCollector()._build(view, nodes, [], exporters, {"gpu-a": _text(1000.0)}, failures, 1000.0)
    states = {n.name: n.metrics_state for n in view.nodes}
    assert states == {"gpu-a": "ok", "gpu-b": "forbidden", "gpu-c": "error"}
    line = view.state_line()
    assert "metrics forbidden on 1 node" in line and "scrape failed on 1 node: gpu-operator/dcgm-c did not answer" in line
    assert "allocation only" not in line


def test_prometheus_history_starts_an_idle_clock_no_earlier_than_its_holder():
    """A GPU idle (and free) for 40 minutes, given to a pod a minute ago: idle for a minute, not 40, and not waste."""
    from app.metrics.collector import is_waste
    from app.metrics.dcgm import parse

    now = 1_800_000_000.0
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    fresh = {**NOTEBOOK, "status": {"phase": "Running", "startTime": stamp(now - 60)}}
    old = {**NOTEBOOK, "status": {"phase": "Running", "startTime": stamp(now - 3 * 3600)}}
    series = parse(_text(now)).series
    held = next(s for s in series if s.pod)
    history = {("gpu-a", held.uuid, ""): [(now - 2400 + 60 * i, 0.0) for i in range(40)]}
    for pod, idle in ((fresh, 60.0), (old, 2400.0)):
        view = GpuView()
        GpuCollector(prometheus=object(), idle_minutes=30)._build_prometheus(view, [NODE], [pod], series, history, now)
        device = next(d for d in view.devices if d.holder)
        assert device.idle_seconds == pytest.approx(idle, abs=1)
        assert is_waste(device, 30) == (idle >= 1800)


def test_a_round_of_scrapes_ends_at_its_deadline(hyperpod_cluster, tmp_path):
    """Exporters that do not answer (a proxy holding every request): the round ends at its deadline, however long
    one scrape may wait, with each unanswered node marked; when they answer again, the figures come back."""
    import yaml

    from tests.plugins.mlflow import TcpProxy

    port = int(hyperpod_cluster.url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(port)
    try:
        config = yaml.safe_load(hyperpod_cluster.kubeconfig_path.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = proxy.uri
        through_proxy = tmp_path / "kubeconfig"
        through_proxy.write_text(yaml.safe_dump(config))
        collector = GpuCollector(timeout=30.0, deadline=1.0)
        proxy.hold()

        async def one_round() -> tuple[GpuView, float]:
            from app.cluster.connection import ClusterConnection

            direct = ClusterConnection([hyperpod_cluster.kubeconfig_path], None)
            slow = ClusterConnection([through_proxy], None)
            try:
                nodes = (await direct.request("GET", "/api/v1/nodes"))["items"]
                pods = (await direct.request("GET", "/api/v1/pods"))["items"]
                started = time.monotonic()
                view = await collector.refresh(slow, nodes, pods)
                return view, time.monotonic() - started
            finally:
                await direct.close()
                await slow.close()

        view, took = asyncio.run(one_round())
        assert took < 5.0
        assert {n.metrics_state for n in view.nodes} == {"error"}
        assert all("no answer this round" in n.metrics_error for n in view.nodes)
        assert f"scrape failed on {len(view.nodes)} nodes: " in view.state_line()
        proxy.up()
        view, _ = asyncio.run(one_round())
        assert {n.metrics_state for n in view.nodes} == {"ok"}
    finally:
        proxy.close()
