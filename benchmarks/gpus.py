"""The GPUs pane at scale: one refresh of a 500-node, 4,000-GPU cluster.

    .venv/bin/python benchmarks/gpus.py [--nodes 500] [--refreshes 6]

The embedded API server (its own thread) holds N GPU nodes of 8 H100s, a dcgm-exporter pod on each, served through
`pods/proxy` with the simulator's exposition text (the 12 default fields per GPU, a training pod holding each GPU
on 80% of the nodes), and the pods. In this process, with the real widgets headless, one refresh is what the pane
does every `gpus.poll_seconds`:

- scrape: every exporter through the API server's proxy over real sockets (16 at a time), with the official client's
  transport and the user's kubeconfig;
- parse + join: the exposition text into series, joined to nodes, GPUs and pods, with history and idle clocks;
- render: the pane's rows (summary, nodes collapsed as they open on a cluster this size) into its table.

CPU is this thread's (`time.thread_time`) plus the collector's parse+join in its worker thread
(`build_cpu_seconds`), so the API server's own work in its thread is not counted; wall time is
printed too. The peer, in the same run: `prometheus_client`'s parser reading the same texts whole
(`text_string_to_metric_families`), which is what a naive scraper does each poll. Target: under 1 s of CPU per
refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402

from app.cluster.connection import ClusterConnection  # noqa: E402
from app.demo.apiserver import LocalApiServer  # noqa: E402
from app.demo.sim.gpus import exposition, node_inventory  # noqa: E402
from app.metrics.collector import GpuCollector  # noqa: E402
from app.screens.gpus import GpusPane  # noqa: E402

NAMESPACE = "gpu-operator"
TEAMS = ("hyperpod-ns-research", "hyperpod-ns-nlp", "hyperpod-ns-vision")


def cluster(nodes: int) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    """Nodes, pods (exporters and workloads), and two exposition texts per node (alternated between polls)."""
    node_objects, pods, texts = [], [], {}
    for i in range(nodes):
        name = f"hyperpod-i-{i:017x}"
        labels = {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                  "nvidia.com/gpu.memory": "81559", "node.kubernetes.io/instance-type": "ml.p5.48xlarge",
                  "sagemaker.amazonaws.com/node-health-status": "Schedulable"}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                "status": {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": "8"}}}
        node_objects.append(node)
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"nvidia-dcgm-exporter-{i:05d}", "namespace": NAMESPACE,
                                  "labels": {"app": "nvidia-dcgm-exporter"}},
                     "spec": {"nodeName": name, "containers": [{"name": "exporter", "image": "dcgm-exporter"}]},
                     "status": {"phase": "Running"}})
        inventory = node_inventory(node)
        assert inventory is not None
        activity: dict[tuple[str, str], str] = {}
        if i % 5:
            team = TEAMS[i % 3]
            pod = f"pretrain-{i // 2:04d}-worker-{i % 2}"
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pod, "namespace": team, "labels": {"HPJob": f"pretrain-{i // 2:04d}"}},
                         "spec": {"nodeName": name, "containers": [{"name": "pytorch", "image": "pytorch",
                                                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
                         "status": {"phase": "Running"}})
            for device in inventory.devices:
                device.holder = (team, pod, "pytorch")
            activity[(team, pod)] = "train"
        texts[name] = [exposition(inventory, activity, 1, t) for t in (10.0, 12.0)]
    return node_objects, pods, texts


class BenchApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GpusPane()


async def run(nodes: int, refreshes: int) -> None:
    node_objects, pods, texts = cluster(nodes)
    polls = {"n": 0}

    def handler(node: str):
        async def metrics(request: web.Request, path: str) -> web.StreamResponse:
            variant = texts[node][polls["n"] % 2]
            return web.Response(text=variant, content_type="text/plain")
        return metrics

    server = LocalApiServer.start_in_thread()
    with server as handle:
        store = handle.server.store
        for namespace in (NAMESPACE, *TEAMS):
            handle.call(store.put, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for obj in node_objects + pods:
            handle.call(store.put, obj)
        for obj in pods:
            if obj["metadata"]["namespace"] == NAMESPACE:
                handle.call(handle.server.proxies.register_pod, NAMESPACE, obj["metadata"]["name"], 9400,
                            handler(obj["spec"]["nodeName"]))
        total_bytes = sum(len(t[0]) for t in texts.values())
        print(f"cluster: {nodes} nodes, {nodes * 8} GPUs, {len(pods)} pods, "
              f"{total_bytes / 1e6:.1f} MB of exposition text per poll")

        connection = ClusterConnection([handle.kubeconfig_path], None)
        listed_nodes = (await connection.request("GET", "/api/v1/nodes"))["items"]
        listed_pods = (await connection.request("GET", "/api/v1/pods"))["items"]
        collector = GpuCollector()
        app = BenchApp()
        rows: list[tuple[float, float, float, float]] = []
        async with app.run_test(size=(200, 60)) as pilot:
            pane = app.query_one(GpusPane)
            for n in range(refreshes):
                polls["n"] = n
                wall, cpu = time.perf_counter(), time.thread_time()
                view = await collector.refresh(connection, listed_nodes, listed_pods)
                refresh_wall = time.perf_counter() - wall
                refresh_cpu = time.thread_time() - cpu + collector.build_cpu_seconds  # + its worker thread
                cpu = time.thread_time()
                pane.show_view(view)
                await pilot.pause()  # the frame is painted
                render_cpu = time.thread_time() - cpu
                rows.append((refresh_cpu, render_cpu, refresh_cpu + render_cpu, refresh_wall))
                assert len(view.devices) == nodes * 8 and all(d.util_percent is not None for d in view.devices)
                assert pane.table.row_count == nodes  # collapsed: one row per node
            # expanded: every GPU a row
            cpu = time.thread_time()
            pane.action_toggle_all()
            await pilot.pause()
            expand_cpu = time.thread_time() - cpu
            assert pane.table.row_count == nodes * 9
            expanded: list[float] = []
            for n in range(refreshes, refreshes + 3):
                polls["n"] = n
                cpu = time.thread_time()
                pane.show_view(await collector.refresh(connection, listed_nodes, listed_pods))
                await pilot.pause()
                expanded.append(time.thread_time() - cpu + collector.build_cpu_seconds)
        await connection.close()

        # the peer: prometheus_client's parser over the same texts, as a naive poll would parse them
        from prometheus_client.parser import text_string_to_metric_families

        cpu = time.thread_time()
        samples = 0
        for variant in texts.values():
            for family in text_string_to_metric_families(variant[0]):
                samples += len(family.samples)
        peer_cpu = time.thread_time() - cpu

    first, steady = rows[0], rows[1:]
    print(f"first refresh : scrape+parse+join {first[0]:.3f} s CPU, render {first[1]:.3f} s CPU, "
          f"total {first[2]:.3f} s CPU ({first[3]:.3f} s wall for the scrape)")
    if steady:
        med = [statistics.median(r[i] for r in steady) for i in range(4)]
        print(f"steady refresh: scrape+parse+join {med[0]:.3f} s CPU, render {med[1]:.3f} s CPU, "
              f"total {med[2]:.3f} s CPU ({med[3]:.3f} s wall for the scrape)  [median of {len(steady)}]")
    print(f"expand all ({nodes * 9} rows): {expand_cpu:.3f} s CPU once; then a refresh with every GPU a row: "
          f"{statistics.median(expanded):.3f} s CPU [median of {len(expanded)}]")
    print(f"peer: prometheus_client parsing the same {samples} samples whole: {peer_cpu:.3f} s CPU "
          f"(parse alone, no scrape, join or render)")
    best = statistics.median(r[2] for r in steady) if steady else first[2]
    print(f"ratio: peer parse / our whole refresh = {peer_cpu / best:.2f}x; target < 1 s CPU per refresh: "
          f"{'met' if best < 1.0 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--refreshes", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args.nodes, args.refreshes))


if __name__ == "__main__":
    main()
