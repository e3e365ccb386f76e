"""How fast is the embedded API server? Run by hand: `.venv/bin/python benchmarks/apiserver.py`.

Loads 20,000 realistic pods, 200 more in a small namespace and 2,000 Kueue workloads, then prints:
- a single LIST of all pods (raw HTTP, and the official client with raw JSON), and of all workloads;
- a paginated LIST (limit=500) with the official client, next to `kubectl get pods -A -o name` as a peer;
- a LIST of the small namespace's 200 pods (raw HTTP), which should not cost in proportion to the whole table;
- watch throughput: events per second one watcher receives, live while the store commits changes, and when
  replaying the same changes from the history (the serving rate, independent of how fast anything writes).

The server runs in a child process, as a real cluster would: the clients' JSON decoding then does not pay for
garbage-collecting the server's millions of stored objects.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config

from app.demo.apiserver import LocalApiServer, Store


SMALL_NAMESPACE = "hyperpod-ns-small"
SMALL_PODS = 200


def make_pod(index: int, namespace: str = "") -> dict[str, Any]:
    """A pod shaped like a HyperPod training worker: labels, owner, resources, env, mounts, full status."""
    job = f"llama-ft-{index // 64:04d}"
    node = f"hyperpod-i-{index % 500:05d}"
    namespace = namespace or f"hyperpod-ns-team-{index % 8}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-worker-{index % 64}",
            "namespace": namespace,
            "labels": {
                "HPJob": job,
                "app.kubernetes.io/managed-by": "hyperpod",
                "kueue.x-k8s.io/queue-name": f"{namespace}-localqueue",
                "training.kubeflow.org/replica-index": str(index % 64),
            },
            "annotations": {"kubectl.kubernetes.io/default-container": "pytorch-job-container"},
            "ownerReferences": [
                {
                    "apiVersion": "sagemaker.amazonaws.com/v1",
                    "kind": "HyperPodPyTorchJob",
                    "name": job,
                    "uid": f"00000000-0000-0000-0000-{index // 64:012d}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "pytorch-job-container",
                    "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/llama-train:2.3.1",
                    "command": ["torchrun", "--nproc-per-node", "8", "train.py"],
                    "env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "MASTER_PORT", "value": "23456"}],
                    "resources": {
                        "requests": {"cpu": "96", "memory": "1000Gi", "nvidia.com/gpu": "8"},
                        "limits": {"nvidia.com/gpu": "8"},
                    },
                    "volumeMounts": [{"name": "fsx", "mountPath": "/fsx"}, {"name": "shm", "mountPath": "/dev/shm"}],
                    "ports": [{"containerPort": 23456, "protocol": "TCP"}],
                }
            ],
            "volumes": [
                {"name": "fsx", "persistentVolumeClaim": {"claimName": "fsx-claim"}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.1.{index // 250 % 256}.{index % 250}",
            "hostIP": f"10.0.{index // 250 % 256}.{index % 250}",
            "startTime": "2025-01-01T00:00:00Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "pytorch-job-container",
                    "ready": True,
                    "restartCount": 0,
                    "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/llama-train:2.3.1",
                    "imageID": "sha256:" + "ab" * 32,
                    "containerID": f"containerd://{index:064x}",
                    "state": {"running": {"startedAt": "2025-01-01T00:00:05Z"}},
                }
            ],
        },
    }


def make_workload(index: int) -> dict[str, Any]:
    namespace = f"hyperpod-ns-team-{index % 8}"
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{index:05d}",
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/job-uid": str(index)},
        },
        "spec": {
            "queueName": f"{namespace}-localqueue",
            "priority": index % 4 * 100,
            "podSets": [
                {
                    "name": "main",
                    "count": 8,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "c", "image": "img", "resources": {"requests": {"nvidia.com/gpu": "8"}}}
                            ]
                        }
                    },
                }
            ],
        },
        "status": {
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "False",
                    "reason": "Pending",
                    "message": "couldn't assign flavors",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ]
        },
    }


def load(store: Store, pods: int, workloads: int) -> None:
    namespaces = {make_pod(i)["metadata"]["namespace"] for i in range(8)} | {SMALL_NAMESPACE}
    for name in namespaces:
        store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for i in range(pods):
        store.put(make_pod(i))
    for i in range(SMALL_PODS):
        store.put(make_pod(i, SMALL_NAMESPACE))
    for i in range(workloads):
        store.put(make_workload(i))


def churn(store: Store, events: int) -> None:
    """`events` label changes on existing pods, committed back to back."""
    for i in range(events):
        pod = make_pod(i)
        store.patch(
            "v1",
            "Pod",
            pod["metadata"]["name"],
            {"metadata": {"labels": {"step": str(i)}}},
            pod["metadata"]["namespace"],
        )


def serve(pods: int, workloads: int, channel: Connection) -> None:
    """The child process: a loaded server that runs commands sent over `channel` until told to stop."""
    with LocalApiServer.start_in_thread(history_size=100_000) as handle:
        started = time.perf_counter()
        handle.call(load, handle.server.store, pods, workloads)
        channel.send((handle.url, str(handle.kubeconfig_path), time.perf_counter() - started))
        while True:
            command, argument = channel.recv()
            if command == "stop":
                return
            if command == "rv":
                channel.send(handle.store.resource_version)
            elif command == "churn":
                started = time.perf_counter()
                handle.call(churn, handle.server.store, argument)
                channel.send(time.perf_counter() - started)


def timed(label: str, fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    print(f"  {label:<58} {best * 1000:8.1f} ms  ({result})")
    return best


def read_watch(url: str, events: int, ready: threading.Event | None = None) -> tuple[int, float]:
    """Read `events` watch events from `url`; returns (count, monotonic time of the last one)."""
    received = 0
    with urllib.request.urlopen(url, timeout=120) as response:
        if ready is not None:
            ready.set()
        for _line in response:
            received += 1
            if received >= events:
                break
    return received, time.perf_counter()


def watch_throughput(url: str, server: Connection, events: int) -> None:
    server.send(("rv", None))
    rv = server.recv()
    watch_url = f"{url}/api/v1/pods?watch=true&resourceVersion={rv}"
    result: list[tuple[int, float]] = []
    ready = threading.Event()
    reader = threading.Thread(target=lambda: result.append(read_watch(watch_url, events, ready)), daemon=True)
    reader.start()
    ready.wait(timeout=30)
    started = time.perf_counter()
    server.send(("churn", events))
    committed = server.recv()
    reader.join(timeout=120)
    received, finished = result[0]
    print(f"  store commits: {events / committed:,.0f} writes/s ({events:,} label patches in {committed:.2f} s)")
    print(
        f"  live: {received:,} events in {finished - started:.2f} s = {received / (finished - started):,.0f} events/s"
        " to one watcher while they are committed"
    )
    started = time.perf_counter()
    received, finished = read_watch(watch_url, events)
    print(
        f"  replay: {received:,} events in {finished - started:.2f} s = {received / (finished - started):,.0f} events/s"
        " to one watcher resuming from the history"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=20_000)
    parser.add_argument("--workloads", type=int, default=2_000)
    parser.add_argument("--watch-events", type=int, default=20_000)
    args = parser.parse_args()

    server, child_end = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=serve, args=(args.pods, args.workloads, child_end))
    process.start()
    try:
        url, kubeconfig, load_time = server.recv()
        print(f"loaded {args.pods:,} pods and {args.workloads:,} workloads in {load_time:.1f} s")
        api_client = config.new_client_from_config(kubeconfig)
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)

        def raw_http() -> str:
            with urllib.request.urlopen(f"{url}/api/v1/pods", timeout=60) as response:
                return f"{len(response.read()) / 1e6:.0f} MB"

        def client_full() -> str:
            response = core.list_pod_for_all_namespaces(_preload_content=False)
            return f"{len(json.loads(response.data)['items'])} pods"

        def client_paged() -> str:
            count, token, pages = 0, None, 0
            while True:
                response = core.list_pod_for_all_namespaces(limit=500, _continue=token, _preload_content=False)
                body = json.loads(response.data)
                count += len(body["items"])
                pages += 1
                token = body["metadata"].get("continue")
                if not token:
                    return f"{count} pods in {pages} pages"

        def raw_paged() -> str:
            count, token, pages = 0, "", 0
            while True:
                query = f"limit=500&continue={token}" if token else "limit=500"
                with urllib.request.urlopen(f"{url}/api/v1/pods?{query}", timeout=60) as response:
                    body = json.loads(response.read())
                count += len(body["items"])
                pages += 1
                token = body["metadata"].get("continue")
                if not token:
                    return f"{count} pods in {pages} pages"

        def small_namespace() -> str:
            with urllib.request.urlopen(f"{url}/api/v1/namespaces/{SMALL_NAMESPACE}/pods", timeout=60) as response:
                return f"{len(json.loads(response.read())['items'])} pods"

        def workloads() -> str:
            response = custom.list_cluster_custom_object(
                "kueue.x-k8s.io", "v1beta2", "workloads", _preload_content=False
            )
            return f"{len(json.loads(response.data)['items'])} workloads"

        cache = Path(tempfile.mkdtemp(prefix="bench-kubectl-"))
        kubectl = [shutil.which("kubectl") or "kubectl", "--kubeconfig", kubeconfig, "--cache-dir", str(cache)]
        subprocess.run([*kubectl, "api-resources"], capture_output=True, check=True)  # warm the discovery cache

        def kubectl_names() -> str:
            out = subprocess.run(
                [*kubectl, "get", "pods", "-A", "-o", "name"], capture_output=True, text=True, check=True
            )
            return f"{len(out.stdout.splitlines())} names"

        print("LIST (best of 3):")
        timed("single LIST of all pods, raw HTTP (server + transfer)", raw_http)
        timed("single LIST of all pods, official client, raw JSON", client_full)
        timed("single LIST of all workloads, official client, raw JSON", workloads)
        paged = timed("paginated LIST (limit=500), official client, raw JSON", client_paged)
        timed("paginated LIST (limit=500), raw HTTP", raw_paged)
        peer = timed("peer: kubectl get pods -A -o name (paginated, 500/page)", kubectl_names)
        print(f"  ratio kubectl / official client paginated: {peer / paged:.1f}x")
        timed(f"LIST of one namespace's {SMALL_PODS} pods, raw HTTP", small_namespace, repeat=20)
        shutil.rmtree(cache, ignore_errors=True)
        api_client.close()
        print("WATCH:")
        watch_throughput(url, server, min(args.watch_events, args.pods))
    finally:
        server.send(("stop", None))
        process.join(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
