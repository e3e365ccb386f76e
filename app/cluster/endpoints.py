"""What a user may do to inference endpoints, headless: list, find, invoke, load-test, scale, delete, read metrics.

The Endpoints pane and the CLI call the same functions. Requests to a model go through the API server's
`services/<service>:<port>/proxy/<path>` with the user's own credentials, so nothing but Kubernetes access is needed
(no tunnel, no load balancer). Answers keep their origin apart: a `Status` object is the API server speaking (403
forbidden proxy, 503 no endpoints), anything else is the model server's own answer (its 4xx/5xx included).

Mutations check the read-only guard first (nothing is sent), and phrase refusals as `ActionError` like the Jobs
actions. Scaling uses the `scale` subresource where the kind has one (the HyperPod kinds), a merge patch of
`spec.predictor.minReplicas` otherwise (KServe). Live figures come from each model pod's Prometheus metrics port
(`pods/<pod>:<port>/proxy/metrics`), parsed with prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from app.cluster.actions import EXIT_BAD_INPUT, EXIT_FAILURE, ActionError, refuse_if_readonly
from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS
from app.model.endpoints import (ENDPOINT_KINDS, HYPERPOD_KINDS, EndpointRow, LoadSummary, endpoint_rows, pod_ready,
                                 summarize)

Obj = dict[str, Any]

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""A response larger than this is cut (and says so): a runaway model must not fill the memory."""
INVOKE_TIMEOUT = 120.0
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
METRICS_PORT_NAMES = ("metrics", "http-metrics", "prometheus")


class EndpointError(ActionError):
    """An endpoint action that cannot go ahead (not ready, not found): nothing was sent."""


def _version(store: str, discovery: Any) -> str:
    version = discovery.version(store) if discovery is not None else None
    return version or KINDS[store].versions[0]


# --------------------------------------------------------------------------------------------------- listing

async def _list(conn: ClusterConnection, path: str) -> dict[str, Obj]:
    answer = await conn.request("GET", path)
    out = {}
    for item in (answer or {}).get("items") or ():
        meta = item.get("metadata") or {}
        out[f"{meta.get('namespace')}/{meta.get('name')}"] = item
    return out


async def fetch_stores(conn: ClusterConnection, discovery: Any, namespace: str | None) -> dict[str, dict[str, Obj]]:
    """What `endpoint_rows` needs, listed once. A kind the user may not list is left out; the rest raises."""
    async def kind(name: str) -> tuple[str, dict[str, Obj]]:
        version = discovery.version(name)
        if not version:
            return name, {}
        try:
            return name, await _list(conn, KINDS[name].path(version, namespace))
        except ApiError as exc:
            if exc.status in (403, 404):
                return name, {}
            raise

    parts = await asyncio.gather(*(kind(n) for n in (*ENDPOINT_KINDS, "pods", "services")))
    return dict(parts)


async def fetch_endpoints(conn: ClusterConnection, discovery: Any, namespace: str | None) -> list[EndpointRow]:
    """The Endpoints pane's rows, fetched once (the CLI): `namespace` None lists every namespace."""
    if not any(discovery.serves(k) for k in ENDPOINT_KINDS):
        raise EndpointError("this cluster serves no inference endpoints (neither the HyperPod inference operator's "
                            "JumpStartModel/InferenceEndpointConfig nor KServe's InferenceService)", EXIT_FAILURE)
    return endpoint_rows(await fetch_stores(conn, discovery, namespace))


_ALIASES: dict[str, str] = {}
for _store, _kind in ENDPOINT_KINDS.items():
    for _alias in (_store, _store.rstrip("s"), _kind.lower(), f"{_store}.{KINDS[_store].group}"):
        _ALIASES[_alias] = _store
_ALIASES.update({"isvc": "inferenceservices", "jsm": "jumpstartmodels", "iec": "inferenceendpointconfigs"})


def split_ref(ref: str) -> tuple[str | None, str]:
    """`KIND/NAME` or `NAME` -> (store name or None, name)."""
    kind, slash, name = ref.rpartition("/")
    if not slash:
        return None, ref
    store = _ALIASES.get(kind.lower())
    if store is None:
        raise EndpointError(f"unknown endpoint kind {kind!r} in {ref!r} (use jumpstartmodel, inferenceendpointconfig "
                            "or inferenceservice/isvc)", EXIT_BAD_INPUT)
    return store, name


def match_endpoint(ref: str, rows: Iterable[EndpointRow], namespace: str | None) -> EndpointRow:
    """The one endpoint `ref` names among `rows`; EndpointError (exit 2) when none or several."""
    store, name = split_ref(ref)
    found = [r for r in rows if r.name == name and (store is None or r.store == store)
             and (namespace is None or r.namespace == namespace)]
    where = f" in namespace {namespace}" if namespace else ""
    if not found:
        raise EndpointError(f"no endpoint {ref!r}{where}", EXIT_BAD_INPUT)
    if len(found) > 1:
        options = ", ".join(f"{r.kind.lower()}/{r.name}" + ("" if namespace else f" (-n {r.namespace})") for r in found)
        raise EndpointError(f"{ref!r} names several endpoints{where}: {options}; say which", EXIT_BAD_INPUT)
    return found[0]


# ---------------------------------------------------------------------------------------------------- invoke

@dataclass
class InvokeResult:
    status: int
    """HTTP status; 0 when no answer came (transport failure, timeout)."""
    text: str
    latency_ms: float
    content_type: str = ""
    from_apiserver: bool = False
    """The API server answered (a Status object: forbidden proxy, no endpoints), not the model."""
    streamed: bool = False
    truncated: bool = False
    first_byte_ms: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def pretty(self) -> str:
        """The body as the user wants to read it: indented JSON, the text of a stream, or as it came."""
        if self.streamed:
            from app.model.endpoints import stream_text

            return stream_text(self.text.splitlines())
        try:
            return json.dumps(json.loads(self.text), indent=2, ensure_ascii=False)
        except ValueError:
            return self.text

    def describe(self) -> str:
        """One line: who answered what, and how fast."""
        if self.status == 0:
            return f"no answer after {self.latency_ms:.0f} ms: {self.text}"
        who = "the API server" if self.from_apiserver else "the model server"
        message = ""
        if not self.ok:
            message = _error_message(self.text)
            if self.from_apiserver and self.status == 403:
                message = f"forbidden: {message} (a POST through the proxy needs `create` on services/proxy in this namespace)"
        tail = f": {message}" if message else ""
        return f"{self.status} from {who} in {self.latency_ms:.0f} ms{tail}"


def _error_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:300] if text.strip() else ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(body.get("message") or error or body.get("detail") or "")[:300]
    return ""


def _is_status(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1"


def check_path(path: str) -> str:
    """A path on the model server, refused when it could leave the proxy: a `..` segment (also escaped) would be
    normalised by the HTTP client into another API path — a POST to, say, `secrets` under --readonly."""
    if not path.startswith("/"):
        path = "/" + path
    route = path.split("?", 1)[0]
    decoded = route.replace("%2e", ".").replace("%2E", ".").replace("%2f", "/").replace("%2F", "/")
    if any(segment in (".", "..") for segment in decoded.split("/")) or any(c in path for c in " \t\r\n#\\"):
        raise EndpointError(f"invalid path {path!r}: no `.`/`..` segments, spaces or `#`; nothing was sent",
                            EXIT_BAD_INPUT)
    return path


def proxy_path(row: EndpointRow, path: str) -> str:
    path = check_path(path)
    return f"/api/v1/namespaces/{row.namespace}/services/{row.service}:{row.service_port}/proxy{path}"


def check_ready(row: EndpointRow) -> None:
    """EndpointError unless at least one model pod serves: a request now could only fail."""
    if row.replicas_ready > 0 and row.state not in ("DeploymentFailed", "FailedToLoad"):
        return
    why = f" — {row.reason}" if row.reason else ""
    raise EndpointError(f"{row.kind} {row.namespace}/{row.name} is not ready ({row.state}, {row.ready_text} replicas "
                        f"ready){why}; nothing was sent", EXIT_FAILURE)


async def invoke(conn: ClusterConnection, row: EndpointRow, body: Any, path: str, *,
                 on_chunk: Callable[[str], Any] | None = None, timeout: float = INVOKE_TIMEOUT,
                 check: bool = True) -> InvokeResult:
    """POST `body` (JSON) to the endpoint's `path` through the API server's service proxy.

    Streamed answers (`text/event-stream`) are read chunk by chunk, each passed to `on_chunk` as it arrives.
    Never raises for an HTTP answer: errors are results (`status`, `from_apiserver`); no answer is status 0.
    """
    from aiohttp import ClientTimeout

    if check:
        check_ready(row)
    target = proxy_path(row, path)
    started = time.perf_counter()
    try:
        response = await conn._send("POST", target, None, body,  # noqa: SLF001 - raw answer wanted
                                    {"Accept": "application/json, text/event-stream"},
                                    ClientTimeout(total=timeout, sock_connect=10))
    except ApiError as exc:
        return InvokeResult(0, str(exc), (time.perf_counter() - started) * 1000)
    first_byte: float | None = None
    chunks: list[bytes] = []
    size = 0
    truncated = False
    content_type = response.headers.get("Content-Type", "")
    streamed = content_type.startswith("text/event-stream")
    try:
        decoder = _Utf8()
        async for chunk in response.content.iter_any():
            if first_byte is None:
                first_byte = (time.perf_counter() - started) * 1000
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                truncated = True
                break
            chunks.append(chunk)
            if on_chunk is not None and streamed:
                piece = decoder.feed(chunk)
                if piece:
                    result = on_chunk(piece)
                    if asyncio.iscoroutine(result):
                        await result
    except Exception as exc:  # noqa: BLE001 - a cut answer (timeout, reset) is a result, not a crash
        if not chunks:
            return InvokeResult(0, f"the answer stopped: {type(exc).__name__} {exc}".strip(),
                                (time.perf_counter() - started) * 1000)
        truncated = True
    finally:
        response.release()
    latency = (time.perf_counter() - started) * 1000
    text = b"".join(chunks).decode("utf-8", "replace")
    if truncated and size > MAX_RESPONSE_BYTES:
        text += f"\n… cut at {MAX_RESPONSE_BYTES // 1024 // 1024} MiB"
    return InvokeResult(response.status, text, latency, content_type, _is_status(text) if response.status >= 400 else False,
                        streamed, truncated, first_byte)


class _Utf8:
    """Decodes a byte stream whose chunks may split a character."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> str:
        return self._decoder.decode(chunk)


async def load_test(conn: ClusterConnection, row: EndpointRow, body: Any, path: str, requests: int, concurrency: int,
                    *, on_progress: Callable[[int, int], Any] | None = None,
                    timeout: float = INVOKE_TIMEOUT) -> LoadSummary:
    """`requests` POSTs of `body`, at most `concurrency` at a time, as k9s's benchmark does; the figures.

    `on_progress(done, errors)` is called after each answer. Stream answers are read to their end.
    """
    check_load(requests, concurrency)
    check_ready(row)
    check_path(path)
    results: list[tuple[int, float]] = []
    errors = 0
    queue = iter(range(requests))

    async def worker() -> None:
        nonlocal errors
        for _ in queue:
            result = await invoke(conn, row, body, path, timeout=timeout, check=False)
            results.append((result.status, result.latency_ms))
            if not result.ok:
                errors += 1
            if on_progress is not None:
                outcome = on_progress(len(results), errors)
                if asyncio.iscoroutine(outcome):
                    await outcome

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    return summarize(results, time.perf_counter() - started, concurrency)


def check_load(requests: int, concurrency: int) -> None:
    if not 1 <= requests <= MAX_REQUESTS:
        raise EndpointError(f"the number of requests must be 1..{MAX_REQUESTS}, not {requests}", EXIT_BAD_INPUT)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise EndpointError(f"the concurrency must be 1..{MAX_CONCURRENCY}, not {concurrency}", EXIT_BAD_INPUT)


# ------------------------------------------------------------------------------------------- scale and delete

def _label(row: EndpointRow) -> str:
    return f"{row.kind} {row.namespace}/{row.name}"


async def scale(conn: ClusterConnection, row: EndpointRow, replicas: int, *, readonly: bool,
                discovery: Any = None) -> str:
    """Set the endpoint's replicas; returns how (`scale subresource` or the patched field). The watch shows it."""
    refuse_if_readonly(readonly, f"scaling {_label(row)}")
    if replicas < 0 or replicas > 1000:
        raise EndpointError(f"replicas must be 0..1000, not {replicas}", EXIT_BAD_INPUT)
    kind = KINDS[row.store]
    path = kind.path(_version(row.store, discovery), row.namespace, row.name)
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        if row.store in HYPERPOD_KINDS:
            await conn.request("PATCH", f"{path}/scale", body={"spec": {"replicas": replicas}}, headers=merge)
            how = "scale subresource"
        else:
            current = await conn.request("GET", path)
            predictor = ((current or {}).get("spec") or {}).get("predictor") or {}
            patch: dict[str, Any] = {"minReplicas": replicas}
            high = predictor.get("maxReplicas")
            if isinstance(high, int) and high < replicas:
                patch["maxReplicas"] = replicas
            await conn.request("PATCH", path, body={"spec": {"predictor": patch}}, headers=merge)
            how = "spec.predictor." + " and ".join(sorted(patch))
    except ApiError as exc:
        if exc.status == 404:
            raise EndpointError(f"{_label(row)} not found (deleted?)", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot scale {_label(row)}: {exc}",
                          EXIT_BAD_INPUT if exc.status in (400, 403, 422) else EXIT_FAILURE) from None
    return how


async def delete(conn: ClusterConnection, row: EndpointRow, *, readonly: bool, discovery: Any = None) -> None:
    """Delete the endpoint; its Deployment, Service and pods go with it (background propagation)."""
    refuse_if_readonly(readonly, f"deleting {_label(row)}")
    path = KINDS[row.store].path(_version(row.store, discovery), row.namespace, row.name)
    try:
        await conn.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                 "propagationPolicy": "Background"})
    except ApiError as exc:
        if exc.status == 404:
            raise EndpointError(f"{_label(row)} not found (already deleted?)", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot delete {_label(row)}: {exc}",
                          EXIT_BAD_INPUT if exc.status in (403, 409) else EXIT_FAILURE) from None


# --------------------------------------------------------------------------------------------------- metrics

@dataclass
class PodFigures:
    pod: str
    requests: float = 0.0
    by_code: dict[str, float] = field(default_factory=dict)
    latency_count: float = 0.0
    latency_sum_ms: float = 0.0
    buckets: list[tuple[float, float]] = field(default_factory=list)
    """(upper bound ms, cumulative count), ascending."""
    error: str = ""


@dataclass
class EndpointFigures:
    """Request figures summed over an endpoint's pods, from their Prometheus metrics."""

    pods: list[PodFigures]
    read_at: float

    @property
    def requests(self) -> float:
        return sum(p.requests for p in self.pods)

    @property
    def errors(self) -> float:
        return sum(v for p in self.pods for code, v in p.by_code.items() if not code.startswith("2"))

    @property
    def mean_ms(self) -> float | None:
        count = sum(p.latency_count for p in self.pods)
        return sum(p.latency_sum_ms for p in self.pods) / count if count else None

    def quantile_ms(self, q: float) -> float | None:
        """The upper bound of the histogram bucket holding quantile q (what Prometheus' buckets can tell)."""
        merged: dict[float, float] = {}
        for pod in self.pods:
            for bound, count in pod.buckets:
                merged[bound] = merged.get(bound, 0.0) + count
        if not merged:
            return None
        total = max(merged.values())
        if total <= 0:
            return None
        for bound in sorted(merged):
            if merged[bound] >= q * total:
                return bound
        return None

    def line(self, previous: "EndpointFigures | None" = None) -> str:
        if not self.pods:
            return "no ready pod exposes metrics"
        readable = [p for p in self.pods if not p.error]
        if not readable:
            return "; ".join(f"{p.pod}: {p.error}" for p in self.pods)
        parts = [f"{self.requests:.0f} requests", f"{self.errors:.0f} errors"]
        if previous is not None and self.read_at > previous.read_at:
            rate = max(0.0, self.requests - previous.requests) / (self.read_at - previous.read_at)
            parts.append(f"{rate:.1f} req/s")
        mean = self.mean_ms
        if mean is not None:
            parts.append(f"mean {mean:.0f} ms")
        for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            value = self.quantile_ms(q)
            if value is not None:
                parts.append(f"{label} ≤{value:g} ms" if value != float("inf") else f"{label} >max bucket")
        unread = [p for p in self.pods if p.error]
        if unread:
            parts.append(f"{len(unread)} pod(s) unreadable: {unread[0].error}")
        return f"{len(readable)} pod(s): " + ", ".join(parts)


def parse_metrics(text: str, pod: str) -> PodFigures:
    """`model_invocations_total` and the `model_latency_milliseconds` histogram of one exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    figures = PodFigures(pod)
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError) as exc:
        figures.error = f"unreadable metrics: {exc}"
        return figures
    # By sample name, not family: an exposition without `# TYPE` lines gives one untyped family per sample name.
    for sample in (sample for family in families for sample in family.samples):
        if sample.name == "model_invocations_total":
            figures.requests += sample.value
            code = sample.labels.get("code") or sample.labels.get("status") or "?"
            figures.by_code[code] = figures.by_code.get(code, 0.0) + sample.value
        elif sample.name == "model_latency_milliseconds_bucket":
            figures.buckets.append((float(sample.labels.get("le", "inf")), sample.value))
        elif sample.name == "model_latency_milliseconds_count":
            figures.latency_count += sample.value
        elif sample.name == "model_latency_milliseconds_sum":
            figures.latency_sum_ms += sample.value
    figures.buckets.sort()
    return figures


def metrics_port(pod: Obj) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") in METRICS_PORT_NAMES and port.get("containerPort"):
                return int(port["containerPort"])
    return None


async def read_figures(conn: ClusterConnection, pods: Iterable[Obj], timeout: float = 5.0) -> EndpointFigures:
    """Each ready pod's metrics through `pods/<pod>:<port>/proxy/metrics`; a pod that fails says why."""
    from aiohttp import ClientTimeout

    async def one(pod: Obj) -> PodFigures:
        meta = pod["metadata"]
        port = metrics_port(pod)
        if port is None:
            return PodFigures(meta["name"], error="no container port named metrics")
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:{port}/proxy/metrics"
        try:
            response = await conn._send("GET", path, None, None, {"Accept": "text/plain"},  # noqa: SLF001
                                        ClientTimeout(total=timeout))
        except ApiError as exc:
            return PodFigures(meta["name"], error=str(exc))
        try:
            data = await response.content.read(MAX_RESPONSE_BYTES)
        finally:
            response.release()
        text = data.decode("utf-8", "replace")
        if response.status >= 400:
            return PodFigures(meta["name"], error=f"{response.status}: {_error_message(text) or text[:120]}")
        return parse_metrics(text, meta["name"])

    ready = [p for p in pods if pod_ready(p)]
    return EndpointFigures(list(await asyncio.gather(*(one(p) for p in ready))), time.monotonic())

