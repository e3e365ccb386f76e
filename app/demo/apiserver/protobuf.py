"""Decoding the Kubernetes protobuf request bodies that kubectl's typed clients send.

kubectl's generated clients (`kubectl create namespace|configmap|secret|serviceaccount`, `kubectl auth can-i`)
send `application/vnd.kubernetes.protobuf` bodies and do not fall back to JSON. The body is the magic `k8s\\0`
followed by a `runtime.Unknown` envelope (type meta plus the raw message). This module decodes the wire format
for the message types those commands send, into the same dicts a JSON body would give. Responses are always JSON,
which those clients accept. A body of any other type is answered with 415, as a server without that type would.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from . import errors

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A message descriptor maps field numbers to (json name, field type). Field types: "string", "bytes", "bool",
# "int", "time", a nested descriptor, ("repeated", type) or ("map", value type) (map keys are strings).
Descriptor = dict[int, tuple[str, Any]]

_TYPE_META: Descriptor = {1: ("apiVersion", "string"), 2: ("kind", "string")}
_UNKNOWN: Descriptor = {
    1: ("typeMeta", _TYPE_META),
    2: ("raw", "bytes"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}
_TIME: Descriptor = {1: ("seconds", "int"), 2: ("nanos", "int")}
_OWNER_REFERENCE: Descriptor = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Descriptor = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", _OWNER_REFERENCE)),
    14: ("finalizers", ("repeated", "string")),
}
_OBJECT_REFERENCE: Descriptor = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("resourceVersion", "string"),
    7: ("fieldPath", "string"),
}
_RESOURCE_ATTRIBUTES: Descriptor = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
_NON_RESOURCE_ATTRIBUTES: Descriptor = {1: ("path", "string"), 2: ("verb", "string")}

MESSAGES: dict[tuple[str, str], Descriptor] = {
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", _OBJECT_META),
        2: ("secrets", ("repeated", _OBJECT_REFERENCE)),
        3: ("imagePullSecrets", ("repeated", {1: ("name", "string")})),
        4: ("automountServiceAccountToken", "bool"),
    },
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {1: ("resourceAttributes", _RESOURCE_ATTRIBUTES), 2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES)},
        ),
    },
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("namespace", "string")}),
    },
}


class _WireError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field of one message."""
    found = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
            if pos > len(data):
                raise _WireError("truncated field")
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        found.append((number, wire, value))
    return found


def _scalar(kind: Any, value: Any) -> Any:
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "time":
        parts = _message(_TIME, value)
        if not parts.get("seconds"):
            return None
        return datetime.fromtimestamp(parts["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _message(kind, value)


def _message(descriptor: Descriptor, data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        field = descriptor.get(number)
        if field is None:
            continue  # fields this server does not read (managedFields, status...)
        name, kind = field
        element = kind[1] if isinstance(kind, tuple) and kind[0] == "repeated" else kind
        if wire != (0 if element in ("bool", "int") else 2):
            raise _WireError(f"field {name} has the wrong wire type {wire}")
        if isinstance(kind, tuple) and kind[0] == "repeated":
            result.setdefault(name, []).append(_scalar(kind[1], value))
        elif isinstance(kind, tuple) and kind[0] == "map":
            entry = _message({1: ("key", "string"), 2: ("value", kind[1])}, value)
            result.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
        else:
            decoded = _scalar(kind, value)
            # Go encodes zero values that JSON would omit (`omitempty`): drop them to get the same object.
            if decoded not in (None, "", 0, False):
                result[name] = decoded
    return result


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-equivalent dict of a protobuf request body; 415 for types this server cannot read, 400 if corrupt."""
    if not body.startswith(_MAGIC):
        raise errors.bad_request("provided object is not a Kubernetes protobuf message (missing the k8s magic prefix)")
    try:
        envelope = _message(_UNKNOWN, body[len(_MAGIC) :])
        meta = envelope.get("typeMeta") or {}
        descriptor = MESSAGES.get((meta.get("apiVersion", ""), meta.get("kind", "")))
        if descriptor is None:
            raise errors.unsupported_media_type(MEDIA_TYPE, ["application/json", "application/yaml"])
        obj = _message(descriptor, base64.b64decode(envelope.get("raw", "")))
    except (_WireError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"unable to decode protobuf body: {exc}") from None
    return {"apiVersion": meta["apiVersion"], "kind": meta["kind"], **obj}
