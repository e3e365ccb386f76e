"""The endpoint load test against the simulated cluster, beside a bare HTTP client doing the same.

    .venv/bin/python benchmarks/endpoints.py [--requests 1000] [--concurrency 50]

Starts the `bare` simulated cluster in this process, deploys one InferenceEndpointConfig and lets it become ready.
Then, through the same API server `services/proxy` URL and with the same concurrency:
- hyperdesk's `load_test` (the kubernetes.aio transport, credentials, the proxy path, reading every answer);
- the peer: a plain aiohttp session POSTing the same body (what `hey` or k9s's benchmark do), no Kubernetes client.
The simulated model sleeps 60-140 ms per request, so both should be bound by it; the ratio shows what hyperdesk's
client adds on top. Also timed: `endpoint_rows` for 3,000 endpoints and 6,000 pods (the pane's join).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.demo.sim import DemoCluster  # noqa: E402
from app.model.endpoints import endpoint_rows, summarize  # noqa: E402
from tests.plugins.endpoints import NAMESPACE, create, endpoint_config  # noqa: E402


async def hyperdesk_run(kubeconfig: Path, requests: int, concurrency: int):
    from app.cluster import endpoints as ep
    from app.cluster.connection import ClusterConnection
    from app.cluster.discovery import discover

    conn = ClusterConnection([kubeconfig], None)
    await conn.open()
    try:
        row = (await ep.fetch_endpoints(conn, await discover(conn), NAMESPACE))[0]
        protocol = row.protocols()[0]
        summary = await ep.load_test(conn, row, protocol.body, protocol.path, requests, concurrency)
        return summary, conn.server + ep.proxy_path(row, protocol.path), protocol.body
    finally:
        await conn.close()


async def peer_run(url: str, body: dict, requests: int, concurrency: int):
    import aiohttp

    results: list[tuple[int, float]] = []
    queue = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with session.post(url, json=body) as response:
                    await response.read()
                results.append((response.status, (time.perf_counter() - started) * 1000))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return summarize(results, time.perf_counter() - started, concurrency)


def rows_timing(endpoints: int = 3000) -> float:
    stores: dict[str, dict] = {"inferenceendpointconfigs": {}, "pods": {}, "services": {}}
    for i in range(endpoints):
        ns, name = f"ns-{i % 20}", f"ep-{i:05d}"
        stores["inferenceendpointconfigs"][f"{ns}/{name}"] = {
            "metadata": {"name": name, "namespace": ns, "uid": f"u{i}", "creationTimestamp": "2026-11-27T10:00:00Z"},
            "spec": {"modelName": "m", "instanceType": "ml.g5.12xlarge", "replicas": 2},
            "status": {"state": "DeploymentComplete", "selector": f"app={name}",
                       "deploymentStatus": {"status": {"replicas": 2, "readyReplicas": 2}}}}
        for r in range(2):
            stores["pods"][f"{ns}/{name}-{r}"] = {"metadata": {"name": f"{name}-{r}", "namespace": ns,
                                                               "labels": {"app": name}},
                                                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    started = time.perf_counter()
    rows = endpoint_rows(stores)
    elapsed = time.perf_counter() - started
    assert len(rows) == endpoints
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with DemoCluster.start_in_thread(scenario="bare", seed=5, speed=0, mlflow=False) as handle:
        create(handle, endpoint_config("bench"))
        handle.advance(90)
        ours, url, body = asyncio.run(hyperdesk_run(handle.kubeconfig_path, args.requests, args.concurrency))
        peer = asyncio.run(peer_run(url, body, args.requests, args.concurrency))
    print(f"load test, {args.requests} requests at concurrency {args.concurrency}, through services/proxy:")
    for label, summary in (("hyperdesk load_test", ours), ("plain aiohttp (peer)", peer)):
        print(f"  {label:22} {summary.per_second:7.1f} req/s  p50 {summary.p50_ms:6.1f} ms  p95 {summary.p95_ms:6.1f} ms"
              f"  p99 {summary.p99_ms:6.1f} ms  ok {summary.ok}/{summary.requests}")
    print(f"  throughput ratio hyperdesk/peer: {ours.per_second / peer.per_second:.2f}")
    print(f"endpoint_rows for 3,000 endpoints and 6,000 pods: {rows_timing() * 1000:.0f} ms")


if __name__ == "__main__":
    main()
