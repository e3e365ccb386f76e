"""Server-side apply (`kubectl apply --server-side`), in the subset that declarative tools rely on.

Each field manager's applied configuration is recorded as a `FieldsV1` set in `metadata.managedFields`. Applying
again merges the new configuration into the live object and removes the fields this manager applied before but no
longer specifies, which is what makes apply declarative. Lists are owned atomically (as for lists without
`x-kubernetes-list-type: map`), and conflicts with other managers are not detected: every apply behaves as if
`--force-conflicts` were given. That is enough for the case the real limits make necessary: CRDs too large for the
client-side `last-applied-configuration` annotation (Kueue's Workload CRD) install with `--server-side`, as upstream
documents.
"""

from __future__ import annotations

import copy
from typing import Any

from .store import now_timestamp

# Metadata the server owns or that identifies the object: never part of a manager's field set.
_IDENTITY = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
}


def field_set(config: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
    """The FieldsV1 form of the fields `config` sets: `{"f:spec": {"f:replicas": {}}}`."""
    fields: dict[str, Any] = {}
    for key, value in config.items():
        if top and key in ("apiVersion", "kind"):
            continue
        if top and key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _IDENTITY}
            if not value:
                continue
        fields[f"f:{key}"] = field_set(value, top=False) if isinstance(value, dict) and value else {}
    return fields


def _remove(live: dict[str, Any], stale: dict[str, Any], keep: dict[str, Any]) -> None:
    """Delete from `live` the fields in `stale` that `keep` does not also set."""
    for token, sub in stale.items():
        key = token.removeprefix("f:")
        if key not in live:
            continue
        if token not in keep:
            del live[key]
        elif sub and isinstance(live[key], dict):
            _remove(live[key], sub, keep[token])


def _merge(live: dict[str, Any], config: dict[str, Any]) -> None:
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            _merge(live[key], value)
        else:
            live[key] = copy.deepcopy(value)


def apply_configuration(
    live: dict[str, Any] | None, config: dict[str, Any], manager: str, api_version: str
) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live` (None when the object does not exist yet)."""
    fields = field_set(config)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now_timestamp(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if live is None:
        result = copy.deepcopy(config)
        result.setdefault("metadata", {})["managedFields"] = [entry]
        return result
    result = copy.deepcopy(live)
    managed = result["metadata"].get("managedFields") or []
    previous = next((m for m in managed if m.get("manager") == manager and m.get("operation") == "Apply"), None)
    if previous is not None:
        _remove(result, previous.get("fieldsV1") or {}, fields)
    _merge(result, {k: v for k, v in config.items() if k != "metadata"})
    meta_config = {k: v for k, v in (config.get("metadata") or {}).items() if k not in _IDENTITY}
    _merge(result["metadata"], meta_config)
    result["metadata"]["managedFields"] = [m for m in managed if m is not previous] + [entry]
    return result
