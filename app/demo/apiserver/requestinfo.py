"""What a request asks for, in the terms the real server's authorization and handlers use (`RequestInfo`).

`/api/v1/namespaces/team-a/pods/p1/log` becomes verb `get`, resource `pods`, subresource `log`, namespace `team-a`,
name `p1`. Everything after the subresource (the path a proxy forwards) is kept in `tail`. Non-resource paths
(discovery, OpenAPI, health) have `is_resource=False` and their path as `path`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import Kind, KindRegistry

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# HTTP methods of a request on a single object or subresource, as authorization verbs.
_ITEM_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_COLLECTION_VERBS = {"GET": "list", "HEAD": "list", "POST": "create", "DELETE": "deletecollection"}


def parse_bool(value: str | None, *, name: str) -> bool:
    """Parse a boolean query parameter the way Go's `strconv.ParseBool` does (so `watch=True` works)."""
    from .errors import bad_request

    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax for {name}')


@dataclass(frozen=True)
class RequestInfo:
    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    tail: str = ""  # path after the subresource (proxy target path)
    kind: Kind | None = None


def request_info(method: str, path: str, query_watch: str | None, registry: KindRegistry) -> RequestInfo:
    """Classify a request. `kind` is None when the path names no served resource (the handler answers 404)."""
    segments = [s for s in path.split("/") if s != ""]
    non_resource = RequestInfo(path=path, verb=method.lower())
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return non_resource
    if not rest:
        return non_resource

    namespace = ""
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and _is_namespace_subresource(rest, registry, version))
    ):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    tail = "/" + "/".join(rest[3:]) if len(rest) > 3 else ""
    if path.endswith("/") and len(rest) > 3:
        tail += "/"
    if resource == "namespaces" and group == "" and name:
        namespace = name

    kind = registry.lookup(group, version, resource)
    if kind is not None and not kind.namespaced and namespace and resource != "namespaces":
        kind = None
    if name:
        verb = _ITEM_VERBS.get(method, method.lower())
    else:
        verb = _COLLECTION_VERBS.get(method, method.lower())
        if verb == "list" and parse_bool(query_watch, name="watch"):
            verb = "watch"
    return RequestInfo(
        path=path,
        verb=verb,
        is_resource=True,
        group=group,
        version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        tail=tail,
        kind=kind,
    )


def _is_namespace_subresource(rest: list[str], registry: KindRegistry, version: str) -> bool:
    """`/api/v1/namespaces/<name>/status` addresses the namespace itself, not a resource inside it."""
    candidate = rest[2]
    kind = registry.lookup("", version, candidate)
    return len(rest) == 3 and (kind is None or not kind.namespaced)
