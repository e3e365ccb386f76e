"""Inference endpoints as the Endpoints pane shows them: one row per endpoint across the kinds the cluster serves.

Kinds: the HyperPod inference operator's `JumpStartModel` and `InferenceEndpointConfig`
(`inference.sagemaker.aws.amazon.com/v1`), and KServe's `InferenceService` (`serving.kserve.io/v1beta1`).
Each row carries the kind's own state (`DeploymentPending` … `DeploymentComplete`, or KServe's `Ready`), replicas
ready/desired, autoscaling bounds, where to send requests (the Service behind the endpoint and the paths its model
server answers), and the pods that serve it. Also here: request body templates per protocol, JSON bodies checked
with their error position, and load-test percentiles. Pure functions over plain dicts; no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

from app.model.jobs import ConditionEntry, EventEntry, PodEntry, conditions_of, events_about, parse_time, pod_gpus

Obj = dict[str, Any]

ENDPOINT_KINDS: dict[str, str] = {
    "jumpstartmodels": "JumpStartModel",
    "inferenceendpointconfigs": "InferenceEndpointConfig",
    "inferenceservices": "InferenceService",
}
"""store name -> kind"""

HYPERPOD_KINDS = ("jumpstartmodels", "inferenceendpointconfigs")
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
KSERVE_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_COMPONENT = ("component", "predictor")
"""KServe labels a predictor's pods so; its transformer and explainer pods carry the same inferenceservice label."""

STATES = ("DeploymentFailed", "FailedToLoad", "DeletionFailed", "DeploymentPending", "Pending",
          "DeploymentInProgress", "NotReady", "DeletionPending", "DeletionInProgress", "DeploymentComplete", "Ready",
          "DeletionComplete")
"""Every state a row can show, in the order a sort by state lists them: trouble first, serving last."""
FAILED_STATES = frozenset({"DeploymentFailed", "FailedToLoad", "DeletionFailed"})
DELETION_STATES = frozenset({"DeletionPending", "DeletionInProgress", "DeletionComplete", "DeletionFailed"})
SERVING_STATES = frozenset({"DeploymentComplete", "Ready"})


@dataclass(frozen=True)
class Protocol:
    """A way to talk to a model server: the path on its Service and a request body to start from."""

    name: str
    path: str
    body: Any
    streams: bool = False
    """The server answers `"stream": true` with server-sent events."""


@dataclass(frozen=True)
class EndpointRow:
    key: str
    """`<store>/<namespace>/<name>`"""
    name: str
    namespace: str
    kind: str
    model: str
    instance_type: str
    state: str
    replicas_ready: int
    replicas_desired: int
    autoscaling: tuple[int, int] | None
    url: str
    created: datetime | None
    reason: str
    """Why the endpoint is not serving (the deployment status or failure message), empty when it is."""
    service: str
    """The Service requests go to (through `services/<service>:<port>/proxy`)."""
    service_port: int
    pods: tuple[str, ...] = field(default_factory=tuple)
    """`namespace/name` of its model server pods."""

    @property
    def store(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def serving(self) -> bool:
        """The one readiness rule (the pane's warning and the refusal before sending agree): KServe's own Ready
        condition (true also when scaled to zero, and when the user may not list pods); for the HyperPod kinds a
        ready replica. Never while failed or being deleted."""
        if self.state in FAILED_STATES or self.state in DELETION_STATES:
            return False
        if self.kind == "InferenceService":
            return self.state == "Ready"
        return self.replicas_ready > 0

    @property
    def ready_text(self) -> str:
        return f"{self.replicas_ready}/{self.replicas_desired}"

    @property
    def autoscaling_text(self) -> str:
        return f"{self.autoscaling[0]}–{self.autoscaling[1]}" if self.autoscaling else ""

    def age_seconds(self, now: datetime) -> int | None:
        return int((now - self.created).total_seconds()) if self.created else None

    def protocols(self) -> list[Protocol]:
        return protocols(self.kind, self.name, self.model)


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == type_), None)


def _state(store: str, obj: Obj) -> tuple[str, str]:
    """(state, why it is not serving)."""
    status = obj.get("status") or {}
    if store in HYPERPOD_KINDS:
        state = status.get("state") or "DeploymentPending"
        deployment = status.get("deploymentStatus") or {}
        reason = ""
        if state not in SERVING_STATES:
            ready = _condition(obj, "Ready") or {}
            detail = deployment.get("message") or ready.get("message") or ""
            why = deployment.get("reason") if state in FAILED_STATES else ""
            reason = f"{why}: {detail}" if why and detail else why or detail
        return state, reason
    # Ready first: KServe keeps `lastFailureInfo` after the model recovers, so a failure counts only while not Ready.
    ready = _condition(obj, "Ready")
    if ready is not None and ready.get("status") == "True":
        return "Ready", ""
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    states = model_status.get("states") or {}
    if "FailedToLoad" in (states.get("activeModelState"), states.get("targetModelState")):
        why = failure.get("reason") or "FailedToLoad"
        return "FailedToLoad", f"{why}: {failure.get('message', '')}".rstrip(": ")
    if ready is None or ready.get("status") == "Unknown":
        return "Pending", "waiting for the KServe controller"
    predictor = _condition(obj, "PredictorReady") or {}
    why = predictor.get("message") or ready.get("message") or ready.get("reason") or ""
    if failure and not why:
        why = f"{failure.get('reason', '')}: {failure.get('message', '')}".strip(": ")
    return "NotReady", why


def _model(store: str, spec: Obj) -> str:
    if store == "jumpstartmodels":
        model = spec.get("model") or {}
        version = model.get("modelVersion")
        return f"{model.get('modelId', '')}{'@' + str(version) if version else ''}"
    if store == "inferenceendpointconfigs":
        source = spec.get("modelSourceConfig") or {}
        location = source.get("modelLocation") or ""
        if source.get("modelSourceType") == "s3":
            bucket = (source.get("s3Storage") or {}).get("bucketName", "")
            location = f"s3://{bucket}/{location}" if bucket else location
        return " ".join(p for p in (spec.get("modelName") or "", f"({location})" if location else "") if p)
    model = ((spec.get("predictor") or {}).get("model") or {})
    return model.get("storageUri") or (model.get("modelFormat") or {}).get("name") or ""


def _instance_type(store: str, spec: Obj) -> str:
    if store == "jumpstartmodels":
        return (spec.get("server") or {}).get("instanceType") or ""
    if store == "inferenceendpointconfigs":
        return spec.get("instanceType") or ""
    return ((spec.get("predictor") or {}).get("nodeSelector") or {}).get(INSTANCE_TYPE_LABEL) or ""


def _desired(store: str, spec: Obj) -> int:
    if store == "jumpstartmodels":
        return _int(spec.get("replicas"), _int((spec.get("server") or {}).get("minAutoScaleReplicas"), 1)) or 0
    if store == "inferenceendpointconfigs":
        return _int(spec.get("replicas"), 1) or 0
    return _int((spec.get("predictor") or {}).get("minReplicas"), 1) or 0


def _autoscaling(store: str, spec: Obj) -> tuple[int, int] | None:
    if store in HYPERPOD_KINDS:
        auto = spec.get("autoScalingSpec") or {}
        low, high = _int(auto.get("minReplicaCount"), None), _int(auto.get("maxReplicaCount"), None)
        if low is None and high is None and store == "jumpstartmodels":
            server = spec.get("server") or {}
            low, high = _int(server.get("minAutoScaleReplicas"), None), _int(server.get("maxAutoScaleReplicas"), None)
    else:
        predictor = spec.get("predictor") or {}
        low, high = _int(predictor.get("minReplicas"), None), _int(predictor.get("maxReplicas"), None)
        if high is None:
            return None
    if low is None and high is None:
        return None
    return (low if low is not None else 1, high if high is not None else (low or 1))


class _Index:
    """Pods by (namespace, label, value) and Services by (namespace, name) and owner uid: the join stays linear at
    thousands of endpoints instead of scanning every pod for each one. Given `namespaces` and `keys`, only pods and
    Services of those namespaces, and only those label keys, are indexed (what the endpoints' selectors can ask)."""

    def __init__(self, pods: Iterable[Obj], services: Iterable[Obj], namespaces: set[str] | None = None,
                 keys: set[str] | None = None) -> None:
        self.pods: dict[tuple[str, str, str], list[Obj]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            namespace = meta.get("namespace", "")
            if namespaces is not None and namespace not in namespaces:
                continue
            for key, value in (meta.get("labels") or {}).items():
                if keys is None or key in keys:
                    self.pods.setdefault((namespace, key, value), []).append(pod)
        self.services: dict[tuple[str, str], Obj] = {}
        self.owned: dict[str, list[Obj]] = {}
        for service in services:
            meta = service.get("metadata") or {}
            if namespaces is not None and meta.get("namespace", "") not in namespaces:
                continue
            self.services[(meta.get("namespace", ""), meta.get("name", ""))] = service
            for ref in meta.get("ownerReferences") or ():
                self.owned.setdefault(ref.get("uid", ""), []).append(service)


def _service(store: str, obj: Obj, index: _Index) -> tuple[str, int]:
    meta = obj["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    conventional = f"{name}-service" if store in HYPERPOD_KINDS else f"{name}-predictor"
    owned = [s for s in index.owned.get(meta.get("uid", ""), []) if s["metadata"].get("namespace") == namespace]
    chosen = index.services.get((namespace, conventional)) or (owned[0] if owned else None)
    if chosen is None:
        return conventional, 8080 if store in HYPERPOD_KINDS else 80
    ports = (chosen.get("spec") or {}).get("ports") or [{}]
    return chosen["metadata"]["name"], _int(ports[0].get("port"), 80) or 80


def _selector(selector: str) -> list[tuple[str, str]]:
    """`a=b,c=d` equality selectors (what the operators put in `status.selector`)."""
    pairs = [p.split("=", 1) for p in selector.split(",") if "=" in p]
    return [(k.strip(), v.strip().lstrip("=")) for k, v in pairs]


def _pairs(store: str, obj: Obj) -> list[tuple[str, str]]:
    name = (obj.get("metadata") or {}).get("name", "")
    if store in HYPERPOD_KINDS:
        return _selector((obj.get("status") or {}).get("selector") or "") or [("app", name)]
    return [(KSERVE_LABEL, name), KSERVE_COMPONENT]


def pod_selector(store: str, obj: Obj) -> str:
    """The label selector (`k=v,k2=v2`) that picks the endpoint's model server pods, as `endpoint_pods` does."""
    return ",".join(f"{k}={v}" for k, v in _pairs(store, obj))


def endpoint_pods(store: str, obj: Obj, pods: Iterable[Obj] | _Index) -> list[Obj]:
    """The endpoint's model server pods: those its `status.selector` (HyperPod) or KServe's predictor labels pick."""
    index = pods if isinstance(pods, _Index) else _Index(pods, ())
    meta = obj["metadata"]
    namespace = meta.get("namespace", "")
    pairs = _pairs(store, obj)
    first, rest = pairs[0], pairs[1:]
    found = [p for p in index.pods.get((namespace, *first), [])
             if all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in rest)]
    return sorted(found, key=lambda p: p["metadata"]["name"])


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _url(store: str, obj: Obj, service: str, port: int) -> str:
    status = obj.get("status") or {}
    if store == "inferenceservices":
        return status.get("url") or (status.get("address") or {}).get("url") or ""
    namespace = obj["metadata"].get("namespace", "")
    return f"http://{service}.{namespace}.svc:{port}"


def endpoint_row(store: str, obj: Obj, index: _Index) -> EndpointRow:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    state, reason = _state(store, obj)
    its_pods = endpoint_pods(store, obj, index)
    if store in HYPERPOD_KINDS and "deploymentStatus" in status:
        ready = _int(((status.get("deploymentStatus") or {}).get("status") or {}).get("readyReplicas"), 0) or 0
    else:
        ready = sum(1 for p in its_pods if pod_ready(p))
    service, port = _service(store, obj, index)
    return EndpointRow(
        key=f"{store}/{namespace}/{name}", name=name, namespace=namespace, kind=ENDPOINT_KINDS[store],
        model=_model(store, spec), instance_type=_instance_type(store, spec), state=state,
        replicas_ready=ready, replicas_desired=_desired(store, spec), autoscaling=_autoscaling(store, spec),
        url=_url(store, obj, service, port), created=parse_time(meta.get("creationTimestamp")), reason=reason,
        service=service, service_port=port,
        pods=tuple(f"{namespace}/{p['metadata']['name']}" for p in its_pods),
    )


def endpoint_rows(stores: Mapping[str, Mapping[str, Obj]]) -> list[EndpointRow]:
    """Every endpoint in `stores` (store name -> key -> object), joined with `pods` and `services`."""
    objects = [(store, obj) for store in ENDPOINT_KINDS for obj in (stores.get(store) or {}).values()]
    if not objects:
        return []
    namespaces = {(obj.get("metadata") or {}).get("namespace", "") for _, obj in objects}
    keys = {key for store, obj in objects for key, _ in _pairs(store, obj)}
    index = _Index((stores.get("pods") or {}).values(), (stores.get("services") or {}).values(), namespaces, keys)
    rows = [endpoint_row(store, obj, index) for store, obj in objects]
    return sorted(rows, key=lambda r: (r.namespace, r.name, r.kind))


def endpoint_row_of(store: str, obj: Obj, stores: Mapping[str, Mapping[str, Obj]]) -> EndpointRow:
    """One endpoint's row, joined with only its own namespace's pods and Services (the detail view's refresh)."""
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    keys = {key for key, _ in _pairs(store, obj)}
    index = _Index((stores.get("pods") or {}).values(), (stores.get("services") or {}).values(), {namespace}, keys)
    return endpoint_row(store, obj, index)


def endpoint_dict(row: EndpointRow, now: datetime) -> dict[str, Any]:
    """One endpoint as `get endpoints -o json|yaml` prints it."""
    return {
        "name": row.name, "namespace": row.namespace, "kind": row.kind, "model": row.model,
        "instance_type": row.instance_type, "state": row.state, "replicas_ready": row.replicas_ready,
        "replicas_desired": row.replicas_desired,
        "autoscaling": {"min": row.autoscaling[0], "max": row.autoscaling[1]} if row.autoscaling else None,
        "url": row.url, "service": f"{row.service}:{row.service_port}", "reason": row.reason or None,
        "pods": [p.rpartition("/")[2] for p in row.pods], "age_seconds": row.age_seconds(now),
    }


# --------------------------------------------------------------------------------------------------- detail

@dataclass(frozen=True)
class EndpointDetail:
    row: EndpointRow
    conditions: tuple[ConditionEntry, ...]
    deployment: str
    """The deployment status line: overall state, reason, message (HyperPod) or the model status (KServe)."""
    pods: tuple[PodEntry, ...]
    events: tuple[EventEntry, ...]
    autoscaling: tuple[tuple[str, str], ...]
    """(setting, value) pairs of the autoscaling spec, as written."""
    sagemaker: str
    """The SageMaker endpoint's state and ARN (HyperPod kinds), else empty."""
    stuck: tuple[str, ...] = ()
    """Why pods that are not ready wait: `pod: Reason: message` of the latest Warning event about each."""


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flatten(f"{prefix}.{k}" if prefix else k, v)]
    if isinstance(value, list):
        return [(prefix, json.dumps(value, separators=(",", ":")))]
    return [(prefix, str(value))]


def endpoint_detail(row: EndpointRow, stores: Mapping[str, Mapping[str, Obj]], events_limit: int = 20) -> EndpointDetail:
    obj = (stores.get(row.store) or {}).get(f"{row.namespace}/{row.name}") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = sorted(conditions_of(obj, row.kind),
                        key=lambda c: (c.time is None, c.time or datetime.min.replace(tzinfo=timezone.utc)))
    if row.store in HYPERPOD_KINDS:
        ds = status.get("deploymentStatus") or {}
        counts = ds.get("status") or {}
        deployment = " ".join(p for p in (
            ds.get("deploymentObjectOverallState", ""), f"({ds['reason']})" if ds.get("reason") else "",
            ds.get("message", ""),
            f"— {counts.get('readyReplicas', 0)}/{counts.get('replicas', 0)} ready"
            if counts and "ready" not in ds.get("message", "") else "") if p)
        sm = (status.get("endpoints") or {}).get("sagemaker") or {}
        sagemaker = f"{sm.get('state', '')} {sm.get('endpointArn', '')}".strip()
        auto = spec.get("autoScalingSpec") or {}
        if not auto and row.store == "jumpstartmodels":
            server = spec.get("server") or {}
            auto = {k: server[k] for k in ("minAutoScaleReplicas", "maxAutoScaleReplicas") if k in server}
    else:
        ms = status.get("modelStatus") or {}
        states = ms.get("states") or {}
        failure = ms.get("lastFailureInfo") or {}
        earlier = "earlier failure, recovered since " if failure and row.state == "Ready" else ""
        deployment = " ".join(p for p in (
            ms.get("transitionStatus", ""), f"model {states['activeModelState']}" if states.get("activeModelState") else "",
            f"— {earlier}{failure.get('reason', '')}: {failure.get('message', '')}" if failure else "") if p)
        predictor = spec.get("predictor") or {}
        auto = {k: predictor[k] for k in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget",
                                          "autoScaling") if k in predictor}
        sagemaker = ""
    pods_store = stores.get("pods") or {}
    pod_objs = [pods_store.get(key) for key in row.pods]
    pods = tuple(
        PodEntry(
            name=p["metadata"]["name"],
            node=(p.get("spec") or {}).get("nodeName") or "",
            phase=((p.get("status") or {}).get("phase") or "") + (" ready" if pod_ready(p) else ""),
            restarts=sum(int(cs.get("restartCount") or 0) for cs in (p.get("status") or {}).get("containerStatuses") or ()),
            gpus=pod_gpus(p),
        )
        for p in pod_objs if p
    )
    names = {(row.kind, row.name)} | {("Pod", p.name) for p in pods}
    events = events_about(stores, row.namespace, names)
    waiting = {p["metadata"]["name"] for p in pod_objs if p and not pod_ready(p)}
    latest: dict[str, EventEntry] = {}
    for event in events:
        name = event.object.partition("/")[2]
        if event.type == "Warning" and event.object.startswith("pod/") and name in waiting:
            latest[name] = event
    stuck = tuple(f"{name}: {e.reason}: {e.message}" for name, e in sorted(latest.items()))
    return EndpointDetail(row, tuple(conditions), deployment, pods, tuple(events[-events_limit:]),
                          tuple(_flatten("", auto)), sagemaker, stuck)


# ------------------------------------------------------------------------------------------------ requests

CHAT_PROMPT = "In one sentence: why do GPU jobs wait in a queue?"


def protocols(kind: str, name: str, model: str) -> list[Protocol]:
    """The request shapes an endpoint's model server answers, the kind's usual one first."""
    chat = {"model": model.split(" ")[0].split("@")[0] or name, "messages": [{"role": "user", "content": CHAT_PROMPT}],
            "max_tokens": 128}
    if kind == "InferenceService":
        chat = {**chat, "model": name}  # KServe's OpenAI routes serve the model under the InferenceService's name
        return [
            Protocol("openai-chat", "/openai/v1/chat/completions", chat, streams=True),
            Protocol("kserve-v1", f"/v1/models/{name}:predict", {"instances": [CHAT_PROMPT]}),
            Protocol("kserve-v2", f"/v2/models/{name}/infer", {"inputs": [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": [CHAT_PROMPT]}]}),
        ]
    return [
        Protocol("openai-chat", "/v1/chat/completions", chat, streams=True),
        Protocol("sagemaker", "/invocations", {"inputs": CHAT_PROMPT, "parameters": {"max_new_tokens": 128}}),
    ]


class BodyError(ValueError):
    """A request body that is not valid JSON; the message names the line and column."""


def parse_body(text: str) -> Any:
    """The JSON value of a request body the user typed, or BodyError naming where it goes wrong."""
    if not text.strip():
        raise BodyError("the request body is empty: type a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # `[[[[…` some thousand levels deep: json gives up on the stack, not on the syntax
        raise BodyError("the request body is nested too deeply to read") from None


def _events(chunk_lines: Iterable[str]) -> Iterator[dict]:
    """The JSON object events of server-sent `data: {...}` lines, up to `[DONE]`; other lines are skipped."""
    for line in chunk_lines:
        line = line.strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            continue
        if isinstance(event, dict):  # `data: [1]` and the like: not an OpenAI event, skipped
            yield event


def stream_error(chunk_lines: Iterable[str]) -> str:
    """The message of the first error event of an OpenAI-style stream, '' when none. vLLM and OpenAI-style servers
    report a failure that happens after the headers (HTTP 200 already sent) as `data: {"error": {...}}`."""
    for event in _events(chunk_lines):
        error = event.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            return " ".join(str(message or error).split())[:300]
    return ""


def stream_text(chunk_lines: Iterable[str]) -> str:
    """The text carried by server-sent events of an OpenAI-style stream (`data: {...}` lines, `[DONE]` ends)."""
    out = []
    for event in _events(chunk_lines):
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            piece = content if isinstance(content, str) else choice.get("text")
            out.append(piece if isinstance(piece, str) else "")
    return "".join(out)


# ------------------------------------------------------------------------------------------------- load test

def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of values sorted ascending; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class LoadSummary:
    requests: int
    ok: int
    errors: dict[str, int]
    """What went wrong -> how often: an HTTP status (`503`), `transport` for requests with no answer, `cut` for
    answers that broke off, `stream-error` for streams that reported an error event."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    seconds: float
    concurrency: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "ok": self.ok, "errors": dict(sorted(self.errors.items())),
                "p50_ms": _round(self.p50_ms), "p95_ms": _round(self.p95_ms), "p99_ms": _round(self.p99_ms),
                "mean_ms": _round(self.mean_ms), "max_ms": _round(self.max_ms), "seconds": round(self.seconds, 3),
                "requests_per_second": round(self.per_second, 1), "concurrency": self.concurrency}

    def lines(self) -> list[str]:
        def ms(value: float | None) -> str:
            return "—" if value is None else f"{value:.0f} ms"

        errors = ", ".join(f"{k}×{v}" for k, v in sorted(self.errors.items())) or "none"
        return [f"{self.requests} requests, concurrency {self.concurrency}, {self.seconds:.2f} s "
                f"({self.per_second:.1f}/s): {self.ok} ok, errors: {errors}",
                f"latency p50 {ms(self.p50_ms)}  p95 {ms(self.p95_ms)}  p99 {ms(self.p99_ms)}  "
                f"mean {ms(self.mean_ms)}  max {ms(self.max_ms)}"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summarize(results: Iterable[tuple[int, float] | tuple[int, float, bool] | tuple[int, float, bool, bool]],
              seconds: float, concurrency: int) -> LoadSummary:
    """(HTTP status or 0 for no answer, latency ms[, answer cut off[, error event in the stream]]) per request ->
    the figures; latencies of successes only. An answer that broke off counts as `cut`, one whose stream reported
    an error as `stream-error`, whatever its status."""
    latencies, errors, total, ok = [], {}, 0, 0
    for status, latency, *rest in results:
        total += 1
        if rest and rest[0]:
            errors["cut"] = errors.get("cut", 0) + 1
        elif len(rest) > 1 and rest[1]:
            errors["stream-error"] = errors.get("stream-error", 0) + 1
        elif 200 <= status < 300:
            ok += 1
            latencies.append(latency)
        else:
            label = str(status) if status else "transport"
            errors[label] = errors.get(label, 0) + 1
    latencies.sort()
    return LoadSummary(total, ok, errors, percentile(latencies, 50), percentile(latencies, 95),
                       percentile(latencies, 99), sum(latencies) / len(latencies) if latencies else None,
                       latencies[-1] if latencies else None, seconds, concurrency)


class StreamText:
    """The text of a server-sent event stream as it arrives: `feed` chunks cut anywhere, get the new text."""

    def __init__(self) -> None:
        self._pending = ""
        self.done = False
        self.error = ""
        """The message of the stream's first error event (see stream_error), '' while there is none."""

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        *lines, self._pending = self._pending.split("\n")
        if self.done:
            return ""
        out = []
        for line in lines:
            if line.strip() == "data: [DONE]":
                self.done = True
                break
            if not self.error:
                self.error = stream_error([line])
            out.append(stream_text([line]))
        return "".join(out)
