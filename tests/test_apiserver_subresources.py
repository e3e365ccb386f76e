"""pods/log, pods/proxy and services/proxy, pods/portforward, and Kueue's visibility API."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.stream import portforward
from yarl import URL

from app.demo.apiserver import LocalApiServer, ServerThread
from tests.plugins.apiserver import Kubectl


def running_pod(
    name: str, *containers: str, namespace: str = "default", ports: list[dict] | None = None
) -> dict[str, Any]:
    names = containers or ("main",)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": c, "image": "img:1", "ports": ports or []} for c in names]},
        "status": {"phase": "Running", "podIP": "10.1.0.7"},
    }


# --- pods/log ---------------------------------------------------------------------------------------------------------


def test_kubectl_logs_options(apiserver_thread: ServerThread, kubectl: Kubectl) -> None:
    apiserver_thread.store.put(running_pod("trainer", "main", "sidecar"))
    logs = apiserver_thread.logs
    logs.write("default", "trainer", "main", [f"step {i}" for i in range(5)])
    logs.write("default", "trainer", "sidecar", ["proxy ready"])
    assert kubectl("logs", "trainer", "-c", "main").splitlines() == [f"step {i}" for i in range(5)]
    assert kubectl("logs", "trainer", "-c", "main", "--tail=2").splitlines() == ["step 3", "step 4"]
    stamped = kubectl("logs", "trainer", "-c", "sidecar", "--timestamps").strip()
    stamp, _, text = stamped.partition(" ")
    assert text == "proxy ready" and stamp.endswith("Z") and len(stamp) == len("2024-01-01T00:00:00.000000000Z")
    assert kubectl("logs", "trainer", "-c", "main", "--since=1h").count("step") == 5

    logs.restart("default", "trainer", "main")
    logs.write("default", "trainer", "main", ["after restart"])
    assert kubectl("logs", "trainer", "-c", "main").strip() == "after restart"
    assert kubectl("logs", "trainer", "-c", "main", "--previous").splitlines()[-1] == "step 4"

    defaulted = kubectl.run("logs", "trainer")
    assert 'Defaulted container "main" out of: main, sidecar' in defaulted.stderr  # kubectl picks one itself
    unknown = kubectl.run("logs", "trainer", "-c", "ghost", check=False)
    assert "container ghost is not valid for pod trainer" in unknown.stderr
    no_previous = kubectl.run("logs", "trainer", "-c", "sidecar", "--previous", check=False)
    assert 'previous terminated container "sidecar" in pod "trainer" not found' in no_previous.stderr
    apiserver_thread.store.create(running_pod("fresh"))  # created through the API: Pending, never started
    waiting = kubectl.run("logs", "fresh", check=False)
    assert 'container "main" in pod "fresh" is waiting to start: ContainerCreating' in waiting.stderr


def test_kubectl_logs_follow_receives_lines_written_later(apiserver_thread: ServerThread, kubectl: Kubectl) -> None:
    apiserver_thread.store.put(running_pod("trainer"))
    apiserver_thread.logs.write("default", "trainer", "main", ["epoch 1"])
    follower = kubectl.popen("logs", "-f", "trainer")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        assert lines.get(timeout=10).strip() == "epoch 1"
        apiserver_thread.logs.write("default", "trainer", "main", ["epoch 2", "epoch 3"])
        assert [lines.get(timeout=10).strip() for _ in range(2)] == ["epoch 2", "epoch 3"]
        apiserver_thread.store.delete("v1", "Pod", "trainer", "default")
        assert follower.wait(timeout=10) == 0, "the stream ends when the pod goes away"
    finally:
        follower.kill()


def test_sync_client_log_options(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    apiserver_thread.store.put(running_pod("p"))
    apiserver_thread.logs.write("default", "p", "main", ["old"], at=_ago(3600))
    apiserver_thread.logs.write("default", "p", "main", ["new"])
    assert core.read_namespaced_pod_log("p", "default") == "old\nnew\n"
    assert core.read_namespaced_pod_log("p", "default", since_seconds=60) == "new\n"
    assert core.read_namespaced_pod_log("p", "default", tail_lines=0) == ""
    assert core.read_namespaced_pod_log("p", "default", limit_bytes=2) == "ol"
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_log("ghost", "default")
    assert caught.value.status == 404
    apiserver_thread.store.put(running_pod("pair", "main", "sidecar"))
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_log("pair", "default")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["message"] == (
        "a container name must be specified for pod pair, choose one of: [main sidecar]"
    )


def _ago(seconds: float) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=seconds)


async def test_aio_follow_streams_new_lines(apiserver: LocalApiServer) -> None:
    apiserver.store.put(running_pod("p"))
    apiserver.logs.write("default", "p", "main", ["one"])
    url = f"{apiserver.url}/api/v1/namespaces/default/pods/p/log?follow=true"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert await response.content.readline() == b"one\n"
        apiserver.logs.write("default", "p", "main", ["two"])
        assert await asyncio.wait_for(response.content.readline(), 5) == b"two\n"
        apiserver.logs.restart("default", "p", "main")
        assert await asyncio.wait_for(response.content.read(), 5) == b"", "a restart ends the followed instance"


# --- proxies ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def metrics_server() -> Iterator[int]:
    """A tiny dcgm-exporter stand-in on 127.0.0.1 that echoes what it was sent."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/metrics"):
                payload = b'# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 87\n'
                content_type = "text/plain; version=0.0.4"
            else:
                payload = json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body.decode(),
                        "header": self.headers.get("X-Probe"),
                    }
                ).encode()
                content_type = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_pod_and_service_proxy(
    apiserver_thread: ServerThread, kubectl: Kubectl, k8s_client: client.ApiClient, metrics_server: int
) -> None:
    store = apiserver_thread.store
    store.put(running_pod("dcgm-exporter-abc", ports=[{"name": "metrics", "containerPort": 9400}]))
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "dcgm", "namespace": "default"},
            "spec": {"ports": [{"name": "metrics", "port": 9400}]},
        }
    )
    target = f"http://127.0.0.1:{metrics_server}"
    apiserver_thread.proxies.register_pod("default", "dcgm-exporter-abc", 9400, target)
    apiserver_thread.proxies.register_service("default", "dcgm", 9400, target)

    metrics = kubectl("get", "--raw", "/api/v1/namespaces/default/pods/dcgm-exporter-abc:9400/proxy/metrics")
    assert 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 87' in metrics
    by_name = kubectl("get", "--raw", "/api/v1/namespaces/default/pods/dcgm-exporter-abc:metrics/proxy/metrics")
    assert by_name == metrics
    via_service = kubectl("get", "--raw", "/api/v1/namespaces/default/services/http:dcgm:metrics/proxy/metrics")
    assert via_service == metrics

    core = client.CoreV1Api(k8s_client)
    echoed = core.connect_post_namespaced_pod_proxy_with_path(
        "dcgm-exporter-abc:9400", "default", "invoke", path2="x=1", _preload_content=False
    )
    assert json.loads(echoed.data)["method"] == "POST"
    raw = k8s_client.call_api(
        "PUT",
        f"{k8s_client.configuration.host}/api/v1/namespaces/default/services/dcgm:9400/proxy/v1/predict?x=1",
        header_params={"X-Probe": "yes", "Content-Type": "application/json"},
        body={"input": [1, 2]},
    )
    raw.read()
    answer = json.loads(raw.data)
    assert answer == {"method": "PUT", "path": "/v1/predict?x=1", "body": '{"input": [1, 2]}', "header": "yes"}

    missing = kubectl.run("get", "--raw", "/api/v1/namespaces/default/pods/ghost:9400/proxy/metrics", check=False)
    assert missing.returncode != 0 and 'pods "ghost" not found' in missing.stderr
    closed = kubectl.run("get", "--raw", "/api/v1/namespaces/default/pods/dcgm-exporter-abc:9999/proxy/", check=False)
    assert "dial tcp 10.1.0.7:9999: connect: connection refused" in closed.stderr


async def test_proxied_responses_stream(apiserver: LocalApiServer) -> None:
    """A handler target streams its answer; the client sees the first chunk before the handler has finished."""
    apiserver.store.put(running_pod("server"))
    release = asyncio.Event()

    async def tokens(request: web.Request, path: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: first {request.method} {path}\n\n".encode())
        await release.wait()
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    apiserver.proxies.register_pod("default", "server", 8080, tokens)
    url = f"{apiserver.url}/api/v1/namespaces/default/pods/server:8080/proxy/v1/completions?stream=true"
    async with aiohttp.ClientSession() as session, session.post(url, data=b"{}") as response:
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert first == b"data: first POST /v1/completions?stream=true\n\n"
        release.set()
        assert await asyncio.wait_for(response.content.read(), 5) == b"data: second\n\n"


# --- port-forward -----------------------------------------------------------------------------------------------------


@pytest.fixture
def echo_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return

            def echo(conn: socket.socket = connection) -> None:
                with conn:
                    while data := conn.recv(1 << 16):
                        conn.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_port_forward_carries_10_mb_both_ways(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient, echo_port: int
) -> None:
    apiserver_thread.store.put(running_pod("notebook"))
    apiserver_thread.port_forwards.register("default", "notebook", 8888, echo_port)
    core = client.CoreV1Api(k8s_client)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "notebook", "default", ports="8888")
    sock = forward.socket(8888)
    sock.setblocking(True)
    payload = (bytes(range(256)) * 4096) * 10  # 10 MiB, every byte value
    sender = threading.Thread(target=sock.sendall, args=(payload,))
    sender.start()
    received = bytearray()
    deadline = time.monotonic() + 30
    while len(received) < len(payload) and time.monotonic() < deadline:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    sender.join(timeout=30)
    sock.close()
    forward.close()
    assert len(received) == len(payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    assert forward.error(8888) is None


def test_port_forward_to_a_closed_port_reports_on_the_error_channel(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient, kubectl: Kubectl
) -> None:
    apiserver_thread.store.put(running_pod("notebook"))
    core = client.CoreV1Api(k8s_client)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "notebook", "default", ports="8888")
    sock = forward.socket(8888)
    sock.settimeout(10)
    assert sock.recv(10) == b"", "the data channel closes"
    error = forward.error(8888)
    assert error.startswith("an error occurred forwarding 8888 -> 8888: error forwarding port 8888 to pod ")
    assert "connect: connection refused" in error
    with pytest.raises(client.ApiException) as caught:
        portforward(core.connect_get_namespaced_pod_portforward, "ghost", "default", ports="8888")
    assert "404" in str(caught.value.reason) and 'pods \\"ghost\\" not found' in str(caught.value.reason)
    refused = kubectl.run("port-forward", "pod/notebook", "0:8888", check=False, timeout=10)
    assert "the SPDY protocol of kubectl port-forward is not supported" in refused.stderr


# --- Kueue visibility --------------------------------------------------------------------------------------------------

VISIBILITY = "/apis/visibility.kueue.x-k8s.io"


def _kueue_setup(store: Any) -> None:
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
    store.create(
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "gpus"}, "spec": {}}
    )
    for namespace in ("default", "team-b"):
        store.create(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": "lq", "namespace": namespace},
                "spec": {"clusterQueue": "gpus"},
            }
        )


def _workload(name: str, namespace: str, priority: int) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"queueName": "lq", "priority": priority, "podSets": [{"name": "main", "count": 1}]},
    }


def _positions(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(i["metadata"]["name"], i["positionInClusterQueue"], i["positionInLocalQueue"]) for i in body["items"]]


def test_pending_workload_positions_follow_priority_creation_and_admission(
    apiserver_thread: ServerThread, kubectl: Kubectl
) -> None:
    store = apiserver_thread.store
    _kueue_setup(store)
    store.create(_workload("older", "default", 100))
    time.sleep(1.05)  # creation timestamps have one-second resolution
    store.create(_workload("a-newer", "default", 100))
    store.create(_workload("urgent", "team-b", 1000))
    store.create(_workload("low", "team-b", 10))
    store.create(
        {**_workload("parked", "default", 5000), "spec": {**_workload("p", "default", 0)["spec"], "active": False}}
    )

    cq = json.loads(kubectl("get", "--raw", f"{VISIBILITY}/v1beta1/clusterqueues/gpus/pendingworkloads"))
    assert cq["kind"] == "PendingWorkloadsSummary" and cq["apiVersion"] == "visibility.kueue.x-k8s.io/v1beta1"
    assert _positions(cq) == [("urgent", 0, 0), ("older", 1, 0), ("a-newer", 2, 1), ("low", 3, 1)]
    assert [i["localQueueName"] for i in cq["items"]] == ["lq"] * 4
    lq = json.loads(kubectl("get", "--raw", f"{VISIBILITY}/v1beta2/namespaces/team-b/localqueues/lq/pendingworkloads"))
    assert _positions(lq) == [("urgent", 0, 0), ("low", 3, 1)]

    # Admitting the head of the queue moves everyone up.
    store.patch(
        "kueue.x-k8s.io/v1beta2",
        "Workload",
        "urgent",
        {
            "status": {
                "admission": {"clusterQueue": "gpus"},
                "conditions": [{"type": "QuotaReserved", "status": "True"}],
            }
        },
        "team-b",
        subresource="status",
    )
    cq = json.loads(kubectl("get", "--raw", f"{VISIBILITY}/v1beta2/clusterqueues/gpus/pendingworkloads"))
    assert _positions(cq) == [("older", 0, 0), ("a-newer", 1, 1), ("low", 2, 0)]
    paged = json.loads(
        kubectl("get", "--raw", f"{VISIBILITY}/v1beta2/clusterqueues/gpus/pendingworkloads?limit=1&offset=1")
    )
    assert _positions(paged) == [("a-newer", 1, 1)]


def test_visibility_errors(apiserver_thread: ServerThread, kubectl: Kubectl) -> None:
    _kueue_setup(apiserver_thread.store)
    for path in (
        f"{VISIBILITY}/v1beta1/clusterqueues/gpus/pendingworkload",
        f"{VISIBILITY}/v1beta1/clusterqueues/gpus/pendingworkloads/extra",
        f"{VISIBILITY}/v1beta1/namespaces/default/clusterqueues/gpus/pendingworkloads",
        f"{VISIBILITY}/v1alpha9/clusterqueues/gpus/pendingworkloads",
        f"{VISIBILITY}/v1beta1/clusterqueues/nope/pendingworkloads",
    ):
        result = kubectl.run("get", "--raw", path, check=False)
        assert result.returncode != 0 and "NotFound" in result.stderr, path
    listing = kubectl.run("get", "--raw", f"{VISIBILITY}/v1beta1/clusterqueues", check=False)
    assert "MethodNotAllowed" in listing.stderr


async def test_proxy_keeps_repeated_headers_escaped_paths_and_streams_request_bodies(apiserver: LocalApiServer) -> None:
    """Through a URL target: Set-Cookie twice, `%2F` kept, and the body reaches the target while still being sent."""
    first_chunk = asyncio.Event()
    seen: dict[str, Any] = {}

    async def upstream(request: web.Request) -> web.StreamResponse:
        seen["path"] = request.raw_path
        seen["probes"] = request.headers.getall("X-Probe", [])
        first = await request.content.readany()
        first_chunk.set()  # the proxy forwarded the start of the body before the client sent the rest
        seen["body"] = first + await request.read()
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        apiserver.store.put(running_pod("web"))
        apiserver.proxies.register_pod("default", "web", 8080, f"http://127.0.0.1:{port}")

        async def body() -> Any:
            yield b"first,"
            await asyncio.wait_for(first_chunk.wait(), 5)
            yield b"second"

        url = f"{apiserver.url}/api/v1/namespaces/default/pods/web:8080/proxy/buckets/a%2Fb/objects?x=%2F"
        headers = [("X-Probe", "1"), ("X-Probe", "2")]
        async with (
            aiohttp.ClientSession() as session,
            session.post(URL(url, encoded=True), data=body(), headers=headers) as response,
        ):
            assert response.status == 200 and await response.text() == "ok"
            assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    finally:
        await runner.cleanup()
    assert seen == {"path": "/buckets/a%2Fb/objects?x=%2F", "probes": ["1", "2"], "body": b"first,second"}


def test_log_options_are_checked(apiserver_thread: ServerThread) -> None:
    import urllib.error
    import urllib.request

    apiserver_thread.store.put(running_pod("trainer"))
    apiserver_thread.logs.write("default", "trainer", "main", ["one", "two"])
    url = f"{apiserver_thread.url}/api/v1/namespaces/default/pods/trainer/log"
    for query, status, message in (
        ("sinceTime=yesterday", 400, 'sinceTime: Invalid value: "yesterday"'),
        ("tailLines=-1", 422, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
        ("limitBytes=0", 422, "limitBytes: Invalid value: 0: must be greater than 0"),
    ):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{url}?{query}", timeout=10)
        assert caught.value.code == status, query
        assert message in json.loads(caught.value.read())["message"], query
    with urllib.request.urlopen(f"{url}?sinceTime=2000-01-01T00:00:00Z", timeout=10) as answer:
        assert answer.read() == b"one\ntwo\n"


def test_a_deleted_pods_log_is_gone_even_if_written_late(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient
) -> None:
    store, logs = apiserver_thread.store, apiserver_thread.logs
    store.put(running_pod("worker"))
    logs.write("default", "worker", "main", ["first life"])
    store.delete("v1", "Pod", "worker", "default")
    logs.write("default", "worker", "main", ["written after the pod was deleted"])
    store.put(running_pod("worker"))
    assert client.CoreV1Api(k8s_client).read_namespaced_pod_log("worker", "default") == ""


def test_port_forward_one_target_closing_leaves_the_other_ports_open(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient, echo_port: int
) -> None:
    quitter = socket.create_server(("127.0.0.1", 0))

    def say_bye() -> None:
        connection, _ = quitter.accept()
        with connection:
            connection.sendall(b"bye")

    threading.Thread(target=say_bye, daemon=True).start()
    apiserver_thread.store.put(running_pod("notebook"))
    apiserver_thread.port_forwards.register("default", "notebook", 8888, echo_port)
    apiserver_thread.port_forwards.register("default", "notebook", 9000, quitter.getsockname()[1])
    core = client.CoreV1Api(k8s_client)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "notebook", "default", ports="9000,8888")
    try:
        closing, echo = forward.socket(9000), forward.socket(8888)
        closing.settimeout(10)
        echo.settimeout(10)
        assert closing.recv(10) == b"bye"
        time.sleep(0.3)  # the target on 9000 has closed by now
        for word in (b"still", b"open"):
            echo.sendall(word)
            assert echo.recv(10) == word
    finally:
        forward.close()
        quitter.close()
