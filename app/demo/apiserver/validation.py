"""Validation the real API server applies before it stores anything.

Two layers, as on the real server:

- Object metadata: names (DNS-1123 subdomain, DNS-1123 label or DNS-1035 label, depending on the kind), label keys
  and values, annotation keys and total size, `generateName`.
- For kinds with a loaded CRD schema: the structural openAPIV3Schema pipeline of the apiextensions server, in its
  order: drop nulls where the schema does not allow them, apply `default`s, prune fields the schema does not declare
  (reporting them for `fieldValidation=Strict`), then check types, `required`, `enum`, `pattern`, lengths, bounds,
  item counts and list-type uniqueness. Errors carry the field path and the wording of `kubectl` users know.
  CEL rules (`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import FieldError, format_value, invalid, not_supported, required, too_long
from .selectors import label_key_errors, label_value_errors

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_NAME_RULES = {
    "subdomain": (_SUBDOMAIN, 253, _SUBDOMAIN_MESSAGE),
    "label": (_LABEL, 63, _LABEL_MESSAGE),
    "dns1035": (_DNS1035, 63, _DNS1035_MESSAGE),
}
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


@lru_cache(maxsize=8192)
def name_errors(name: str, rule: str) -> tuple[str, ...]:
    """Why `name` is not a valid object name under `rule` ("subdomain", "label" or "dns1035")."""
    pattern, limit, message = _NAME_RULES[rule]
    errors = []
    if len(name) > limit:
        errors.append(f"must be no more than {limit} characters")
    if not pattern.match(name):
        errors.append(message)
    return tuple(errors)


def validate_metadata(meta: dict[str, Any], name_rule: str, *, namespaced: bool) -> list[FieldError]:
    """Field errors of an object's metadata (name, generateName, namespace, labels, annotations)."""
    errors: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(invalid("metadata.name", name, e) for e in name_errors(name, name_rule))
    generate = meta.get("generateName")
    if generate and not name:
        # Only the prefix is checked; the random suffix is always valid.
        errors.extend(
            invalid("metadata.generateName", generate, e) for e in name_errors(generate.rstrip("-") or "a", name_rule)
        )
    if namespaced and not meta.get("namespace"):
        errors.append(required("metadata.namespace"))
    for key, value in (meta.get("labels") or {}).items():  # strings or nulls, as decoding checked
        key_problems, value_problems = label_key_errors(key), label_value_errors(value or "")
        if key_problems or value_problems:
            errors.extend(invalid("metadata.labels", key, e) for e in key_problems)
            errors.extend(invalid("metadata.labels", value, e) for e in value_problems)
    annotations = meta.get("annotations") or {}
    size = 0
    for key, value in annotations.items():
        key_problems = label_key_errors(key.lower())
        if key_problems:
            errors.extend(invalid("metadata.annotations", key, e) for e in key_problems)
        size += len(key) + len(value or "")
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        errors.append(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT))
    return errors


# --- openAPIV3Schema ---------------------------------------------------------------------------------------------

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_ROOT_SKIP = frozenset({"apiVersion", "kind", "metadata"})


@dataclass
class SchemaResult:
    """What the schema pipeline found: validation errors and pruned (unknown) field paths."""

    errors: list[FieldError] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)


_JSON_TYPES = {
    type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"
}


def _json_type(value: Any) -> str:
    found = _JSON_TYPES.get(type(value))
    if found is not None:
        return found
    for python_type, name in _JSON_TYPES.items():  # subclasses
        if isinstance(value, python_type):
            return name
    return "object"


def _type_matches(expected: str, actual: str) -> bool:
    return actual == expected or (expected == "number" and actual == "integer")


def _type_error(path: str, actual: str, expected: str) -> FieldError:
    detail = f'{path} in body must be of type {expected}: "{actual}"'
    return FieldError("FieldValueTypeInvalid", path, detail, actual, True)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=64)
def _compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


class _Walker:
    def __init__(self, *, allow_null: bool = False) -> None:
        self.result = SchemaResult()
        self.allow_null = allow_null  # as Go's JSON decoding does: null is the zero value of any type

    def error(self, error: FieldError) -> None:
        self.result.errors.append(error)

    # Pipeline step 1+2+3: nulls, defaults, pruning. Mutates `value` in place.
    def normalise(self, schema: dict[str, Any], value: Any, path: str, *, root: bool = False) -> None:
        if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema or root):
            properties = schema.get("properties") or {}
            additional = schema.get("additionalProperties")
            preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
            for name in list(value):
                if root and name in _ROOT_SKIP:
                    continue
                sub = properties.get(name)
                if sub is None and isinstance(additional, dict):
                    sub = additional
                if sub is None:
                    if not preserve and additional is not True:
                        del value[name]
                        self.result.unknown_fields.append(_child(path, name))
                    continue
                if value[name] is None and not sub.get("nullable", False):
                    del value[name]
                    continue
                child_path = _child(path, name) if name in properties else f"{path}[{name}]"
                self.normalise(sub, value[name], child_path)
            for name, sub in properties.items():
                if name not in value and "default" in sub and not (root and name in _ROOT_SKIP):
                    value[name] = copy.deepcopy(sub["default"])
                    self.normalise(sub, value[name], _child(path, name))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                self.normalise(schema["items"], item, f"{path}[{index}]")

    # Pipeline step 4: validation.
    def validate(self, schema: dict[str, Any], value: Any, path: str, *, root: bool = False) -> None:
        actual = _json_type(value)
        if actual == "null":
            if not (schema.get("nullable", False) or self.allow_null):
                self.error(_type_error(path, "null", schema.get("type", "object")))
            return
        if schema.get("x-kubernetes-int-or-string"):
            if actual not in ("integer", "string"):
                self.error(_type_error(path, actual, "integer,string"))
                return
        elif "type" in schema and not _type_matches(schema["type"], actual):
            self.error(_type_error(path, actual, schema["type"]))
            return
        if "enum" in schema and value not in schema["enum"]:
            self.error(not_supported(path, value, schema["enum"]))
        if actual == "object":
            self._object(schema, value, path, root=root)
        elif actual == "array":
            self._array(schema, value, path)
        elif actual == "string":
            if len(schema) > 1:  # more than a type to check
                self._string(schema, value, path)
        elif actual != "boolean":
            self._number(schema, value, path)

    def _string(self, schema: dict[str, Any], value: str, path: str) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.error(FieldError("FieldValueTooLong", path, f"may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.error(invalid(path, value, f"{path} in body should be at least {schema['minLength']} chars long"))
        pattern = schema.get("pattern")
        if pattern:
            compiled = _compiled_pattern(pattern)
            if compiled is not None and not compiled.search(value):
                self.error(invalid(path, value, f"{path} in body should match '{pattern}'"))
        if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
            self.error(invalid(path, value, f"{path} in body must be of type date-time: {format_value(value)}"))

    def _number(self, schema: dict[str, Any], value: float, path: str) -> None:
        if "minimum" in schema:
            bound = schema["minimum"]
            if value < bound or (schema.get("exclusiveMinimum") and value == bound):
                word = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                self.error(invalid(path, value, f"{path} in body should be {word} {bound}"))
        if "maximum" in schema:
            bound = schema["maximum"]
            if value > bound or (schema.get("exclusiveMaximum") and value == bound):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                self.error(invalid(path, value, f"{path} in body should be {word} {bound}"))

    def _array(self, schema: dict[str, Any], value: list[Any], path: str) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.error(
                FieldError("FieldValueTooMany", path, f"must have at most {schema['maxItems']} items", len(value), True)
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.error(invalid(path, len(value), f"{path} in body should have at least {schema['minItems']} items"))
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for index, item in enumerate(value):
                if item in seen:
                    self.error(FieldError("FieldValueDuplicate", f"{path}[{index}]", "", item, True))
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: set[str] = set()
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                identity = json.dumps([item.get(k) for k in keys])
                if identity in seen_keys:
                    shown = {k: item.get(k) for k in keys}
                    self.error(FieldError("FieldValueDuplicate", f"{path}[{index}]", "", json.dumps(shown), True))
                seen_keys.add(identity)
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.validate(items, item, f"{path}[{index}]")

    def _object(self, schema: dict[str, Any], value: dict[str, Any], path: str, *, root: bool) -> None:
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.error(
                FieldError(
                    "FieldValueTooMany", path, f"must have at most {schema['maxProperties']} items", len(value), True
                )
            )
        for name in schema.get("required") or []:
            if name not in value and not (root and name == "metadata"):
                self.error(required(_child(path, name)))
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for name, item in value.items():
            if root and name in _ROOT_SKIP:
                continue
            if name in properties:
                self.validate(properties[name], item, _child(path, name))
            elif isinstance(additional, dict):
                self.validate(additional, item, f"{path}[{name}]")


def apply_schema(obj: dict[str, Any], schema: dict[str, Any]) -> SchemaResult:
    """Run the structural-schema pipeline on `obj` in place: drop disallowed nulls, default, prune, validate."""
    walker = _Walker()
    walker.normalise(schema, obj, "", root=True)
    walker.validate(schema, obj, "", root=True)
    return walker.result


def type_errors(value: Any, schema: dict[str, Any]) -> list[FieldError]:
    """Where `value` does not have the types `schema` gives, nulls allowed (what decoding into a Go struct rejects)."""
    walker = _Walker(allow_null=True)
    walker.validate(schema, value, "")
    return [error for error in walker.result.errors if error.reason == "FieldValueTypeInvalid"]
