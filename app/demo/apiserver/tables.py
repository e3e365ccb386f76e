"""Server-side printing: objects as a `meta.k8s.io/v1` Table, which is what `kubectl get` asks for and prints.

Built-in kinds use the printer functions of `printers.py`; custom kinds evaluate their CRD printer columns'
JSONPath, with `date` columns turned into ages and numbers kept numeric, as the apiextensions server does.
"""

from __future__ import annotations

import json
from typing import Any

from .jsonpath import find_all
from .kinds import Kind, PrinterColumn
from .printers import age
from .store import StoredObject, encode

TABLE_MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "priority": 0,
}


def column_definitions(kind: Kind, version: str) -> list[dict[str, Any]]:
    definitions = [dict(_NAME_COLUMN)]
    for column in kind.columns(version):
        definitions.append(
            {
                "name": column.name,
                "type": column.type,
                "format": column.format,
                "description": column.description
                or f"Custom resource definition column (in JSONPath format): {column.json_path}",
                "priority": column.priority,
            }
        )
    return definitions


def _jsonpath_cell(column: PrinterColumn, obj: dict[str, Any]) -> Any:
    found = find_all(obj, column.json_path)
    if not found:
        return None
    value = found[0]
    if column.type == "date":
        return age(value) if isinstance(value, str) else None
    if column.type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else _text(value)
    if column.type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else _text(value)
    if column.type == "boolean":
        return value if isinstance(value, bool) else _text(value)
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _cell(column: PrinterColumn, obj: dict[str, Any]) -> Any:
    try:
        return column.cell(obj) if column.cell is not None else _jsonpath_cell(column, obj)
    except Exception:  # an object a printer cannot read shows an empty cell; it never fails the whole LIST
        return None


def cells(kind: Kind, version: str, obj: dict[str, Any]) -> list[Any]:
    return [obj["metadata"].get("name", ""), *(_cell(column, obj) for column in kind.columns(version))]


def _partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def row(kind: Kind, version: str, stored: StoredObject, include_object: str) -> dict[str, Any]:
    api_version = kind.api_version(version)
    obj = stored.as_version(api_version)
    entry: dict[str, Any] = {"cells": cells(kind, version, obj)}
    if include_object == "Object":
        entry["object"] = obj
    elif include_object != "None":
        entry["object"] = _partial_metadata(obj)
    return entry


def table(
    kind: Kind,
    version: str,
    items: list[StoredObject],
    *,
    include_object: str = "Metadata",
    metadata: dict[str, Any] | None = None,
    headers: bool = True,
) -> bytes:
    """The JSON bytes of a Table of `items` (a LIST answer, or a single-row watch event object)."""
    body = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata or {},
        "columnDefinitions": column_definitions(kind, version) if headers else [],
        "rows": [row(kind, version, stored, include_object) for stored in items],
    }
    return encode(body)
