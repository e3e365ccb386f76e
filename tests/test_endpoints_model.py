"""The pure parts of the Endpoints pane: states per kind, pods by selector, percentiles, streams cut anywhere,
metrics expositions as model servers write them."""

from __future__ import annotations

import json

from app.cluster.endpoints import EndpointFigures, parse_metrics
from app.model.endpoints import StreamText, endpoint_rows, percentile, summarize


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99), percentile(values, 100)) == (
        50.0, 95.0, 99.0, 100.0)
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0


def test_summary_counts_errors_apart_from_latencies() -> None:
    results = [(200, 100.0), (200, 300.0), (503, 5.0), (0, 30000.0), (200, 200.0)]
    summary = summarize(results, seconds=2.0, concurrency=2)
    assert (summary.requests, summary.ok, summary.errors) == (5, 3, {"503": 1, "transport": 1})
    assert (summary.p50_ms, summary.p99_ms, summary.max_ms, summary.mean_ms) == (200.0, 300.0, 300.0, 200.0)
    assert summary.per_second == 2.5
    assert "errors: 503×1, transport×1" in summary.lines()[0]


def test_stream_text_survives_chunks_cut_anywhere() -> None:
    events = [{"choices": [{"delta": {"content": word}}]} for word in ("Hello", ", ", "world")]
    raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n" + "data: {\"late\": 1}\n\n"
    for size in (1, 3, 7, len(raw)):
        stream = StreamText()
        text = "".join(stream.feed(raw[i:i + size]) for i in range(0, len(raw), size))
        assert text == "Hello, world" and stream.done


def test_an_error_event_in_a_stream_is_a_failure() -> None:
    from app.cluster.endpoints import InvokeResult
    from app.model.endpoints import stream_error

    error = {"error": {"message": "CUDA out of memory\nwhile decoding", "type": "server_error", "code": 500}}
    raw = (f"data: {json.dumps({'choices': [{'delta': {'content': 'Hel'}}]})}\n\n"
           f"data: {json.dumps(error)}\n\ndata: [DONE]\n\n")
    stream = StreamText()
    assert "".join(stream.feed(raw[i:i + 5]) for i in range(0, len(raw), 5)) == "Hel"
    assert stream.error == "CUDA out of memory while decoding"
    assert stream_error(raw.splitlines()) == stream.error
    assert stream_error(['data: {"choices": []}', "data: [DONE]", 'data: {"error": "after the end"}']) == ""

    result = InvokeResult(200, raw, 812.0, "text/event-stream", streamed=True, stream_error=stream.error)
    assert not result.ok
    assert result.describe() == ("200 from the model server, then an error in the stream after 812 ms: "
                                 "CUDA out of memory while decoding")
    summary = summarize([(200, 10.0, False, True), (200, 20.0, False, False)], seconds=1.0, concurrency=1)
    assert (summary.ok, summary.errors) == (1, {"stream-error": 1})


def _hp(name: str, state: str | None, selector: str | None = None, **status) -> dict:
    obj = {"metadata": {"name": name, "namespace": "ns", "uid": name}, "spec": {"replicas": 2}, "status": dict(status)}
    if state:
        obj["status"]["state"] = state
    if selector:
        obj["status"]["selector"] = selector
    return obj


def _pod(name: str, labels: dict, ready: bool) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_states_and_pods_per_kind() -> None:
    stores = {
        "jumpstartmodels": {"ns/a": _hp("a", None), "ns/b": _hp("b", "DeletionInProgress", "app=b,tier=model")},
        "inferenceservices": {"ns/c": {"metadata": {"name": "c", "namespace": "ns", "uid": "c"},
                                       "spec": {"predictor": {"minReplicas": 2}},
                                       "status": {"conditions": [
                                           {"type": "PredictorReady", "status": "False", "message": "loading"},
                                           {"type": "Ready", "status": "False", "reason": "PredictorNotReady"}]}}},
        "pods": {"ns/b-1": _pod("b-1", {"app": "b", "tier": "model"}, True),
                 "ns/b-2": _pod("b-2", {"app": "b"}, True),  # misses one label of the selector
                 "ns/c-1": _pod("c-1", {"serving.kserve.io/inferenceservice": "c", "component": "predictor"}, True),
                 "ns/c-2": _pod("c-2", {"serving.kserve.io/inferenceservice": "c", "component": "predictor"}, False),
                 # the InferenceService's transformer: same inferenceservice label, not a model server
                 "ns/c-t": _pod("c-t", {"serving.kserve.io/inferenceservice": "c", "component": "transformer"}, True)},
    }
    rows = {r.name: r for r in endpoint_rows(stores)}
    assert (rows["a"].state, rows["a"].ready_text) == ("DeploymentPending", "0/2")
    assert rows["b"].state == "DeletionInProgress" and rows["b"].pods == ("ns/b-1",)
    assert (rows["c"].state, rows["c"].reason, rows["c"].ready_text) == ("NotReady", "loading", "1/2")
    assert rows["c"].pods == ("ns/c-1", "ns/c-2")
    # One readiness rule: KServe's Ready condition; a HyperPod endpoint being deleted is not invocable even with a
    # ready pod left.
    assert not rows["c"].serving and not rows["a"].serving and not rows["b"].serving


def test_deletion_failed_and_complete_rows() -> None:
    """DeletionFailed says why as the other failures do; DeletionComplete (the operator's last write, seen only by a
    watch that catches it before the object goes) is a row that is not serving and has no reason to give."""
    from app.model.endpoints import endpoint_detail

    stuck = _hp("stuck", "DeletionFailed", "app=stuck", deploymentStatus={
        "deploymentObjectOverallState": "DeletionFailed", "reason": "DeletionTimedOut",
        "message": "Model server pods still present 60s after deletion began: stuck-1 (finalizers: example.com/hold)"})
    done = _hp("done", "DeletionComplete", "app=done", deploymentStatus={
        "deploymentObjectOverallState": "DeletionComplete", "reason": "", "message": ""})
    stores = {"jumpstartmodels": {"ns/stuck": stuck, "ns/done": done},
              "pods": {"ns/stuck-1": _pod("stuck-1", {"app": "stuck"}, False)}}
    rows = {r.name: r for r in endpoint_rows(stores)}
    assert rows["stuck"].state == "DeletionFailed" and not rows["stuck"].serving
    assert rows["stuck"].reason == ("DeletionTimedOut: Model server pods still present 60s after deletion began: "
                                    "stuck-1 (finalizers: example.com/hold)")
    assert rows["stuck"].pods == ("ns/stuck-1",)
    assert "DeletionFailed (DeletionTimedOut)" in endpoint_detail(rows["stuck"], stores).deployment
    assert (rows["done"].state, rows["done"].reason, rows["done"].serving, rows["done"].pods) == (
        "DeletionComplete", "", False, ())


def _isvc(name: str, ready: str, **model_status) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"predictor": {"minReplicas": 0, "model": {"storageUri": "s3://models/x"}}},
            "status": {"conditions": [{"type": "Ready", "status": ready}], "modelStatus": model_status}}


def test_kserve_state_trusts_ready_over_a_stale_failure() -> None:
    from app.model.endpoints import endpoint_detail

    failure = {"reason": "ModelLoadFailed", "message": "OOM on first load"}
    stores = {"inferenceservices": {
        # recovered: KServe keeps lastFailureInfo after the model loads; scaled to zero: no pods at all
        "ns/recovered": _isvc("recovered", "True", lastFailureInfo=failure, states={"activeModelState": "Loaded"}),
        "ns/failed": _isvc("failed", "False", lastFailureInfo=failure, states={"activeModelState": "FailedToLoad"}),
        "ns/retrying": _isvc("retrying", "False", lastFailureInfo=failure, states={"activeModelState": "Pending"}),
    }}
    rows = {r.name: r for r in endpoint_rows(stores)}
    assert (rows["recovered"].state, rows["recovered"].reason, rows["recovered"].serving) == ("Ready", "", True)
    assert rows["failed"].state == "FailedToLoad" and rows["failed"].reason == "ModelLoadFailed: OOM on first load"
    assert rows["retrying"].state == "NotReady" and "OOM on first load" in rows["retrying"].reason
    assert "earlier failure, recovered since ModelLoadFailed" in endpoint_detail(rows["recovered"], stores).deployment


def test_kserve_chat_template_names_the_inference_service() -> None:
    row = endpoint_rows({"inferenceservices": {"ns/clip": _isvc("clip", "True")}})[0]
    chat = next(p for p in row.protocols() if p.name == "openai-chat")
    assert chat.body["model"] == "clip"


def test_stream_events_of_other_shapes_are_skipped() -> None:
    from app.model.endpoints import stream_text

    lines = ["data: [1]", 'data: "text"', 'data: {"choices": ["a", 3]}', 'data: {"choices": "x"}',
             'data: {"choices": [{"delta": "x"}, {"delta": {"content": 5}}]}',
             'data: {"choices": [{"delta": {"content": "ok"}}]}']
    assert stream_text(lines) == "ok"
    stream = StreamText()
    assert stream.feed("\n".join(lines) + "\n") == "ok"


def test_cut_answers_count_apart() -> None:
    summary = summarize([(200, 100.0, False), (200, 9000.0, True), (503, 5.0)], seconds=1.0, concurrency=1)
    assert (summary.ok, summary.errors, summary.max_ms) == (1, {"503": 1, "cut": 1}, 100.0)


def test_metrics_exposition_to_figures() -> None:
    text = """# TYPE model_invocations_total counter
model_invocations_total{code="200"} 90
model_invocations_total{code="500"} 10
# TYPE model_latency_milliseconds histogram
model_latency_milliseconds_bucket{le="100.0"} 50
model_latency_milliseconds_bucket{le="250.0"} 95
model_latency_milliseconds_bucket{le="+Inf"} 100
model_latency_milliseconds_sum 15000
model_latency_milliseconds_count 100
"""
    pod = parse_metrics(text, "p")
    figures = EndpointFigures([pod, parse_metrics(text, "q")], read_at=10.0)
    assert (figures.requests, figures.errors, figures.mean_ms) == (200, 20, 150.0)
    assert (figures.quantile_ms(0.5), figures.quantile_ms(0.95), figures.quantile_ms(0.99)) == (100.0, 250.0, float("inf"))
    earlier = EndpointFigures([parse_metrics(text.replace(" 90\n", " 40\n"), "p"), parse_metrics(text, "q")], read_at=5.0)
    assert "10.0 req/s" in figures.line(earlier)
    assert parse_metrics("this is { not metrics", "p").error.startswith("unreadable metrics")
    untyped = parse_metrics("\n".join(line for line in text.splitlines() if not line.startswith("#")), "p")
    assert (untyped.requests, untyped.latency_count, len(untyped.buckets)) == (100, 100, 3)
    # A counter without a code/status label is neither success nor error.
    unlabelled = EndpointFigures([parse_metrics("model_invocations_total 7\n", "p")], read_at=1.0)
    assert (unlabelled.requests, unlabelled.errors, unlabelled.unknown) == (7, 0, 7)
    assert "7 without a status code" in unlabelled.line()


def test_request_rate_counts_only_pods_read_twice_and_survives_counter_resets() -> None:
    from app.cluster.endpoints import PodFigures

    def figures(read_at: float, *pods: PodFigures) -> EndpointFigures:
        return EndpointFigures(list(pods), read_at=read_at)

    # a: +30 in 3 s; b: unreadable before (its lifetime 9000 must not count); c: new after a scale-up (likewise)
    before = figures(10.0, PodFigures("a", 100), PodFigures("b", error="connection refused"))
    after = figures(13.0, PodFigures("a", 130), PodFigures("b", 9000), PodFigures("c", 5000))
    assert after.rate(before) == 10.0
    assert "10.0 req/s" in after.line(before)
    # a restarted server counts from 0 again: its 6 new requests came in the 3 s, nothing is hidden by the drop
    restarted = figures(16.0, PodFigures("a", 6), PodFigures("b", 9030))
    assert restarted.rate(after) == (6 + 30) / 3
    # no pod read in both samples, or no time between them: no rate rather than a made-up one
    assert figures(19.0, PodFigures("d", 50)).rate(restarted) is None
    assert "req/s" not in figures(19.0, PodFigures("d", 50)).line(restarted)
    assert restarted.rate(restarted) is None and restarted.rate(None) is None


def test_metrics_port_falls_back_to_the_annotation_then_the_serving_port() -> None:
    from app.cluster.endpoints import metrics_port

    def pod(ports, annotations=None):
        return {"metadata": {"annotations": annotations or {}}, "spec": {"containers": [{"ports": ports}]}}

    http = {"name": "http", "containerPort": 8080}
    assert metrics_port(pod([http, {"name": "metrics", "containerPort": 9091}])) == 9091
    assert metrics_port(pod([http], {"prometheus.io/port": "8000"})) == 8000
    assert metrics_port(pod([http])) == 8080
    assert metrics_port(pod([])) is None


def test_detail_says_why_a_pod_waits() -> None:
    from app.model.endpoints import endpoint_detail

    stores = {
        "jumpstartmodels": {"ns/b": _hp("b", "DeploymentInProgress", "app=b")},
        "pods": {"ns/b-1": _pod("b-1", {"app": "b"}, True), "ns/b-2": _pod("b-2", {"app": "b"}, False)},
        "events": {f"ns/e{i}": {"metadata": {"name": f"e{i}", "namespace": "ns"},
                                "involvedObject": {"kind": "Pod", "name": pod, "namespace": "ns"}, "type": kind,
                                "reason": reason, "message": message, "lastTimestamp": f"2026-11-27T10:0{i}:00Z"}
                   for i, (pod, kind, reason, message) in enumerate([
                       ("b-2", "Warning", "FailedScheduling", "0/8 nodes are available: 8 Insufficient nvidia.com/gpu"),
                       ("b-1", "Warning", "Unhealthy", "Readiness probe failed"),  # b-1 is ready now: not stuck
                       ("b-2", "Normal", "Scheduled", "assigned")])},
    }
    row = endpoint_rows(stores)[0]
    detail = endpoint_detail(row, stores)
    assert detail.stuck == ("b-2: FailedScheduling: 0/8 nodes are available: 8 Insufficient nvidia.com/gpu",)
