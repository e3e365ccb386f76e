"""The three PATCH flavours: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

All functions are pure: they take the current object and the patch, and return a new object without mutating
either. Strategic merge patch is only accepted for built-in kinds (as on the real server); its list-merge keys are
those the built-in Kubernetes types declare (`containers` by `name`, `conditions` by `type`, ...), looked up by field
name, which matches every field of the kinds this server serves.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def _patch_failed(message: str) -> ApiError:
    """A patch that cannot be applied: a 422 with the patch library's message, as the real server answers."""
    return ApiError(422, "Invalid", message)


# --- JSON merge patch ----------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# --- JSON patch ----------------------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _patch_failed(f'invalid JSON pointer: "{path}"')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _container(doc: Any, parts: list[str], op: str, path: str) -> Any:
    current = doc
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return current


def _list_index(container: list[Any], token: str, op: str, path: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": invalid index')
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": out of bounds')
    return index


def _get(doc: Any, path: str, op: str) -> Any:
    parts = _pointer(path)
    return _container(doc, parts, op, path)


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _container(doc, parts[:-1], op, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, op, path, allow_end=True), value)
    else:
        raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    parent = _container(doc, parts[:-1], op, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, op, path, allow_end=False))
    raise _patch_failed(f'{op} operation does not apply: doc is missing path: "{path}": missing value')


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict):
            raise bad_request("json: cannot unmarshal non-object into Go value of type jsonpatch.Operation")
        op = operation.get("op")
        path = operation.get("path")
        if not isinstance(path, str):
            raise _patch_failed(f"{op} operation does not apply: doc is missing path: missing value")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc, _ = _remove(doc, path)
        elif op == "replace":
            _get(doc, path, "replace")
            if _pointer(path):
                doc, _ = _remove(doc, path, "replace")
            doc = _add(doc, path, copy.deepcopy(operation.get("value")), "replace")
        elif op == "move":
            source = operation.get("from", "")
            doc, value = _remove(doc, source, "move")
            doc = _add(doc, path, value, "move")
        elif op == "copy":
            value = copy.deepcopy(_get(doc, operation.get("from", ""), "copy"))
            doc = _add(doc, path, value, "copy")
        elif op == "test":
            if _get(doc, path, "test") != operation.get("value"):
                raise _patch_failed(f"testing value {path} failed: test failed")
        else:
            raise _patch_failed(f"Unexpected kind: {op}")
    return doc


# --- Strategic merge patch -------------------------------------------------------------------------------------

# List fields of the built-in types that merge by key rather than being replaced, and their merge keys.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "secrets": "name",
}
# Primitive lists merged as sets.
_MERGED_PRIMITIVE_LISTS = {"finalizers"}

_DIRECTIVE = "$patch"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"
_RETAIN_KEYS = "$retainKeys"


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort, service ports on port.
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    return _smp_map(target if isinstance(target, dict) else {}, patch)


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> Any:
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive}")
    result = dict(original)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key == _DIRECTIVE:
            continue
        if key.startswith(_ORDER_PREFIX):
            orders[key.removeprefix(_ORDER_PREFIX)] = value or []
            continue
        if key.startswith(_DELETE_PRIMITIVE_PREFIX):
            field = key.removeprefix(_DELETE_PRIMITIVE_PREFIX)
            doomed = set(map(_hashable, value or []))
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if _hashable(v) not in doomed]
            continue
        if key == _RETAIN_KEYS:
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key) if isinstance(result.get(key), dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(field, result[field], order)
    if _RETAIN_KEYS in patch:
        keep = set(patch[_RETAIN_KEYS] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (dict, list)) else value


def _smp_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    current = list(original) if isinstance(original, list) else []
    if field in _MERGED_PRIMITIVE_LISTS:
        seen = set(map(_hashable, current))
        return current + [copy.deepcopy(v) for v in patch if _hashable(v) not in seen and not seen.add(_hashable(v))]
    key = _merge_key(field, patch + current)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and _DIRECTIVE in item)]
    if any(item.get(_DIRECTIVE) == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if _DIRECTIVE not in item]
    index = {item.get(key): position for position, item in enumerate(current) if isinstance(item, dict)}
    for item in patch:
        identity = item.get(key)
        if item.get(_DIRECTIVE) == "delete":
            if identity in index:
                current[index[identity]] = None
            continue
        if identity in index and current[index[identity]] is not None:
            current[index[identity]] = _smp_map(current[index[identity]], item)
        else:
            index[identity] = len(current)
            current.append(_smp_map({}, item))
    return [item for item in current if item is not None]


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, [i for i in order if isinstance(i, dict)] + items)
    if key is None:
        rank = {_hashable(v): i for i, v in enumerate(order)}
        return sorted(items, key=lambda v: rank.get(_hashable(v), len(rank)))
    rank = {entry.get(key): i for i, entry in enumerate(order) if isinstance(entry, dict)}
    return sorted(items, key=lambda v: rank.get(v.get(key) if isinstance(v, dict) else None, len(rank)))


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> Any:
    """Dispatch on the request's content type (without parameters)."""
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if content_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise bad_request("merge patch must be a JSON object")
        return merge_patch(target, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(target, patch)
    raise ValueError(content_type)
