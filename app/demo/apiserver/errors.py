"""API errors as the Kubernetes API server reports them: a `meta/v1 Status` with the real reason and message.

Clients branch on `reason` and `code` (the official client raises `ApiException(status=409)`, kubectl prints
`Error from server (AlreadyExists): ...` from `reason` and `message`), so every failure the server can produce is
built here, in one place, with the wording the real server uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One field-level validation failure (`k8s.io/apimachinery/pkg/util/validation/field.Error`)."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str
    detail: str = ""
    value: Any = None
    has_value: bool = False

    @property
    def message(self) -> str:
        """The cause's message, without the field path (as `details.causes[].message`)."""
        label = _FIELD_REASON_LABELS[self.reason]
        parts = [label]
        if self.has_value:
            parts[0] = f"{label}: {format_value(self.value)}"
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_FIELD_REASON_LABELS = {
    "FieldValueRequired": "Required value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
}


def format_value(value: Any) -> str:
    """Render a rejected value the way Go's `%#v`-ish field errors do: strings quoted, scalars bare."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return repr(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, detail, value, True)


def not_supported(path: str, value: Any, allowed: list[Any]) -> FieldError:
    detail = "supported values: " + ", ".join(format_value(v) for v in allowed)
    return FieldError("FieldValueNotSupported", path, detail, value, True)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, detail)


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"must have at most {limit} bytes")


@dataclass
class ApiError(Exception):
    """An error answered to the client as a `Status` object."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        """The `Status` body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.metadata),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def qualified_resource(group: str, plural: str) -> str:
    """`pods` for the core group, `workloads.kueue.x-k8s.io` otherwise (the GroupResource string)."""
    return f"{plural}.{group}" if group else plural


def qualified_kind(group: str, kind: str) -> str:
    """`Pod` for the core group, `Workload.kueue.x-k8s.io` otherwise (the GroupKind string)."""
    return f"{kind}.{group}" if group else kind


def _details(group: str, plural: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified_resource(group, plural)} "{name}" not found', _details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified_resource(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, detail: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified_resource(group, plural)} "{name}": {detail}',
        _details(group, plural, name),
    )


def stale_conflict(group: str, plural: str, name: str) -> ApiError:
    return conflict(
        group,
        plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def invalid_object(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    rendered = [str(e) for e in errors]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors]
    return ApiError(422, "Invalid", f'{qualified_kind(group, kind)} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def cannot_decode(kind: str, version: str, problem: str) -> ApiError:
    """The 400 of a body that does not decode into the kind's type (wrong JSON types, unknown fields)."""
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {problem}')


def forbidden_error(message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, details)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
    )


def not_acceptable(accepted: list[str]) -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: {', '.join(accepted)}",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def resource_not_served() -> ApiError:
    """The answer to a path no registered API serves (what the real server's NotFound handler returns)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def too_large_resource_version(requested: int, current: int) -> ApiError:
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
    )


def request_too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")
