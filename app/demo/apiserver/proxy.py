"""`pods/proxy` and `services/proxy`: HTTP requests forwarded to what "listens" on a pod or service port.

A port is backed either by a URL (`http://127.0.0.1:9400`, e.g. a fake dcgm-exporter started by the simulator or a
test) or by an in-process aiohttp handler. Any method, body, headers and query go through, request bodies and
responses stream chunk by chunk, repeated headers (`Set-Cookie`) and escapes in the path (`%2F`) are kept as they
are. Addressing follows the real server: `pods/<name>[:<port>]/proxy/<path>` and
`services/[<scheme>:]<name>[:<port name or number>]/proxy/<path>`. An unknown pod or service is a 404; a port nothing
is registered on answers like a refused connection (503), as the real server's proxy does.

    kubectl get --raw /api/v1/namespaces/team-a/pods/gpu-node-exporter:9400/proxy/metrics
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import errors
from .catalog import BUILTIN_KINDS
from .discovery import Subresource
from .requestinfo import RequestInfo
from .server import ApiServer
from .store import DELETED, Event, Store

ProxyHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
ProxyTarget = str | ProxyHandler

_KINDS = {k.plural: k for k in BUILTIN_KINDS if k.plural in ("pods", "services")}
_VERBS = ("create", "delete", "get", "patch", "update")
# Hop-by-hop headers (RFC 9110) and those the proxy itself owns are not forwarded in either direction.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
}


class Proxies:
    """Targets of pod and service ports, and the two proxy subresources."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._targets: dict[tuple[str, str, str, int], ProxyTarget] = {}
        self._session: aiohttp.ClientSession | None = None
        store.subscribe(self._on_event)

    def install(self, api: ApiServer) -> None:
        for plural in ("pods", "services"):
            subresource = Subresource("", plural, "proxy", _VERBS, _KINDS[plural].kind)
            api.register_subresource(subresource, lambda request, info, p=plural: self._handle(request, info, p))

    def register_pod(self, namespace: str, pod: str, port: int, target: ProxyTarget) -> None:
        """Serve `pods/<pod>:<port>/proxy/...` from `target` (a base URL or a handler)."""
        self._targets[("pods", namespace, pod, port)] = target

    def register_service(self, namespace: str, service: str, port: int, target: ProxyTarget) -> None:
        """Serve `services/<service>:<port>/proxy/...` from `target` (a base URL or a handler)."""
        self._targets[("services", namespace, service, port)] = target

    def unregister(self, plural: str, namespace: str, name: str, port: int) -> None:
        self._targets.pop((plural, namespace, name, port), None)

    def _on_event(self, event: Event) -> None:
        plural = event.kind.plural
        if event.type == DELETED and not event.kind.group and plural in _KINDS:
            namespace, name = event.new.key
            for key in [k for k in self._targets if k[:3] == (plural, namespace, name)]:
                del self._targets[key]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- serving ------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, info: RequestInfo, plural: str) -> web.StreamResponse:
        name, port_text = _split_name(info.name, plural)
        obj = self._store.resource(_KINDS[plural]).get(info.namespace, name).obj
        port = _resolve_port(obj, plural, port_text)
        target = self._targets.get((plural, info.namespace, name, port))
        # The path after `.../<name>/proxy`, as sent: decoding it would turn an escaped `%2F` into a separator.
        raw_path, _, raw_query = request.raw_path.partition("?")
        parts = raw_path.split("/", 8)  # "", api, v1, namespaces, <ns>, <plural>, <name>, proxy, <rest>
        path = "/" + parts[8] if len(parts) > 8 else "/"
        if raw_query:
            path += "?" + raw_query
        if target is None:
            address = (obj.get("status") or {}).get("podIP") or (obj.get("spec") or {}).get("clusterIP") or "127.0.0.1"
            raise errors.ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {address}:{port}: connect: connection refused",
            )
        if callable(target):
            return await target(request, path)
        return await self._forward(request, target.rstrip("/") + path)

    async def _forward(self, request: web.Request, url: str) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        try:
            upstream = await self._session.request(
                request.method,
                URL(url, encoded=True),
                headers=_forwarded(request.headers),
                data=request.content if request.can_read_body else None,  # streamed, as it arrives
                allow_redirects=False,
            )
        except aiohttp.ClientConnectionError as exc:
            raise errors.ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") from None
        async with upstream:
            headers = _forwarded(upstream.headers)
            headers.popall("Content-Length", None)  # the answer is re-chunked
            response = web.StreamResponse(status=upstream.status, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        return response


def _forwarded(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The end-to-end headers of a request or response, each repeated header kept (`Set-Cookie`)."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP)


def _split_name(raw: str, plural: str) -> tuple[str, str]:
    """`name[:port]` (pods) or `[scheme:]name[:port]` (services) → (name, port text)."""
    parts = raw.split(":")
    if plural == "services" and len(parts) == 3 and parts[0] in ("http", "https"):
        parts = parts[1:]
    if len(parts) > 2 or not parts[0]:
        raise errors.bad_request(f"invalid {plural[:-1]} request {raw!r}")
    return parts[0], parts[1] if len(parts) == 2 else ""


def _resolve_port(obj: dict[str, Any], plural: str, text: str) -> int:
    """A port number from a number, a named port, or nothing (a service's first port; 80 for a pod)."""
    if text.isdigit():
        return int(text)
    spec = obj.get("spec") or {}
    if plural == "services":
        ports = spec.get("ports") or []
        for port in ports:
            if (text and port.get("name") == text) or (not text and port is ports[0]):
                return int(port.get("port", 0))
        raise errors.ApiError(
            503, "ServiceUnavailable", f'no endpoints available for service "{obj["metadata"]["name"]}"'
        )
    if not text:
        return 80
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == text:
                return int(port.get("containerPort", 0))
    raise errors.bad_request(f'unknown port name "{text}" for pod {obj["metadata"]["name"]}')
