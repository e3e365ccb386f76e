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
from app.cluster.resources import KINDS, kubectl_names, split_kind_ref
from app.model.endpoints import (ENDPOINT_KINDS, HYPERPOD_KINDS, EndpointRow, LoadSummary, endpoint_row_of,
                                 endpoint_rows, pod_ready, pod_selector, protocols, stream_error, summarize)

Obj = dict[str, Any]

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""A response larger than this is cut (and says so): a runaway model must not fill the memory."""
INVOKE_TIMEOUT = 120.0
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
METRICS_PORT_NAMES = ("metrics", "http-metrics", "prometheus")
PROMETHEUS_PORT_ANNOTATION = "prometheus.io/port"
UNKNOWN_CODE = "unknown"
"""The code of requests counted without a `code`/`status` label."""


class EndpointError(ActionError):
    """An endpoint action that cannot go ahead (not ready, not found): nothing was sent."""


def _version(store: str, discovery: Any) -> str:
    version = discovery.version(store) if discovery is not None else None
    return version or KINDS[store].versions[0]


# --------------------------------------------------------------------------------------------------- listing

async def _list(conn: ClusterConnection, path: str, query: dict[str, Any] | None = None) -> dict[str, Obj]:
    answer = await conn.request("GET", path, query)
    out = {}
    for item in (answer or {}).get("items") or ():
        meta = item.get("metadata") or {}
        out[f"{meta.get('namespace')}/{meta.get('name')}"] = item
    return out


def forbidden_line(store: str, namespace: str | None) -> str:
    where = f"in {namespace}" if namespace else "in any namespace"
    return f"cannot list {store} {where} (forbidden)"


async def fetch_stores(conn: ClusterConnection, discovery: Any, namespace: str | None,
                       warnings: list[str] | None = None,
                       names: Iterable[str] = (*ENDPOINT_KINDS, "pods", "services"),
                       label_selector: str | None = None) -> dict[str, dict[str, Obj]]:
    """What `endpoint_rows` needs (or the stores `names`, pods picked by `label_selector`), listed once. A kind the
    user may not list is left out and said in `warnings` (`cannot list X in NS (forbidden)`); a kind the server
    lacks (404) is left out; other failures raise."""
    async def kind(name: str) -> tuple[str, dict[str, Obj]]:
        version = discovery.version(name)
        if not version:
            return name, {}
        query = {"labelSelector": label_selector} if label_selector and name == "pods" else None
        try:
            return name, await _list(conn, KINDS[name].path(version, namespace), query)
        except ApiError as exc:
            if exc.status == 403:
                if warnings is not None:
                    warnings.append(forbidden_line(name, namespace))
                return name, {}
            if exc.status == 404:
                return name, {}
            raise

    parts = await asyncio.gather(*(kind(n) for n in names))
    return dict(parts)


def _served(discovery: Any) -> list[str]:
    served = [k for k in ENDPOINT_KINDS if discovery.serves(k)]
    if not served:
        raise EndpointError("this cluster serves no inference endpoints (neither the HyperPod inference operator's "
                            "JumpStartModel/InferenceEndpointConfig nor KServe's InferenceService)", EXIT_FAILURE)
    return served


async def fetch_endpoints(conn: ClusterConnection, discovery: Any, namespace: str | None,
                          warnings: list[str] | None = None) -> list[EndpointRow]:
    """The Endpoints pane's rows, fetched once (the CLI): `namespace` None lists every namespace. What the user may
    not list is added to `warnings`; when that is every endpoint kind the cluster serves, EndpointError."""
    served = _served(discovery)
    said: list[str] = []
    stores = await fetch_stores(conn, discovery, namespace, said)
    if all(forbidden_line(k, namespace) in said for k in served):
        raise EndpointError("; ".join(forbidden_line(k, namespace) for k in served), EXIT_FAILURE)
    if warnings is not None:
        warnings.extend(said)
    return endpoint_rows(stores)


async def find_endpoint(conn: ClusterConnection, discovery: Any, ref: str, namespace: str | None, *,
                        services: bool = False) -> EndpointRow:
    """The one endpoint `ref` names (`namespace` None: in any namespace), for `scale`, `undeploy` and `invoke`.

    Resolved from the endpoint kinds' lists alone; then only its own pods are listed (by its selector, in its
    namespace: its readiness), and with `services` its namespace's Services (where invoke sends). Never every pod
    and Service in scope, which on a large cluster with -A is tens of thousands of objects."""
    served = _served(discovery)
    store, _ = split_ref(ref)
    said: list[str] = []
    kinds = [k for k in served if store in (None, k)]
    stores = await fetch_stores(conn, discovery, namespace, said, kinds)
    if kinds and all(forbidden_line(k, namespace) in said for k in kinds):
        raise EndpointError("; ".join(forbidden_line(k, namespace) for k in kinds), EXIT_FAILURE)
    row = match_endpoint(ref, endpoint_rows(stores), namespace, said)
    obj = stores[row.store][f"{row.namespace}/{row.name}"]
    joined = await fetch_stores(conn, discovery, row.namespace, None, ("pods", "services") if services else ("pods",),
                                label_selector=pod_selector(row.store, obj))
    return endpoint_row_of(row.store, obj, joined)


_NAMES = kubectl_names(ENDPOINT_KINDS, {"isvc": "inferenceservices", "jsm": "jumpstartmodels",
                                         "iec": "inferenceendpointconfigs"})


def split_ref(ref: str) -> tuple[str | None, str]:
    """`KIND/NAME` or `NAME` -> (store name or None, name)."""
    try:
        return split_kind_ref(ref, _NAMES)
    except KeyError as exc:
        raise EndpointError(f"unknown endpoint kind {exc.args[0]!r} in {ref!r} (use jumpstartmodel, "
                            "inferenceendpointconfig or inferenceservice/isvc)", EXIT_BAD_INPUT) from None


def match_endpoint(ref: str, rows: Iterable[EndpointRow], namespace: str | None,
                   warnings: Iterable[str] = ()) -> EndpointRow:
    """The one endpoint `ref` names among `rows`; EndpointError (exit 2) when none or several. `warnings` (kinds
    the user may not list) are part of the answer when none is found: the endpoint may be among them."""
    store, name = split_ref(ref)
    found = [r for r in rows if r.name == name and (store is None or r.store == store)
             and (namespace is None or r.namespace == namespace)]
    where = f" in namespace {namespace}" if namespace else ""
    if not found:
        unseen = [w for w in warnings if w.split(" ")[2] in ENDPOINT_KINDS and store in (None, w.split(" ")[2])]
        tail = f" ({'; '.join(unseen)})" if unseen else ""
        raise EndpointError(f"no endpoint {ref!r}{where}{tail}", EXIT_BAD_INPUT)
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
    """Only part of the answer is here: cut by the size cap (`capped`) or broken off (`cut`)."""
    first_byte_ms: float | None = None
    cut: str = ""
    """Why the answer broke off before its end (a timeout, a reset), empty when it came whole."""
    capped: bool = False
    """The answer was longer than MAX_RESPONSE_BYTES and the rest was not read (deliberately)."""
    stream_error: str = ""
    """The message of an error event in a streamed answer (sent after its 200 status), empty when none."""
    timed_out: bool = False
    """No answer came within the timeout: the model is slow (or stuck), not the API server down."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.cut and not self.stream_error

    def pretty(self) -> str:
        """The body as the user wants to read it: indented JSON, the text of a stream, or as it came."""
        if self.streamed:
            from app.model.endpoints import stream_text

            return stream_text(self.text.splitlines())
        try:
            return json.dumps(json.loads(self.text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return self.text

    def describe(self) -> str:
        """One line: who answered what, and how fast."""
        if self.status == 0:
            return f"no answer after {self.latency_ms:.0f} ms: {self.text}"
        who = "the API server" if self.from_apiserver else "the model server"
        if self.cut:
            return f"{self.status} from {who}, answer cut after {self.latency_ms:.0f} ms: {self.cut}"
        if self.stream_error:
            return f"{self.status} from {who}, then an error in the stream after {self.latency_ms:.0f} ms: " \
                   f"{self.stream_error}"
        message = ""
        if not self.ok:
            message = _error_message(self.text)
            if self.from_apiserver and self.status == 403:
                message = f"forbidden: {message} (a POST through the proxy needs `create` on services/proxy in this namespace)"
        if self.capped:
            message = f"{message}; " if message else ""
            message += f"only the first {MAX_RESPONSE_BYTES // 1024 // 1024} MiB shown"
        tail = f": {message}" if message else ""
        return f"{self.status} from {who} in {self.latency_ms:.0f} ms{tail}"


def _error_message(text: str) -> str:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
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
    except (ValueError, RecursionError):
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


COMPLETION_PATHS = frozenset({"/v1/completions", "/openai/v1/completions"})


def inference_paths(row: EndpointRow) -> set[str]:
    """The paths the endpoint's protocol templates send inference requests to (what --readonly allows)."""
    return {p.path for p in row.protocols()} | COMPLETION_PATHS


def ref_inference_paths(ref: str) -> set[str]:
    """Every inference path of any endpoint `ref` (`NAME` or `KIND/NAME`) can name, before it is looked up: the
    union over the kinds it may be (the paths depend on the kind and the name only)."""
    store, name = split_ref(ref)
    kinds = [store] if store else list(ENDPOINT_KINDS)
    return {p.path for k in kinds for p in protocols(ENDPOINT_KINDS[k], name, "")} | COMPLETION_PATHS


def _refuse_path(path: str, allowed: set[str]) -> None:
    route = check_path(path).split("?", 1)[0]
    if route not in allowed:
        refuse_if_readonly(True, f"sending a POST to {route}: only the inference paths "
                                 f"({', '.join(sorted(allowed))}) are allowed; nothing was sent")


def check_readonly_path(row: EndpointRow, path: str, readonly: bool) -> None:
    """Under --readonly only inference requests go out: a POST elsewhere on a model server can change it (Triton's
    repository unload, vLLM's /sleep, a reset). Refused before anything is sent."""
    if readonly:
        _refuse_path(path, inference_paths(row))


def check_readonly_ref_path(ref: str, path: str, readonly: bool) -> None:
    """check_readonly_path before the endpoint is looked up (the CLI's `invoke --readonly --path`): a path that no
    endpoint `ref` can name serves inference on is refused before any request, the lookup's lists included."""
    if readonly:
        _refuse_path(path, ref_inference_paths(ref))


def check_endpoint_manifest(documents: list[Obj], source: str) -> None:
    """A deploy takes endpoint kinds only (the pane and the CLI alike); other objects go through `submit`."""
    kinds = set(ENDPOINT_KINDS.values())
    others = [f"{d.get('kind') or '?'}/{(d.get('metadata') or {}).get('name') or '?'}" for d in documents
              if d.get("kind") not in kinds]
    if not documents or others:
        what = f"holds {', '.join(others[:5])}{' …' if len(others) > 5 else ''}" if others else "is empty"
        raise EndpointError(f"{source} {what}: a deploy takes only JumpStartModel, InferenceEndpointConfig and "
                            "InferenceService objects (for others use `hyperdesk submit`); nothing was sent",
                            EXIT_BAD_INPUT)


def proxy_path(row: EndpointRow, path: str) -> str:
    path = check_path(path)
    return f"/api/v1/namespaces/{row.namespace}/services/{row.service}:{row.service_port}/proxy{path}"


def check_ready(row: EndpointRow) -> None:
    """EndpointError unless the endpoint serves (EndpointRow.serving: the one readiness rule)."""
    if row.serving:
        return
    why = f" — {row.reason}" if row.reason else ""
    raise EndpointError(f"{row.kind} {row.namespace}/{row.name} is not ready ({row.state}, {row.ready_text} replicas "
                        f"ready){why}; nothing was sent", EXIT_FAILURE)


def body_bytes(body: Any) -> bytes:
    """What goes on the wire: a body the user typed (str/bytes) exactly as typed, else the value as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


async def invoke(conn: ClusterConnection, row: EndpointRow, body: Any, path: str, *,
                 on_chunk: Callable[[str], Any] | None = None, timeout: float = INVOKE_TIMEOUT,
                 check: bool = True, readonly: bool = False) -> InvokeResult:
    """POST `body` to the endpoint's `path` through the API server's service proxy. A str/bytes body is sent as
    given (the caller validated it as JSON), anything else as JSON.

    Streamed answers (`text/event-stream`) are read chunk by chunk, each passed to `on_chunk` as it arrives.
    `timeout` bounds the silence: the wait for the answer and between its chunks, not a long stream's length.
    Never raises for an HTTP answer: errors are results (`status`, `from_apiserver`); no answer is status 0, an
    answer that broke off says so (`cut`).
    """
    from aiohttp import ClientTimeout

    if check:
        check_ready(row)
    check_readonly_path(row, path, readonly)
    target = proxy_path(row, path)
    data = body_bytes(body)
    started = time.perf_counter()
    first_byte: float | None = None
    chunks: list[bytes] = []
    size = 0
    capped = False
    cut = ""
    try:
        async with conn.response("POST", target, data=data,
                                 headers={"Accept": "application/json, text/event-stream"},
                                 timeout=ClientTimeout(total=None, sock_connect=10, sock_read=timeout)) as response:
            status = response.status
            content_type = response.headers.get("Content-Type", "")
            streamed = content_type.startswith("text/event-stream")
            decoder = _Utf8()
            try:
                async for chunk in response.content.iter_any():
                    if first_byte is None:
                        first_byte = (time.perf_counter() - started) * 1000
                    if size + len(chunk) > MAX_RESPONSE_BYTES:
                        chunks.append(chunk[: MAX_RESPONSE_BYTES - size])
                        size = MAX_RESPONSE_BYTES
                        capped = True
                        break
                    size += len(chunk)
                    chunks.append(chunk)
                    if on_chunk is not None and streamed:
                        piece = decoder.feed(chunk)
                        if piece:
                            result = on_chunk(piece)
                            if asyncio.iscoroutine(result):
                                await result
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - a cut answer (timeout, reset) is a result, not a crash
                cut = f"{type(exc).__name__} {exc}".strip() if str(exc) else type(exc).__name__
                if isinstance(exc, asyncio.TimeoutError):
                    cut = f"no data for {timeout:g} s"
    except ApiError as exc:
        latency = (time.perf_counter() - started) * 1000
        if exc.status == 0 and str(exc).endswith(" in time") and latency >= timeout * 1000 * 0.95:
            # the wait for the headers (sock_read) ran out: the API server is there, its proxy waits on the model
            return InvokeResult(0, f"no answer from the model within {timeout:g} s", latency, timed_out=True)
        return InvokeResult(0, str(exc), latency)
    latency = (time.perf_counter() - started) * 1000
    text = b"".join(chunks).decode("utf-8", "replace")
    if not chunks and cut:
        return InvokeResult(0, f"the answer stopped: {cut}", latency)
    error = stream_error(text.splitlines()) if streamed else ""
    if capped:
        text += f"\n… cut at {MAX_RESPONSE_BYTES // 1024 // 1024} MiB"
    return InvokeResult(status, text, latency, content_type, _is_status(text) if status >= 400 else False,
                        streamed, capped or bool(cut), first_byte, cut, capped, error)


class _Utf8:
    """Decodes a byte stream whose chunks may split a character."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> str:
        return self._decoder.decode(chunk)


async def load_test(conn: ClusterConnection, row: EndpointRow, body: Any, path: str, requests: int, concurrency: int,
                    *, on_progress: Callable[[int, int], Any] | None = None,
                    timeout: float = INVOKE_TIMEOUT, readonly: bool = False) -> LoadSummary:
    """`requests` POSTs of `body`, at most `concurrency` at a time, as k9s's benchmark does; the figures.

    The run has its own connection pool, sized for `concurrency`: the app's pool (shared with its watches) would
    make requests queue for a connection, count that wait as latency, and stall the rest of the UI meanwhile.
    `on_progress(done, errors)` is called after each answer. Stream answers are read to their end.
    """
    check_load(requests, concurrency)
    check_ready(row)
    check_readonly_path(row, path, readonly)
    check_path(path)
    data = body_bytes(body)
    results: list[tuple[int, float, bool, bool]] = []
    errors = 0
    queue = iter(range(requests))
    own = ClusterConnection(conn.kubeconfig_paths, conn.context, timeout=conn.timeout, pool_size=concurrency + 2)

    async def worker() -> None:
        nonlocal errors
        for _ in queue:
            result = await invoke(own, row, data, path, timeout=timeout, check=False)
            results.append((result.status, result.latency_ms, bool(result.cut), bool(result.stream_error)))
            if not result.ok:
                errors += 1
            if on_progress is not None:
                outcome = on_progress(len(results), errors)
                if asyncio.iscoroutine(outcome):
                    await outcome

    try:
        await own.open()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
        seconds = time.perf_counter() - started
    finally:
        await own.close()
    return summarize(results, seconds, concurrency)


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
    """Set the endpoint's replicas; returns what was done, in words (and whether an autoscaler owns the replicas).
    The watch shows the result."""
    refuse_if_readonly(readonly, f"scaling {_label(row)}")
    if replicas < 0 or replicas > 1000:
        raise EndpointError(f"replicas must be 0..1000, not {replicas}", EXIT_BAD_INPUT)
    kind = KINDS[row.store]
    path = kind.path(_version(row.store, discovery), row.namespace, row.name)
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        if row.store in HYPERPOD_KINDS:
            current = await conn.request("GET", path)
            await conn.request("PATCH", f"{path}/scale", body={"spec": {"replicas": replicas}}, headers=merge)
            how = f"replicas set to {replicas} (scale subresource)"
            auto = ((current or {}).get("spec") or {}).get("autoScalingSpec") or {}
            if auto:
                low, high = auto.get("minReplicaCount", "?"), auto.get("maxReplicaCount", "?")
                how += (f"; warning: autoScalingSpec ({low}–{high}) owns the replicas, its autoscaler may change "
                        "them back")
        else:
            current = await conn.request("GET", path)
            predictor = ((current or {}).get("spec") or {}).get("predictor") or {}
            patch: dict[str, Any] = {"minReplicas": replicas}
            high = predictor.get("maxReplicas")
            if isinstance(high, int) and high < replicas:
                patch["maxReplicas"] = replicas
            await conn.request("PATCH", path, body={"spec": {"predictor": patch}}, headers=merge)
            how = f"minReplicas set to {replicas}" + (f" and maxReplicas to {replicas}" if "maxReplicas" in patch
                                                       else "")
            top = patch.get("maxReplicas", high)
            if isinstance(top, int) and top > replicas:
                how += f"; KServe's autoscaler runs it between {replicas} and {top} replicas"
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
    note: str = ""
    """Read, with a caveat (the exposition was cut at the size cap)."""


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
        return sum(v for p in self.pods for code, v in p.by_code.items()
                   if code != UNKNOWN_CODE and not code.startswith("2"))

    @property
    def unknown(self) -> float:
        """Requests counted without a code/status label: neither success nor error."""
        return sum(p.by_code.get(UNKNOWN_CODE, 0.0) for p in self.pods)

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

    def rate(self, previous: "EndpointFigures | None") -> float | None:
        """Requests per second since `previous`, per pod as Prometheus' rate() does: only pods read in both samples
        count (a pod unreadable before, or new after a scale-up, would bring its whole lifetime's counter), and a
        counter that went down was reset (a restarted server): its new value is what came since. None when no pod
        was read twice."""
        if previous is None or self.read_at <= previous.read_at:
            return None
        before = {p.pod: p.requests for p in previous.pods if not p.error}
        pairs = [(p.requests, before[p.pod]) for p in self.pods if not p.error and p.pod in before]
        if not pairs:
            return None
        return sum(now - then if now >= then else now for now, then in pairs) / (self.read_at - previous.read_at)

    def line(self, previous: "EndpointFigures | None" = None) -> str:
        if not self.pods:
            return "no ready pod exposes metrics"
        readable = [p for p in self.pods if not p.error]
        if not readable:
            return "; ".join(f"{p.pod}: {p.error}" for p in self.pods)
        parts = [f"{self.requests:.0f} requests", f"{self.errors:.0f} errors"]
        if self.unknown:
            parts.append(f"{self.unknown:.0f} without a status code")
        rate = self.rate(previous)
        if rate is not None:
            parts.append(f"{rate:.1f} req/s")
        mean = self.mean_ms
        if mean is not None:
            parts.append(f"mean {mean:.0f} ms")
        for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            value = self.quantile_ms(q)
            if value is not None:
                parts.append(f"{label} ≤{value:g} ms" if value != float("inf") else f"{label} >max bucket")
        notes = [f"{p.pod}: {p.note}" for p in readable if p.note]
        if notes:
            parts.append(notes[0])
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
            code = sample.labels.get("code") or sample.labels.get("status") or UNKNOWN_CODE
            figures.by_code[code] = figures.by_code.get(code, 0.0) + sample.value
        elif sample.name == "model_latency_milliseconds_bucket":
            figures.buckets.append((float(sample.labels.get("le", "inf")), sample.value))
        elif sample.name == "model_latency_milliseconds_count":
            figures.latency_count += sample.value
        elif sample.name == "model_latency_milliseconds_sum":
            figures.latency_sum_ms += sample.value
    figures.buckets.sort()
    return figures


def metrics_port(pod: Obj, serving_port: int | None = None) -> int | None:
    """A container port named for metrics; else the pod's `prometheus.io/port` annotation; else `serving_port`
    (model servers such as vLLM and TGI expose /metrics on the port they serve on)."""
    containers = (pod.get("spec") or {}).get("containers") or ()
    for container in containers:
        for port in container.get("ports") or ():
            if port.get("name") in METRICS_PORT_NAMES and port.get("containerPort"):
                return int(port["containerPort"])
    annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(PROMETHEUS_PORT_ANNOTATION)
    if annotation is not None and str(annotation).strip().isdigit():
        return int(str(annotation).strip())
    if serving_port is not None:
        return serving_port
    for container in containers:  # the first declared port, which is the serving one by convention
        for port in container.get("ports") or ():
            if port.get("containerPort"):
                return int(port["containerPort"])
    return None


async def read_capped(response: Any, limit: int = MAX_RESPONSE_BYTES) -> tuple[bytes, bool]:
    """The body up to `limit` bytes, and whether there was more. (`content.read(n)` gives what is buffered, not n.)"""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), False


async def read_figures(conn: ClusterConnection, pods: Iterable[Obj], timeout: float = 5.0,
                       serving_port: int | None = None) -> EndpointFigures:
    """Each ready pod's metrics through `pods/<pod>:<port>/proxy/metrics`; a pod that fails says why."""
    from aiohttp import ClientTimeout

    async def one(pod: Obj) -> PodFigures:
        meta = pod["metadata"]
        port = metrics_port(pod, serving_port)
        if port is None:
            return PodFigures(meta["name"], error="no metrics port (no port named metrics, no prometheus.io/port)")
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:{port}/proxy/metrics"
        try:
            async with conn.response("GET", path, headers={"Accept": "text/plain"},
                                     timeout=ClientTimeout(total=timeout)) as response:
                data, capped = await read_capped(response)
                status = response.status
        except ApiError as exc:
            return PodFigures(meta["name"], error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a read cut by the timeout or a reset: that pod's line says so
            return PodFigures(meta["name"], error=f"metrics read failed: {type(exc).__name__} {exc}".strip())
        text = data.decode("utf-8", "replace")
        if status >= 400:
            return PodFigures(meta["name"], error=f"{status}: {_error_message(text) or text[:120]}")
        if capped:  # parse the whole lines read; the partial last one would be a parse error
            text = text[: text.rfind("\n") + 1]
        figures = parse_metrics(text, meta["name"])
        if capped and not figures.error:
            figures.note = f"metrics cut at {MAX_RESPONSE_BYTES // 1024 // 1024} MiB (the rest not read)"
        return figures

    ready = [p for p in pods if pod_ready(p)]
    return EndpointFigures(list(await asyncio.gather(*(one(p) for p in ready))), time.monotonic())

