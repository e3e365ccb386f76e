"""The HTTP face of the server: Kubernetes REST paths, content negotiation, LIST, WATCH and the write verbs.

Requests are classified once (`RequestInfo`), then dispatched: discovery and OpenAPI documents (cached per registry
revision), the standard verbs on collections, objects and their `status`/`scale` subresources, and further
subresources registered by other modules (`register_subresource`: logs, proxies, port-forward). Every failure is
answered with a `Status` by the error middleware, so handlers just raise `ApiError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from . import discovery, errors, openapi, protobuf, tables
from .access import AccessControl, User
from .discovery import Subresource
from .kinds import Kind
from .patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .requestinfo import RequestInfo, parse_bool, request_info
from .resources import FIELD_VALIDATION, Written
from .schemas import DELETE_OPTIONS, decode_problem, schema_of
from .selectors import Selection, parse_field_selector, parse_label_selector
from .store import ADDED, Store, StoredObject, encode
from .watch import Watcher, WatchItem

log = logging.getLogger("hyperdesk.demo.apiserver")

MAX_REQUEST_BODY = 3 * 1024 * 1024  # the real server's limit for JSON bodies
JSON = "application/json"
_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class _YamlLoader(yaml.SafeLoader):
    """YAML as the real server reads it (converted to JSON): an unquoted date stays a string."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

SubresourceHandler = Callable[[web.Request, RequestInfo], Awaitable[web.StreamResponse]]
RequestHook = Callable[[web.Request, RequestInfo], Awaitable[None]]
ReviewAnswer = Callable[[User, dict[str, Any], str], dict[str, Any]]
"""Answers a create of a create-only kind: (user, spec, namespace) -> the reply's status; raises ApiError to refuse."""
USER = web.RequestKey("user", User)  # the authenticated user, stored on each request


@dataclass
class ServerOptions:
    """Tunables of the HTTP layer. Defaults follow the real server where it has one."""

    bookmark_interval: float = 60.0  # seconds between BOOKMARK events on watches that allow them
    max_watch_timeout: float = 1800.0  # a watch without timeoutSeconds ends after this long
    watch_backlog: int | None = None  # queued events after which a slow watcher is dropped; None: the history size


@dataclass
class _Negotiated:
    table: bool = False
    aggregated: bool = False


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";") if p.strip()]
        if not pieces:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip()] = value.strip()
        ranges.append((pieces[0].lower(), params))
    return ranges


def negotiate(accept: str) -> _Negotiated:
    """Pick the representation: the first acceptable of Table, aggregated discovery or plain JSON."""
    for media, params in _media_ranges(accept or "*/*"):
        if media not in (JSON, "application/*", "*/*"):
            continue
        shape = params.get("as")
        if shape == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return _Negotiated(table=True)
        if shape == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2":
            return _Negotiated(aggregated=True)
        if shape is None:
            return _Negotiated()
    raise errors.not_acceptable([JSON, "application/yaml", tables.TABLE_MEDIA])


def _respond(
    body: bytes, status: int = 200, content_type: str = JSON, warnings: list[str] | None = None
) -> web.Response:
    response = web.Response(body=body, status=status, headers={"Content-Type": content_type})
    for warning in warnings or ():
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def status_response(error: errors.ApiError) -> web.Response:
    response = _respond(encode(error.status()), error.code)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


@dataclass
class _ListQuery:
    selection: Selection
    limit: int = 0
    continue_token: str = ""
    rv: str = ""
    rv_match: str = ""
    watch: bool = False
    bookmarks: bool = False
    timeout: float | None = None
    include_object: str = "Metadata"


@dataclass
class ApiServer:
    """The aiohttp application over one `Store`."""

    store: Store
    options: ServerOptions = field(default_factory=ServerOptions)
    access: AccessControl = field(default_factory=AccessControl)

    def __post_init__(self) -> None:
        self.registry = self.store.registry
        self._subresources: dict[tuple[str, str, str], SubresourceHandler] = {}
        self._reviews: dict[tuple[str, str], ReviewAnswer] = {
            ("authorization.k8s.io", "selfsubjectaccessreviews"): lambda u, s, _ns: self.access.access_review(u, s),
            ("authorization.k8s.io", "selfsubjectrulesreviews"): lambda u, s, _ns: self.access.rules_review(u, s),
            ("authentication.k8s.io", "selfsubjectreviews"): lambda u, s, _ns: self.access.self_review(u, s),
        }
        self._discovery_subresources: list[Subresource] = []
        self._hooks: list[RequestHook] = []
        self._cache: dict[str, bytes] = {}
        self._cache_revision = -1
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self.app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=[self._error_middleware])
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)

    # --- extension points ----------------------------------------------------------------------------------------

    def register_review(self, group: str, plural: str, answer: ReviewAnswer) -> None:
        """Answer creates of the create-only kind `group/plural` with `answer(user, spec, namespace)` (namespace is
        "" for a cluster-scoped kind): it returns the reply's `status`, or raises `errors.ApiError` to refuse.
        Until one is registered, a catalogued create-only kind answers 404 NotFound for the resource type, as a
        server that does not serve that API would."""
        self._reviews[(group, plural)] = answer

    def register_subresource(self, subresource: Subresource, handler: SubresourceHandler) -> None:
        """Serve `<plural>/<name>` for a kind with `handler`, and advertise it in discovery."""
        self._subresources[(subresource.group, subresource.plural, subresource.name)] = handler
        self._discovery_subresources.append(subresource)
        self._cache_revision = -1

    def add_request_hook(self, hook: RequestHook) -> None:
        """Run `hook(request, info)` before every request is authenticated and handled (fault injection)."""
        self._hooks.append(hook)

    # --- plumbing -----------------------------------------------------------------------------------------------

    @web.middleware
    async def _error_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as exc:
            return status_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return status_response(errors.request_too_large(MAX_REQUEST_BODY))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug: answer like the real server's panic handler, and log it
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return status_response(errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request_info(request.method, request.path, request.query.get("watch"), self.registry)
        for hook in self._hooks:
            await hook(request, info)
        user = self.access.authenticate(request.headers.get("Authorization"), info)
        request[USER] = user
        self.access.authorize(user, info)
        if not info.is_resource:
            return self._non_resource(request, info)
        if info.kind is None:
            raise errors.resource_not_served()
        if info.subresource and info.subresource not in ("status", "scale"):
            handler = self._subresources.get((info.group, info.resource, info.subresource))
            if handler is None:
                raise errors.resource_not_served()
            return await handler(request, info)
        return await self._standard(request, info, info.kind)

    def _documents(self) -> dict[str, bytes]:
        if self._cache_revision != self.registry.revision:
            self._cache.clear()
            self._cache_revision = self.registry.revision
        return self._cache

    def _cached(self, key: str, build: Callable[[], Any]) -> bytes:
        cache = self._documents()
        body = cache.get(key)
        if body is None:
            body = cache[key] = encode(build())
        return body

    def _non_resource(self, request: web.Request, info: RequestInfo) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        path = info.path.rstrip("/") or "/"
        extra = tuple(self._discovery_subresources)
        registry = self.registry
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _respond(encode(discovery.KUBERNETES_VERSION))
        if path in ("/api", "/apis"):
            if negotiate(request.headers.get("Accept", "")).aggregated:
                body = self._cached(
                    f"aggregated{path}", lambda: discovery.aggregated(registry, core=path == "/api", extra=extra)
                )
                return _respond(body, content_type=discovery.AGGREGATED_MEDIA)
            if path == "/api":
                return _respond(encode(discovery.core_versions()))
            return _respond(self._cached("/apis", lambda: discovery.group_list(registry)))
        if path == "/openapi/v3":
            return _respond(self._cached("/openapi/v3", lambda: openapi.index(self._openapi_documents())))
        if path.startswith("/openapi/v3/"):
            document = self._openapi_documents().get(path.removeprefix("/openapi/v3/"))
            if document is None:
                raise errors.resource_not_served()
            return _respond(document)
        segments = path.strip("/").split("/")
        if segments[0] == "api" and len(segments) == 2 and segments[1] == "v1":
            return _respond(self._cached(path, lambda: discovery.resource_list(registry, "", "v1", extra)))
        if segments[0] == "apis" and len(segments) == 2 and registry.group_versions(segments[1]):
            body = dict(discovery.api_group(registry, segments[1]), kind="APIGroup", apiVersion="v1")
            return _respond(encode(body))
        if segments[0] == "apis" and len(segments) == 3 and segments[2] in registry.group_versions(segments[1]):
            return _respond(
                self._cached(path, lambda: discovery.resource_list(registry, segments[1], segments[2], extra))
            )
        raise errors.resource_not_served()

    def _openapi_documents(self) -> dict[str, bytes]:
        documents = {}
        for path, group, version in openapi.group_version_paths(self.registry):
            documents[path] = self._cached(
                f"openapi:{path}", lambda g=group, v=version: openapi.group_version_document(self.registry, g, v)
            )
        return documents

    # --- request decoding --------------------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request, *, kind: Kind | None = None, patch: bool = False) -> Any:
        raw = await request.read()
        if not raw.strip():
            if patch:
                raise errors.bad_request("the body of the request was empty")
            raise errors.bad_request("the body of the request was in an unknown format - body is empty")
        # Like the real server, a request without Content-Type is read as JSON (the official client sends none).
        content_type = request.content_type if "Content-Type" in request.headers else JSON
        if content_type == protobuf.MEDIA_TYPE and not patch:
            return protobuf.decode(raw)
        if not patch and content_type not in (JSON, *_YAML_TYPES):
            raise errors.unsupported_media_type(content_type, [JSON, "application/yaml", protobuf.MEDIA_TYPE])
        try:
            if content_type in _YAML_TYPES or content_type == APPLY_PATCH:
                return yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader
            return json.loads(raw)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if patch:
                raise errors.bad_request(f"error decoding patch: {exc}") from None
            what = f"{kind.kind}: " if kind else ""
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {what}{exc}") from None

    @staticmethod
    def _dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
        values = [*request.query.getall("dryRun", []), *((options or {}).get("dryRun") or ())]
        for value in values:
            if value != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        return bool(values)

    @staticmethod
    def _field_validation(request: web.Request) -> str:
        value = request.query.get("fieldValidation", "") or "Warn"
        if value not in FIELD_VALIDATION:
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"'
            )
        return value

    def _list_query(self, request: web.Request, info: RequestInfo, kind: Kind) -> _ListQuery:
        query = request.query
        namespace = info.namespace if kind.namespaced and info.namespace else None
        selection = Selection(
            namespace,
            parse_label_selector(query.get("labelSelector", "")),
            parse_field_selector(query.get("fieldSelector", ""), kind),
        )
        try:
            limit = int(query.get("limit", "0") or 0)
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        if limit < 0:
            raise errors.bad_request("limit: Invalid value: must be greater than or equal to 0")
        if timeout is not None and timeout <= 0:
            timeout = None  # as on the real server: no timeout asked for, the server's own applies
        include = query.get("includeObject", "Metadata") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise errors.bad_request(f'includeObject: Unsupported value: "{include}"')
        parsed = _ListQuery(
            selection=selection,
            limit=limit,
            continue_token=query.get("continue", ""),
            rv=query.get("resourceVersion", ""),
            rv_match=query.get("resourceVersionMatch", ""),
            watch=info.verb == "watch",
            bookmarks=parse_bool(query.get("allowWatchBookmarks"), name="allowWatchBookmarks"),
            timeout=timeout,
            include_object=include,
        )
        if parsed.rv_match and parsed.rv_match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(
                f'resourceVersionMatch: Unsupported value: "{parsed.rv_match}": supported values: "Exact", '
                '"NotOlderThan"'
            )
        if parsed.rv_match and parsed.watch:
            raise errors.bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch")
        if parsed.rv_match and not parsed.rv:
            raise errors.bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if parsed.continue_token and parsed.rv not in ("", "0") and not parsed.watch:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        return parsed

    @staticmethod
    def _revision(value: str) -> int:
        try:
            revision = int(value)
        except ValueError:
            revision = -1
        if revision < 0:
            raise errors.bad_request(f'Invalid value: "{value}": resourceVersion must be a non-negative integer')
        return revision

    # --- standard verbs ----------------------------------------------------------------------------------------

    async def _standard(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.StreamResponse:
        method = request.method
        if info.subresource == "status" and not kind.status_subresource:
            raise errors.resource_not_served()
        if info.subresource == "scale" and kind.scale is None:
            raise errors.resource_not_served()
        if not info.subresource and info.verb not in kind.verbs:
            raise errors.method_not_allowed()
        review = self._reviews.get((kind.group, kind.plural))
        if review is not None:
            return await self._review(request, info, kind, review)
        if kind.verbs == ("create",):
            raise errors.resource_not_served()  # a create-only kind nothing answers: the API is not served here
        if not info.name:
            if method == "GET":
                return await (self._watch if info.verb == "watch" else self._list)(request, info, kind)
            if method == "POST":
                return await self._create(request, info, kind)
            if method == "DELETE":
                return await self._delete_collection(request, info, kind)
            raise errors.method_not_allowed()
        if method == "GET":
            return self._get(request, info, kind)
        if method == "PUT":
            return await self._update(request, info, kind)
        if method == "PATCH":
            return await self._patch(request, info, kind)
        if method == "DELETE" and not info.subresource:
            return await self._delete(request, info, kind)
        raise errors.method_not_allowed()

    def _object_response(self, info: RequestInfo, kind: Kind, written: Written, status: int = 200) -> web.Response:
        if info.subresource == "scale":
            body = encode(self.store.resource(kind).scale(written.stored))
        else:
            body = written.stored.encoded(kind.api_version(info.version))
        return _respond(body, status, warnings=written.warnings)

    def _get(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        storage = self.store.resource(kind)
        stored = storage.get(info.namespace, info.name)
        if info.subresource == "scale":
            return _respond(encode(storage.scale(stored)))
        negotiated = negotiate(request.headers.get("Accept", ""))
        if negotiated.table:
            include = request.query.get("includeObject", "Metadata") or "Metadata"
            body = tables.table(kind, info.version, [stored], include_object=include)
            return _respond(body, content_type=tables.TABLE_MEDIA)
        return _respond(stored.encoded(kind.api_version(info.version)))

    async def _list(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        negotiated = negotiate(request.headers.get("Accept", ""))
        query = self._list_query(request, info, kind)
        revision: int | None = None
        if query.rv not in ("", "0") and not query.continue_token:
            revision = self._revision(query.rv)
            if revision > self.store.resource_version:
                raise errors.too_large_resource_version(revision, self.store.resource_version)
            exact = query.rv_match == "Exact" or (not query.rv_match and query.limit > 0)
            if not exact:
                revision = None
        page = self.store.list_page(
            kind, query.selection, limit=query.limit, continue_token=query.continue_token, rv=revision
        )
        metadata: dict[str, Any] = {"resourceVersion": str(page.rv)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
            if page.remaining is not None:
                metadata["remainingItemCount"] = page.remaining
        if negotiated.table:
            body = tables.table(kind, info.version, page.items, include_object=query.include_object, metadata=metadata)
            return _respond(body, content_type=tables.TABLE_MEDIA)
        return _respond(_list_body(kind, info.version, metadata, page.items))

    async def _create(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        body = await self._body(request, kind=kind)
        written = self.store.resource(kind).create(
            info.version,
            info.namespace,
            body,
            dry_run=self._dry_run(request),
            field_validation=self._field_validation(request),
        )
        return self._object_response(info, kind, written, 201)

    async def _update(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        body = await self._body(request, kind=kind)
        storage = self.store.resource(kind)
        if info.subresource == "scale":
            written = storage.update_scale(
                info.version, info.namespace, info.name, body, dry_run=self._dry_run(request)
            )
        else:
            written = storage.update(
                info.version,
                info.namespace,
                info.name,
                body,
                subresource=info.subresource,
                dry_run=self._dry_run(request),
                field_validation=self._field_validation(request),
            )
        return self._object_response(info, kind, written)

    async def _patch(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        content_type = request.content_type
        if content_type == APPLY_PATCH and not info.subresource:
            config = await self._body(request, kind=kind, patch=True)
            written = self.store.resource(kind).apply(
                info.version,
                info.namespace,
                info.name,
                config,
                manager=request.query.get("fieldManager", ""),
                dry_run=self._dry_run(request),
                field_validation=self._field_validation(request),
            )
            return self._object_response(info, kind, written, 201 if written.created else 200)
        if content_type not in _PATCH_TYPES:
            raise errors.unsupported_media_type(
                content_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
            )
        patch = await self._body(request, kind=kind, patch=True)
        written = self.store.resource(kind).patch(
            info.version,
            info.namespace,
            info.name,
            patch,
            content_type,
            subresource=info.subresource,
            dry_run=self._dry_run(request),
            field_validation=self._field_validation(request),
        )
        return self._object_response(info, kind, written)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            options = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        problem = decode_problem(DELETE_OPTIONS, options, "DeleteOptions")
        if problem:
            raise errors.bad_request(problem)
        return options

    async def _delete(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        options = await self._delete_options(request)
        written = self.store.resource(kind).delete(
            info.namespace,
            info.name,
            preconditions=options.get("preconditions"),
            dry_run=self._dry_run(request, options),
        )
        if written.removed and kind.delete_returns_status:
            details: dict[str, Any] = {"name": info.name}
            if kind.group:
                details["group"] = kind.group
            details["kind"] = kind.plural
            details["uid"] = written.stored.obj["metadata"].get("uid", "")
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
            return _respond(encode(status))
        return self._object_response(info, kind, written)

    async def _delete_collection(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
        options = await self._delete_options(request)
        query = self._list_query(request, info, kind)
        deleted = self.store.resource(kind).delete_collection(query.selection, dry_run=self._dry_run(request, options))
        metadata = {"resourceVersion": str(self.store.resource_version)}
        return _respond(_list_body(kind, info.version, metadata, deleted))

    # --- access reviews ----------------------------------------------------------------------------------------

    async def _review(
        self,
        request: web.Request,
        info: RequestInfo,
        kind: Kind,
        answer: ReviewAnswer,
    ) -> web.Response:
        body = await self._body(request, kind=kind)
        problem = decode_problem(schema_of(kind.group, kind.kind), body, kind.kind)
        if problem:
            raise errors.cannot_decode(kind.kind, info.version, problem)
        spec = body.get("spec") or {}
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if kind.namespaced:
            metadata["namespace"] = info.namespace
        review = {
            "kind": kind.kind,
            "apiVersion": kind.api_version(info.version),
            "metadata": metadata,
            **({"spec": spec} if kind.kind != "SelfSubjectReview" else {}),
            "status": answer(request[USER], spec, info.namespace if kind.namespaced else ""),
        }
        return _respond(encode(review), 201)

    # --- watch -----------------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, info: RequestInfo, kind: Kind) -> web.StreamResponse:
        negotiated = negotiate(request.headers.get("Accept", ""))
        query = self._list_query(request, info, kind)
        store = self.store
        transport = request.transport
        watcher = Watcher(
            kind,
            query.selection,
            max_backlog=self.options.watch_backlog or store.history_size,
            abort=transport.abort if transport is not None else None,
        )
        start_error: errors.ApiError | None = None
        if query.rv in ("", "0"):
            page = store.list_page(kind, query.selection)
            watcher.queue([(ADDED, stored) for stored in page.items])
        else:
            revision = self._revision(query.rv)
            if revision > store.resource_version:
                raise errors.too_large_resource_version(revision, store.resource_version)
            try:
                replay = [watcher.translate(event) for event in store.events_since(kind, revision)]
                watcher.queue([item for item in replay if item is not None])
            except errors.ApiError as exc:
                start_error = exc
        content_type = tables.TABLE_MEDIA if negotiated.table else JSON
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        if start_error is not None:
            await response.prepare(request)
            await response.write(self._error_line(start_error))
            await response.write_eof()
            return response
        # Registered before the first await: a commit made while the response starts is this watcher's to send.
        store.add_watcher(watcher)
        task = asyncio.current_task()
        if task is not None:
            self._watch_tasks.add(task)
        encoder = _EventEncoder(kind, info.version, negotiated.table, query.include_object)
        timeout = query.timeout if query.timeout is not None else self.options.max_watch_timeout
        deadline = time.monotonic() + min(timeout, self.options.max_watch_timeout)
        interval = self.options.bookmark_interval
        next_bookmark = time.monotonic() + interval
        try:
            await response.prepare(request)
            while True:
                now = time.monotonic()
                wake_at = min(deadline, next_bookmark) if query.bookmarks else deadline
                await watcher.wait(max(0.0, wake_at - now))
                if watcher.closed is not None:
                    break
                items = watcher.drain()
                if items and not watcher.stalled:
                    await response.write(b"".join(encoder.line(item) for item in items))
                now = time.monotonic()
                # A bookmark waits until everything queued is sent: then the store's revision is one the client
                # has seen every event of, and no event after the bookmark can carry an older one.
                if query.bookmarks and now >= next_bookmark and not watcher.pending:
                    if not watcher.stalled:
                        await response.write(encoder.bookmark(store.resource_version))
                    next_bookmark = now + interval
                if now >= deadline:
                    break
            if not watcher.dropped:
                await response.write_eof()
        except ConnectionResetError:  # the client went away, or the watch was dropped: nothing more to send
            pass
        finally:
            store.remove_watcher(watcher)
            if task is not None:
                self._watch_tasks.discard(task)
        return response

    @staticmethod
    def _error_line(error: errors.ApiError) -> bytes:
        return b'{"type":"ERROR","object":' + encode(error.status()) + b"}\n"

    async def shutdown_watches(self) -> None:
        """End every open watch (server shutdown): their clients see the stream end and reconnect."""
        for watcher in self.store.watchers():
            watcher.close("server shutting down")
        tasks = list(self._watch_tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5)


def _list_body(kind: Kind, version: str, metadata: dict[str, Any], items: list[StoredObject]) -> bytes:
    """A `<Kind>List` of `items` as served at `version`: a join of each object's cached JSON bytes."""
    api_version = kind.api_version(version)
    head = f'{{"kind":"{kind.list_kind}","apiVersion":"{api_version}","metadata":'.encode() + encode(metadata)
    return head + b',"items":[' + b",".join(s.encoded(api_version) for s in items) + b"]}"


class _EventEncoder:
    """Watch event lines for one watch: plain objects, or one-row Tables (headers on the first event only)."""

    def __init__(self, kind: Kind, version: str, table: bool, include_object: str) -> None:
        self.kind = kind
        self.version = version
        self.api_version = kind.api_version(version)
        self.table = table
        self.include_object = include_object
        self._headers_sent = False
        self._prefixes = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED")}

    def line(self, item: WatchItem) -> bytes:
        event_type, stored = item
        if self.table:
            body = tables.table(
                self.kind, self.version, [stored], include_object=self.include_object, headers=not self._headers_sent
            )
            self._headers_sent = True
        else:
            body = stored.encoded(self.api_version)
        return self._prefixes[event_type] + body + b"}\n"

    def bookmark(self, rv: int) -> bytes:
        obj = {"kind": self.kind.kind, "apiVersion": self.api_version, "metadata": {"resourceVersion": str(rv)}}
        return b'{"type":"BOOKMARK","object":' + encode(obj) + b"}\n"
