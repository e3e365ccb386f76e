"""The watch layer at scale, against the embedded API server, with kubectl as the peer in the same run.

    .venv/bin/python benchmarks/watch.py                 # 20,000 pods on 500 nodes, 2,000 workloads, 2,000 jobs
    .venv/bin/python benchmarks/watch.py --pods 100000   # how cost grows

The server runs in a child process (its own interpreter, so it does not share this process's GIL), loaded
in-process for speed. This process then measures what hyperdesk does:

- initial sync of the pod store, next to `kubectl get pods -A -o name` against the same server, and their ratio;
- resident memory of this whole process after the sync (target < 250 MB at 20,000 pods);
- sustained watch events applied per second (target >= 20,000/s);
- a 10,000-event burst: how many coalesced deliveries reach a subscriber per store per second (target <= 10).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------------------- server process

def pod(i: int, nodes: int) -> dict:
    team = f"hyperpod-ns-team-{'abc'[i % 3]}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"train-{i:06d}", "namespace": team,
                     "labels": {"app": "trainer", "HPJob": f"job-{i // 10}", "kueue.x-k8s.io/queue-name": "lq"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 400 + "}"}},
        "spec": {"nodeName": f"node-{i % nodes:04d}", "restartPolicy": "Never",
                 "containers": [{"name": "pytorch-job-container", "image": "pytorch/pytorch:2.5.1-cuda12.4",
                                 "command": ["torchrun", "--nproc-per-node=8", "train.py"],
                                 "env": [{"name": f"VAR_{k}", "value": "v" * 20} for k in range(8)],
                                 "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "64Gi"},
                                               "limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "startTime": "2026-11-27T10:00:00Z",
                   "containerStatuses": [{"name": "pytorch-job-container", "ready": True, "restartCount": 0,
                                          "image": "pytorch/pytorch:2.5.1-cuda12.4",
                                          "state": {"running": {"startedAt": "2026-11-27T10:00:05Z"}}}]},
    }


def serve(pods: int, nodes: int, workloads: int, jobs: int) -> None:
    from app.demo.apiserver import LocalApiServer

    async def main() -> None:
        async with LocalApiServer(history_size=200_000) as server:
            store = server.store
            for team in "abc":
                store.create({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": f"hyperpod-ns-team-{team}"}})
            for n in range(nodes):
                store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{n:04d}"},
                              "status": {"capacity": {"nvidia.com/gpu": "8"}}})
            for i in range(pods):
                store.create(pod(i, nodes))
            for i in range(workloads):
                store.create({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
                              "metadata": {"name": f"wl-{i:05d}", "namespace": "hyperpod-ns-team-a"},
                              "spec": {"queueName": "lq", "podSets": [{"name": "main", "count": 2, "template": {
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}]}})
            for i in range(jobs):
                store.create({"apiVersion": "batch/v1", "kind": "Job",
                              "metadata": {"name": f"job-{i:05d}", "namespace": "hyperpod-ns-team-b"},
                              "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                             "containers": [{"name": "c", "image": "x"}]}}}})
            print(json.dumps({"kubeconfig": str(server.kubeconfig_path)}), flush=True)
            reader = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            while line := (await reader.readline()).decode().strip():
                command, count = line.split()
                for i in range(int(count)):  # "churn N": N modifications of existing pods
                    store.patch("v1", "Pod", f"train-{i % pods:06d}",
                                {"metadata": {"labels": {"step": str(i)}}},
                                namespace=f"hyperpod-ns-team-{'abc'[(i % pods) % 3]}")
                    if i % 200 == 199:
                        await asyncio.sleep(0)  # let the watch streams flow while writing
                print(json.dumps({"done": command}), flush=True)

    asyncio.run(main())


# ------------------------------------------------------------------------------------------- measuring side

async def measure(kubeconfig: str, server: subprocess.Popen[str], pods: int) -> None:
    import psutil

    from app.cluster.connection import ClusterConnection
    from app.cluster.engine import ClusterEngine

    started = time.perf_counter()
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-A", "-o", "name"],
                   stdout=subprocess.DEVNULL, check=True)
    kubectl = time.perf_counter() - started

    deliveries: list[tuple[float, str, int]] = []
    engine = ClusterEngine(ClusterConnection([Path(kubeconfig)], None))
    engine.subscribe(lambda name, changes, store: deliveries.append((time.perf_counter(), name, changes.events)))
    await engine.connection.open()  # credentials and client import are not part of the sync
    started = time.perf_counter()
    await engine.start(["pods"])
    store = engine.stores["pods"]
    while store.status.state != "live" or len(store) < pods:
        await asyncio.sleep(0.005)
    sync = time.perf_counter() - started
    await engine.start(["nodes", "workloads", "jobs"])
    while any(s.status.state != "live" for s in engine.stores.values()):
        await asyncio.sleep(0.01)
    rss = psutil.Process().memory_info().rss / 2**20

    print(f"pods {pods:,}")
    print(f"  initial sync, hyperdesk pod store   {sync:7.2f} s")
    print(f"  kubectl get pods -A -o name         {kubectl:7.2f} s   hyperdesk/kubectl = {sync / kubectl:.2f}")
    print(f"  resident memory after sync          {rss:7.0f} MB  (whole process; target < 250 MB at 20,000)")

    async def churn(count: int) -> tuple[float, float, list[tuple[float, str, int]]]:
        await asyncio.sleep(0.3)
        deliveries.clear()
        store = engine.reflectors["pods"].store
        target_version = store.version + count
        start, cpu_start = time.perf_counter(), time.process_time()
        server.stdin.write(f"churn {count}\n")
        server.stdin.flush()
        while store.version < target_version:
            await asyncio.sleep(0.002)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        await asyncio.sleep(0.25)
        return elapsed, cpu, [d for d in deliveries if d[1] == "pods"]

    elapsed, cpu, _ = await churn(100_000)
    print(f"  100,000 watch events applied in     {elapsed:7.2f} s   = {100_000 / elapsed:,.0f} events/s wall clock, "
          f"paced by the server process writing them")
    print(f"  hyperdesk's CPU for those events    {cpu:7.2f} s   = {100_000 / cpu:,.0f} events per CPU-second "
          f"(target >= 20,000/s)")
    elapsed, _, burst = await churn(10_000)
    gaps = [b[0] - a[0] for a, b in zip(burst, burst[1:])]
    print(f"  10,000-event burst over {elapsed:.2f} s: {len(burst)} deliveries to the UI, "
          f"at least {min(gaps) * 1000:.0f} ms apart = at most {1 / min(gaps):.1f} per store per second "
          f"(target <= 10)" if gaps else f"  10,000-event burst: {len(burst)} delivery")
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20_000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--workloads", type=int, default=2_000)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.pods, args.nodes, args.workloads, args.jobs)
        return
    print(f"loading the server: {args.pods:,} pods on {args.nodes} nodes, {args.workloads:,} workloads, "
          f"{args.jobs:,} jobs ({os.cpu_count()} cores)")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--pods", str(args.pods), "--nodes", str(args.nodes),
         "--workloads", str(args.workloads), "--jobs", str(args.jobs)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(server.stdout.readline())
        asyncio.run(measure(ready["kubeconfig"], server, args.pods))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
