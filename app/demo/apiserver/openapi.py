"""OpenAPI v3 documents for what kubectl needs from them.

- `kubectl apply` checks, per kind, that the PATCH operation of its group-version document takes a
  `fieldValidation` parameter; if it does, kubectl leaves validation to the server (this server validates against
  CRD schemas) instead of downloading `/openapi/v2`, which this server does not serve.
- `kubectl explain` renders the schema of a kind from `components.schemas`, found by its
  `x-kubernetes-group-version-kind`.

Kinds with a loaded CRD schema publish it (metadata as a reference to ObjectMeta, as the real server does); other
kinds publish an honest outline: the envelope fields, with `spec` and `status` open.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .kinds import Kind, KindRegistry

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_OBJECT_META = f"{_META}.ObjectMeta"
_STATUS = f"{_META}.Status"

_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects "
    "users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {
            "type": "string",
            "description": "Optional prefix the server uses to generate a unique name when none is provided.",
        },
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of string keys and values used to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Unstructured key value map stored with a resource.",
        },
        "uid": {"type": "string", "description": "UID is the unique in time and space value for this object."},
        "resourceVersion": {
            "type": "string",
            "description": "An opaque value that represents the internal "
            "version of this object, used for optimistic concurrency and watches.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Server time when this object was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Time after which this resource will be deleted, set by the server "
            "when a graceful deletion is requested.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object"},
            "description": "Objects depended on by this object.",
        },
    },
}

_STATUS_SCHEMA: dict[str, Any] = {
    "description": "Status is a return value for calls that don't return other objects.",
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "message": {"type": "string"},
        "reason": {"type": "string"},
        "code": {"type": "integer", "format": "int32"},
    },
}

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force")


def schema_name(kind: Kind, version: str) -> str:
    """The definition name the real server uses: `io.k8s.api.core.v1.Pod`, `io.x-k8s.kueue.v1beta1.Workload`."""
    if kind.builtin:
        if kind.group == "apiextensions.k8s.io":
            return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind.kind}"
        return f"io.k8s.api.{kind.group or 'core'}.{version}.{kind.kind}"
    reversed_group = ".".join(reversed(kind.group.split(".")))
    return f"{reversed_group}.{version}.{kind.kind}"


def _envelope() -> dict[str, Any]:
    return {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
        "kind": {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
        "metadata": {"allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}], "default": {}},
    }


def kind_schema(kind: Kind, version: str) -> dict[str, Any]:
    gvk = [{"group": kind.group, "version": version, "kind": kind.kind}]
    loaded = kind.schema(version)
    if loaded is not None:
        schema = json.loads(json.dumps(loaded))
        properties = schema.setdefault("properties", {})
        properties.update(_envelope())
    else:
        open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema = {
            "description": f"{kind.kind} ({kind.api_version(version)}), as served by the hyperdesk demo server. "
            "Only the envelope is described here; the server does not carry this kind's full schema.",
            "type": "object",
            "properties": {
                **_envelope(),
                "spec": {**open_object, "description": f"Desired state of the {kind.kind}."},
                "status": {**open_object, "description": f"Observed state of the {kind.kind}."},
            },
        }
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _operation(kind: Kind, version: str, action: str, ref: str, *, query: tuple[str, ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{kind.kind}",
        "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}} for name in query],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": kind.group, "version": version, "kind": kind.kind},
    }
    if action in ("put", "post", "patch"):
        media = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        content_types = media if action == "patch" else ["application/json"]
        operation["requestBody"] = {
            "content": {media_type: {"schema": {"$ref": ref}} for media_type in content_types},
            "required": True,
        }
    return operation


def group_version_document(registry: KindRegistry, group: str, version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {_OBJECT_META: _OBJECT_META_SCHEMA, _STATUS: _STATUS_SCHEMA}
    paths: dict[str, Any] = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for kind in registry.kinds_in(group, version):
        name = schema_name(kind, version)
        schemas[name] = kind_schema(kind, version)
        ref = f"#/components/schemas/{name}"
        scope = f"{prefix}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{prefix}/{kind.plural}"
        paths[scope] = {
            "get": _operation(kind, version, "list", ref),
            "post": _operation(kind, version, "post", ref, query=_QUERY_PARAMETERS[:3]),
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(kind, version, "get", ref),
            "put": _operation(kind, version, "put", ref, query=_QUERY_PARAMETERS[:3]),
            "patch": _operation(kind, version, "patch", ref, query=_QUERY_PARAMETERS),
            "delete": _operation(kind, version, "delete", f"#/components/schemas/{_STATUS}", query=("dryRun",)),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(documents: dict[str, bytes]) -> dict[str, Any]:
    """The `/openapi/v3` index: one entry per group-version, with a content hash as the real server gives."""
    paths = {}
    for path, body in documents.items():
        digest = hashlib.sha512(body).hexdigest()[:128].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def group_version_paths(registry: KindRegistry) -> list[tuple[str, str, str]]:
    """(path, group, version) of every group-version document."""
    found = [("api/v1", "", "v1")]
    for group in registry.groups():
        if group:
            found.extend((f"apis/{group}/{v}", group, v) for v in registry.group_versions(group))
    return found
