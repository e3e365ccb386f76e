"""Endpoints against the simulated cluster over real sockets: every kind and state, invoke through the API server's
service proxy, a 200-request load run, scaling seen through the watch, failures with their reasons, bad input."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from app.cluster import endpoints as ep
from app.cluster.actions import ActionError, ReadOnlyError, parse_manifest, submit
from app.cluster.connection import ClusterConnection
from app.cluster.discovery import discover
from app.cluster.engine import ClusterEngine
from app.model.endpoints import BodyError, endpoint_rows, parse_body
from tests.plugins.endpoints import NAMESPACE, create, endpoint_config, inference_service, jumpstart


async def _connect(handle, kubeconfig=None):
    conn = ClusterConnection([kubeconfig or handle.kubeconfig_path], None)
    await conn.open()
    return conn, await discover(conn)


async def _rows(handle):
    conn, discovery = await _connect(handle)
    try:
        return {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}
    finally:
        await conn.close()


async def test_every_kind_and_its_state(serving_cluster) -> None:
    rows = await _rows(serving_cluster)
    assert {(r.kind, r.state) for r in rows.values()} == {
        ("JumpStartModel", "DeploymentComplete"), ("InferenceEndpointConfig", "DeploymentComplete"),
        ("InferenceService", "Ready"), ("JumpStartModel", "DeploymentFailed"), ("InferenceService", "FailedToLoad")}
    jsm = rows["deepseek-small"]
    assert (jsm.replicas_ready, jsm.replicas_desired, jsm.instance_type) == (1, 1, "ml.g5.12xlarge")
    assert jsm.model == "deepseek-llm-r1-distill-qwen-1-5b@2.0.4"
    assert jsm.url == f"http://deepseek-small-service.{NAMESPACE}.svc:8080" and len(jsm.pods) == 1
    iec = rows["llama3-8b"]
    assert iec.autoscaling == (1, 4) and iec.model == "llama3-8b-instruct (s3://demo-models/llama-3-8b-instruct)"
    isvc = rows["clip"]
    assert isvc.url == f"http://clip.{NAMESPACE}.example.com" and isvc.autoscaling == (1, 3)
    assert (isvc.service, isvc.service_port) == ("clip-predictor", 80)


async def test_failed_deployments_say_why(serving_cluster) -> None:
    rows = await _rows(serving_cluster)
    failed = rows["too-big"]
    assert failed.state == "DeploymentFailed" and failed.replicas_ready == 0
    assert failed.reason.startswith("InstanceTypeNotAvailable: Instance type ml.g5.48xlarge is not available")
    broken = rows["broken"]
    assert broken.state == "FailedToLoad" and "unsupported storage URI scheme" in broken.reason


HYPERPOD_MANIFESTS = pytest.mark.parametrize("manifest", [jumpstart, endpoint_config],
                                             ids=["JumpStartModel", "InferenceEndpointConfig"])


@HYPERPOD_MANIFESTS
async def test_a_failed_deployment_says_why_for_each_hyperpod_kind(bare_cluster, manifest) -> None:
    create(bare_cluster, manifest("too-big", instance_type="ml.g5.48xlarge"))
    bare_cluster.advance(90)
    failed = (await _rows(bare_cluster))["too-big"]
    assert (failed.kind, failed.state, failed.replicas_ready) == (manifest()["kind"], "DeploymentFailed", 0)
    assert failed.reason.startswith("InstanceTypeNotAvailable: Instance type ml.g5.48xlarge is not available")


@HYPERPOD_MANIFESTS
async def test_pending_and_in_progress_states(bare_cluster, manifest) -> None:
    create(bare_cluster, manifest("fresh"), inference_service("fresh-isvc"))
    bare_cluster.advance(1)
    rows = await _rows(bare_cluster)
    assert (rows["fresh"].state, rows["fresh-isvc"].state) == ("DeploymentPending", "Pending")
    bare_cluster.advance(10)  # the operator made the Deployment; the model is still loading
    rows = await _rows(bare_cluster)
    assert (rows["fresh"].state, rows["fresh-isvc"].state) == ("DeploymentInProgress", "NotReady")
    assert rows["fresh"].reason == "Waiting for model server pods: 0/1 ready"
    conn, _ = await _connect(bare_cluster)
    try:  # a loading model has no ready pod: the service proxy answers 503, and says so
        result = await ep.invoke(conn, rows["fresh"], {"inputs": "hi"}, "/invocations", check=False)
    finally:
        await conn.close()
    assert (result.status, result.from_apiserver) == (503, True)
    assert result.describe().startswith("503 from the API server") and "no endpoints available" in result.describe()


@pytest.mark.parametrize("name, protocol", [("deepseek-small", "openai-chat"), ("deepseek-small", "sagemaker"),
                                            ("llama3-8b", "openai-chat"), ("clip", "kserve-v1"),
                                            ("clip", "kserve-v2"), ("clip", "openai-chat")])
async def test_invoke_round_trips_through_the_proxy(serving_cluster, name, protocol) -> None:
    conn, discovery = await _connect(serving_cluster)
    try:
        row = {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}[name]
        chosen = next(p for p in row.protocols() if p.name == protocol)
        result = await ep.invoke(conn, row, chosen.body, chosen.path)
    finally:
        await conn.close()
    assert result.status == 200, result.text
    assert "[demo completion from" in result.pretty()
    assert result.latency_ms >= 60  # the simulated model takes at least 60 ms
    assert not result.from_apiserver


async def test_streaming_answer_arrives_in_pieces(serving_cluster) -> None:
    conn, discovery = await _connect(serving_cluster)
    pieces: list[str] = []
    try:
        row = {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}["clip"]
        body = {"model": "clip", "messages": [{"role": "user", "content": "stream please"}], "stream": True}
        result = await ep.invoke(conn, row, body, "/openai/v1/chat/completions", on_chunk=pieces.append)
    finally:
        await conn.close()
    assert result.status == 200 and result.streamed
    assert len(pieces) > 3, "the proxy passes events on as they come, not all at once"
    assert result.pretty().startswith("[demo completion from clip]")
    assert result.first_byte_ms is not None and result.first_byte_ms < result.latency_ms


async def test_load_run_of_200_requests(serving_cluster) -> None:
    conn, discovery = await _connect(serving_cluster)
    progress: list[int] = []
    try:
        row = {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}["llama3-8b"]
        protocol = row.protocols()[0]
        summary = await ep.load_test(conn, row, protocol.body, protocol.path, 200, 20,
                                     on_progress=lambda done, errors: progress.append(done))
        figures = await ep.read_figures(conn, [p for p in (await conn.request(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/pods"))["items"] if p["metadata"]["name"].startswith("llama3-8b")])
    finally:
        await conn.close()
    assert (summary.requests, summary.ok, summary.errors) == (200, 200, {})
    assert progress[-1] == 200 and len(progress) == 200
    assert 60 <= summary.p50_ms <= summary.p95_ms <= summary.p99_ms <= summary.max_ms
    # The model pod's own Prometheus counters saw them (read through pods/proxy).
    assert figures.requests >= 200 and figures.errors == 0
    assert figures.quantile_ms(0.5) is not None and figures.mean_ms >= 60


async def test_model_errors_are_results_not_crashes(serving_cluster) -> None:
    conn, discovery = await _connect(serving_cluster)
    try:
        rows = {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}
        bad = await ep.invoke(conn, rows["deepseek-small"], {"messages": "not a list"}, "/v1/chat/completions")
        too_long = await ep.invoke(conn, rows["deepseek-small"],
                                   {"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000},
                                   "/v1/chat/completions")
        oom = await ep.invoke(conn, rows["clip"], {"instances": ["x"] * 64}, "/v1/models/clip:predict")
        missing = await ep.invoke(conn, rows["clip"], {}, "/no/such/route")
    finally:
        await conn.close()
    assert (bad.status, bad.from_apiserver) == (400, False)
    assert "400 from the model server" in bad.describe() and "'messages'" in bad.describe()
    assert too_long.status == 422
    assert oom.status == 500 and "CUDA out of memory" in oom.describe()
    assert missing.status == 404


async def test_endpoint_not_ready_is_refused_before_sending(serving_cluster) -> None:
    rows = await _rows(serving_cluster)
    conn, _ = await _connect(serving_cluster)
    try:
        with pytest.raises(ep.EndpointError, match=r"too-big is not ready \(DeploymentFailed, 0/1 replicas ready\)"):
            await ep.invoke(conn, rows["too-big"], {"inputs": "hi"}, "/invocations")
        with pytest.raises(ep.EndpointError, match=r"broken is not ready \(FailedToLoad, 0/1 .* — ModelLoadFailed"):
            await ep.invoke(conn, rows["broken"], {"instances": ["hi"]}, "/v1/models/broken:predict")
        # Sent anyway (a stale row): the API server answers, not a model; the failed endpoint has no Service.
        result = await ep.invoke(conn, rows["broken"], {"instances": ["hi"]}, "/v1/models/broken:predict", check=False)
    finally:
        await conn.close()
    assert result.status == 404 and result.from_apiserver
    assert "404 from the API server" in result.describe() and "broken-predictor" in result.describe()


async def test_a_path_that_would_leave_the_proxy_is_refused(serving_cluster) -> None:
    rows = await _rows(serving_cluster)
    conn, _ = await _connect(serving_cluster)
    try:
        for path in ("/../../../secrets", "/v1/%2E%2E/%2e%2e/configmaps", "/a/./b"):
            with pytest.raises(ep.EndpointError, match="invalid path"):
                await ep.invoke(conn, rows["clip"], {"metadata": {"name": "x"}}, path)
        with pytest.raises(ep.EndpointError, match="invalid path"):
            await ep.load_test(conn, rows["clip"], {}, "/x/../../y", 2, 1)
    finally:
        await conn.close()
    secrets = await _secrets(serving_cluster)
    assert "x" not in secrets


async def _secrets(handle) -> set[str]:
    conn, _ = await _connect(handle)
    try:
        answer = await conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets")
    finally:
        await conn.close()
    return {s["metadata"]["name"] for s in answer.get("items") or []}


def test_invalid_json_body_names_the_position() -> None:
    with pytest.raises(BodyError, match=r"invalid JSON at line 2 column 13: Expecting value"):
        parse_body('{"inputs":\n  "x", "y": }')
    with pytest.raises(BodyError, match="empty"):
        parse_body("  ")


def test_a_body_nested_too_deeply_is_bad_input_not_a_crash() -> None:
    with pytest.raises(BodyError, match="^the request body is nested too deeply to read$"):
        parse_body("[" * 100_000)


async def test_forbidden_proxy_is_shown_as_such(demo_cluster) -> None:
    access = {"users": [
        {"name": "admin", "token": "admin-token", "rules": [  # the default kubeconfig's: creates the endpoints
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "viewer", "token": "viewer-token", "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]}]},
    ]}
    handle = demo_cluster(scenario="bare", seed=5, mlflow=False, access=access)
    create(handle, jumpstart())
    handle.advance(90)
    conn, discovery = await _connect(handle, handle.cluster.server.kubeconfig_for("viewer"))
    try:
        row = (await ep.fetch_endpoints(conn, discovery, NAMESPACE))[0]
        assert row.state == "DeploymentComplete"
        result = await ep.invoke(conn, row, {"inputs": "hi"}, "/invocations")
        with pytest.raises(ActionError, match="cannot scale .* forbidden"):
            await ep.scale(conn, row, 2, readonly=False, discovery=discovery)
    finally:
        await conn.close()
    assert result.status == 403 and result.from_apiserver
    assert "forbidden" in result.describe() and "services/proxy" in result.describe()


async def test_scale_up_and_down_is_seen_through_the_watch(bare_cluster) -> None:
    create(bare_cluster, jumpstart("scaled"), inference_service("scaled-isvc"))
    bare_cluster.advance(90)
    conn = ClusterConnection([bare_cluster.kubeconfig_path], None)
    engine = ClusterEngine(conn, namespace=NAMESPACE, fallback_namespace=NAMESPACE)
    changed = asyncio.Event()
    engine.subscribe(lambda *args: changed.set())
    await engine.start(["jumpstartmodels", "inferenceendpointconfigs", "inferenceservices", "pods", "services"])

    def rows():
        stores = {name: store.snapshot() for name, store in engine.stores.items()}
        return {r.name: r for r in endpoint_rows(stores)}

    async def until(predicate, what):
        for _ in range(200):
            if predicate(rows()):
                return
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        raise AssertionError(f"never saw {what}: {rows()}")

    try:
        await until(lambda r: {"scaled", "scaled-isvc"} <= set(r) and r["scaled"].replicas_ready == 1
                    and r["scaled-isvc"].replicas_ready == 1, "both serving")
        with pytest.raises(ReadOnlyError):
            await ep.scale(conn, rows()["scaled"], 3, readonly=True)
        how = await ep.scale(conn, rows()["scaled"], 3, readonly=False, discovery=engine.discovery)
        assert how == "replicas set to 3 (scale subresource)"
        how = await ep.scale(conn, rows()["scaled-isvc"], 4, readonly=False, discovery=engine.discovery)
        assert how == "minReplicas set to 4 and maxReplicas to 4"
        await until(lambda r: r["scaled"].replicas_desired == 3 and r["scaled-isvc"].replicas_desired == 4, "desired")
        await asyncio.to_thread(bare_cluster.advance, 90)
        await until(lambda r: r["scaled"].ready_text == "3/3" and len(r["scaled"].pods) == 3
                    and r["scaled-isvc"].replicas_ready == 4, "scaled up")
        await ep.scale(conn, rows()["scaled"], 1, readonly=False, discovery=engine.discovery)
        how = await ep.scale(conn, rows()["scaled-isvc"], 1, readonly=False, discovery=engine.discovery)
        assert how == "minReplicas set to 1; KServe's autoscaler runs it between 1 and 4 replicas"  # max kept
        await asyncio.to_thread(bare_cluster.advance, 5)
        await until(lambda r: r["scaled"].ready_text == "1/1" and len(r["scaled"].pods) == 1
                    and r["scaled-isvc"].replicas_ready == 1 and r["scaled-isvc"].autoscaling == (1, 4), "scaled down")
    finally:
        await engine.close()


async def test_deploy_from_a_manifest_and_delete(bare_cluster) -> None:
    conn, discovery = await _connect(bare_cluster)
    try:
        documents = parse_manifest(json.dumps(endpoint_config("from-file")), "endpoint.yaml")
        with pytest.raises(ReadOnlyError):
            await submit(conn, documents, readonly=True, discovery=discovery)
        assert await submit(conn, documents, readonly=False, discovery=discovery) == [
            f"InferenceEndpointConfig/{NAMESPACE}/from-file"]
        await asyncio.to_thread(bare_cluster.advance, 90)

        async def rows():
            return {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}

        row = (await rows())["from-file"]
        assert (row.state, row.ready_text, len(row.pods)) == ("DeploymentComplete", "1/1", 1)
        with pytest.raises(ReadOnlyError):
            await ep.delete(conn, row, readonly=True)
        await ep.delete(conn, row, readonly=False, discovery=discovery)
        # The operator's finalizer holds the object while its model servers stop: the deletion states.
        assert (await rows())["from-file"].state == "DeletionPending"
        await asyncio.to_thread(bare_cluster.advance, 4)
        assert (await rows())["from-file"].state == "DeletionInProgress"
        await asyncio.to_thread(bare_cluster.advance, 30)
        assert "from-file" not in await rows()
        pods = await conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
        assert not [p for p in pods["items"] if p["metadata"]["name"].startswith("from-file")]
        with pytest.raises(ep.EndpointError, match="not found"):
            await ep.delete(conn, row, readonly=False, discovery=discovery)
    finally:
        await conn.close()


async def test_a_model_server_that_does_not_go_fails_the_deletion_until_it_goes(bare_cluster, demo_kubectl) -> None:
    """A model server pod held by a finalizer of its own (as a volume or policy controller can): the operator waits
    its deletion timeout, says DeletionFailed with the pod and its finalizer, keeps its own finalizer; once the pod's
    finalizer goes, the deletion finishes."""
    kubectl = demo_kubectl(bare_cluster)
    create(bare_cluster, jumpstart("stuck"))
    await asyncio.to_thread(bare_cluster.advance, 90)
    pods = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app=stuck")["items"]
    assert len(pods) == 1
    pod = pods[0]["metadata"]["name"]
    kubectl("patch", "pod", pod, "-n", NAMESPACE, "--type", "merge", "-p",
            json.dumps({"metadata": {"finalizers": ["example.com/hold"]}}))
    conn, discovery = await _connect(bare_cluster)
    try:
        async def row():
            return {r.name: r for r in await ep.fetch_endpoints(conn, discovery, NAMESPACE)}.get("stuck")

        await ep.delete(conn, await row(), readonly=False, discovery=discovery)
        await asyncio.to_thread(bare_cluster.advance, 10)
        assert (await row()).state == "DeletionInProgress"
        held = kubectl.json("get", "pod", pod, "-n", NAMESPACE)
        # The kubelet stopped the model server; the pod's own finalizer keeps the object.
        assert held["metadata"].get("deletionTimestamp") and held["status"]["phase"] == "Succeeded"
        assert "Terminating" in kubectl("get", "pod", pod, "-n", NAMESPACE)

        await asyncio.to_thread(bare_cluster.advance, 60)
        failed = await row()
        assert failed.state == "DeletionFailed" and not failed.serving
        assert failed.reason.startswith("DeletionTimedOut: Model server pods still present 60s after deletion began")
        assert f"{pod} (finalizers: example.com/hold)" in failed.reason
        obj = kubectl.json("get", "jumpstartmodel", "stuck", "-n", NAMESPACE)
        assert obj["status"]["state"] == "DeletionFailed"
        assert "inference.sagemaker.aws.amazon.com/endpoint-cleanup" in obj["metadata"]["finalizers"]
        events = kubectl.json("get", "events", "-n", NAMESPACE,
                              "--field-selector", "involvedObject.name=stuck,reason=DeletionFailed")["items"]
        assert [e["type"] for e in events] == ["Warning"]

        # Still failed while the blocker stays; gone once it is removed.
        await asyncio.to_thread(bare_cluster.advance, 30)
        assert (await row()).state == "DeletionFailed"
        kubectl("patch", "pod", pod, "-n", NAMESPACE, "--type", "json", "-p",
                json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]))
        await asyncio.to_thread(bare_cluster.advance, 1)
        assert await row() is None
        assert kubectl.run("get", "jumpstartmodel", "stuck", "-n", NAMESPACE, check=False).returncode == 1
        assert kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app=stuck")["items"] == []
    finally:
        await conn.close()


# --- answers of every shape, from real HTTP handlers behind the simulated cluster's proxy ---------------------------

def _serve(handle, plural: str, name: str, port: int, handler) -> None:
    """Serve `plural/name:port/proxy/...` from `handler` in the cluster's API server (its real proxy path)."""
    proxies = handle.cluster.server.proxies
    register = proxies.register_pod if plural == "pods" else proxies.register_service
    handle.call(lambda: register(NAMESPACE, name, port, handler))


async def test_a_large_metrics_exposition_is_read_whole_and_capped(serving_cluster) -> None:
    from aiohttp import web

    lines = [f'model_invocations_total{{code="200",route="/r{i}"}} 1' for i in range(7000)]
    large = "\n".join(lines) + "\n"
    assert len(large) > 320 * 1024
    huge = large * 14  # past the 4 MiB cap

    def exposition(text):
        async def handle(request, path):
            return web.Response(text=text, content_type="text/plain")
        return handle

    conn, _ = await _connect(serving_cluster)
    try:
        pods = (await conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"))["items"]
        pod = next(p for p in pods if p["metadata"]["name"].startswith("llama3-8b"))
        _serve(serving_cluster, "pods", pod["metadata"]["name"], 9300, exposition(large))
        _serve(serving_cluster, "pods", pod["metadata"]["name"], 9301, exposition(huge))
        # No port named metrics: the prometheus.io/port annotation says where.
        for container in pod["spec"]["containers"]:
            container["ports"] = [p for p in container.get("ports") or () if p.get("name") != "metrics"]
        pod["metadata"].setdefault("annotations", {})["prometheus.io/port"] = "9300"
        whole = await ep.read_figures(conn, [pod])
        pod["metadata"]["annotations"]["prometheus.io/port"] = "9301"
        capped = await ep.read_figures(conn, [pod])
    finally:
        await conn.close()
    assert whole.pods[0].error == "" and whole.requests == 7000 and whole.pods[0].note == ""
    assert capped.pods[0].error == "" and 7000 * 11 < capped.requests < 7000 * 14
    assert "metrics cut at 4 MiB" in capped.line()


async def test_an_answer_cut_off_is_not_a_success(serving_cluster) -> None:
    from aiohttp import web

    async def breaks_off(request, path):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "half"}}]}\n\n')
        request.transport.close()  # the model server dies mid-answer
        return response

    async def stalls(request, path):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "slow"}}]}\n\n')
        await asyncio.Event().wait()  # never more (the client's silence limit ends it)
        return response

    _serve(serving_cluster, "services", "clip-predictor", 8201, breaks_off)
    _serve(serving_cluster, "services", "clip-predictor", 8202, stalls)
    row = (await _rows(serving_cluster))["clip"]
    conn, _ = await _connect(serving_cluster)
    try:
        broken = await ep.invoke(conn, replace(row, service_port=8201), {}, "/openai/v1/chat/completions")
        silent = await ep.invoke(conn, replace(row, service_port=8202), {}, "/openai/v1/chat/completions",
                                 timeout=0.5)
        summary = await ep.load_test(conn, replace(row, service_port=8201), {}, "/openai/v1/chat/completions", 3, 2)
    finally:
        await conn.close()
    for result, text in ((broken, "half"), (silent, "slow")):
        assert result.status == 200 and result.truncated and result.cut and not result.ok
        assert result.pretty() == text
        assert "answer cut after" in result.describe()
    assert "no data for 0.5 s" in silent.describe()
    assert (summary.ok, summary.errors) == (0, {"cut": 3})


async def test_stream_events_of_other_shapes_do_not_break_the_answer(serving_cluster) -> None:
    from aiohttp import web

    async def odd(request, path):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in ("[1]", '"text"', '{"choices": ["a"]}', '{"choices": [{"delta": {"content": "fine"}}]}',
                      "[DONE]"):
            await response.write(f"data: {event}\n\n".encode())
        await response.write_eof()
        return response

    _serve(serving_cluster, "services", "clip-predictor", 8203, odd)
    row = (await _rows(serving_cluster))["clip"]
    conn, _ = await _connect(serving_cluster)
    try:
        result = await ep.invoke(conn, replace(row, service_port=8203), {}, "/openai/v1/chat/completions")
    finally:
        await conn.close()
    assert result.ok and result.pretty() == "fine"


async def test_the_body_goes_out_as_typed(serving_cluster) -> None:
    from aiohttp import web

    seen: list[bytes] = []

    async def echo(request, path):
        seen.append(await request.read())
        return web.json_response({"ok": True})

    _serve(serving_cluster, "services", "clip-predictor", 8204, echo)
    row = (await _rows(serving_cluster))["clip"]
    typed = '{\n  "instances": [1.0, 2.50],\n  "b": "\\u00e9"\n}'
    conn, _ = await _connect(serving_cluster)
    try:
        result = await ep.invoke(conn, replace(row, service_port=8204), typed, "/v1/models/clip:predict")
    finally:
        await conn.close()
    assert result.ok and seen == [typed.encode()]


async def test_readonly_allows_inference_paths_only(serving_cluster) -> None:
    from app.cluster.actions import ReadOnlyError

    rows = await _rows(serving_cluster)
    conn, _ = await _connect(serving_cluster)
    try:
        for path in ("/v2/repository/models/clip/unload", "/sleep", "/v1/models/clip:predict/../x"):
            with pytest.raises((ReadOnlyError, ep.EndpointError)):
                await ep.invoke(conn, rows["clip"], {}, path, readonly=True)
        with pytest.raises(ReadOnlyError):
            await ep.load_test(conn, rows["clip"], {}, "/reset", 2, 1, readonly=True)
        result = await ep.invoke(conn, rows["clip"], {"instances": ["hi"]}, "/v1/models/clip:predict", readonly=True)
        summary = await ep.load_test(conn, rows["deepseek-small"], {"inputs": "hi"}, "/invocations", 2, 2,
                                     readonly=True)
    finally:
        await conn.close()
    assert result.ok and summary.ok == 2


async def test_kinds_the_user_may_not_list_are_said(demo_cluster) -> None:
    access = {"users": [
        {"name": "admin", "token": "admin-token", "rules": [  # the default kubeconfig's: creates the endpoints
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "hyperpod-only", "token": "hp-token", "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["", "inference.sagemaker.aws.amazon.com"],
             "resources": ["*"]}]},
        {"name": "nothing", "token": "no-token", "rules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["namespaces"]}]},
    ]}
    handle = demo_cluster(scenario="bare", seed=5, mlflow=False, access=access)
    create(handle, jumpstart(), inference_service())
    handle.advance(90)
    conn, discovery = await _connect(handle, handle.cluster.server.kubeconfig_for("hyperpod-only"))
    warnings: list[str] = []
    try:
        rows = await ep.fetch_endpoints(conn, discovery, NAMESPACE, warnings)
        with pytest.raises(ep.EndpointError, match=r"no endpoint 'clip' .*cannot list inferenceservices in "
                                                   rf"{NAMESPACE} \(forbidden\)"):
            ep.match_endpoint("clip", rows, NAMESPACE, warnings)
    finally:
        await conn.close()
    assert [r.name for r in rows] == ["deepseek-small"]
    assert warnings == [f"cannot list inferenceservices in {NAMESPACE} (forbidden)"]
    conn, discovery = await _connect(handle, handle.cluster.server.kubeconfig_for("nothing"))
    try:
        with pytest.raises(ep.EndpointError, match="cannot list jumpstartmodels .*forbidden"):
            await ep.fetch_endpoints(conn, discovery, NAMESPACE)
    finally:
        await conn.close()


async def test_a_load_run_keeps_its_concurrency_beyond_the_app_pool(serving_cluster) -> None:
    """120 in flight at once, past the client's default pool of 100 (and on a caller whose pool holds 1): the model
    answers only once all 120 have arrived, so a run squeezed through a smaller pool gets 504s instead."""
    from aiohttp import web

    wanted = 120
    arrived = 0
    everyone = asyncio.Event()

    async def barrier(request, path):
        nonlocal arrived
        await request.read()
        arrived += 1
        if arrived >= wanted:
            everyone.set()
        try:
            await asyncio.wait_for(everyone.wait(), 20)
        except asyncio.TimeoutError:
            return web.json_response({"error": f"only {arrived} requests in flight"}, status=504)
        return web.json_response({"predictions": ["together"]})

    _serve(serving_cluster, "services", "clip-predictor", 8205, barrier)
    row = replace((await _rows(serving_cluster))["clip"], service_port=8205)
    conn = ClusterConnection([serving_cluster.kubeconfig_path], None, pool_size=1)
    await conn.open()
    try:
        summary = await ep.load_test(conn, row, {"instances": ["x"]}, "/v1/models/clip:predict", wanted, wanted)
        version = await conn.request("GET", "/version")  # the caller's own pool is still there for the UI
    finally:
        await conn.close()
    assert (summary.ok, summary.errors, summary.concurrency) == (wanted, {}, wanted)
    assert version["gitVersion"]
