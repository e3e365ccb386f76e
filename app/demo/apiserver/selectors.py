"""Label and field selectors: parsed once per request, then matched against thousands of plain dicts.

Grammar and error wording follow `k8s.io/apimachinery/pkg/labels` and `.../fields`: labels accept `=`, `==`, `!=`,
`in (...)`, `notin (...)`, `key` (exists), `!key` (does not exist), `>`/`<` (integer comparison); fields accept
`=`, `==`, `!=` on the labels each kind supports, compared as strings.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .jsonpath import find_first
from .kinds import Kind

_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@lru_cache(maxsize=8192)
def label_key_errors(key: str) -> tuple[str, ...]:
    """Why `key` is not a valid label (or annotation) key; empty when it is valid (cached: keys repeat)."""
    prefix, slash, name = key.rpartition("/")
    errors: list[str] = []
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errors.append(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
            "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _LABEL_NAME.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return tuple(errors)


@lru_cache(maxsize=8192)
def label_value_errors(value: str) -> tuple[str, ...]:
    """Why `value` is not a valid label value; empty when it is valid (cached: values repeat)."""
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
            "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return tuple(errors)


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.operator
        if op == "=":
            return labels.get(self.key) == self.values[0]
        if op == "in":
            return self.key in labels and labels[self.key] in self.values
        if op == "!=":
            return labels.get(self.key) != self.values[0]
        if op == "notin":
            return labels.get(self.key) not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        try:
            actual = int(labels[self.key])
        except (KeyError, ValueError):
            return False
        bound = int(self.values[0])
        return actual > bound if op == ">" else actual < bound


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


_SET_EXPR = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_BINARY = re.compile(r"^\s*([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(.*?)\s*$")


def parse_label_selector(selector: str) -> tuple[Requirement, ...]:
    """Parse a label selector string; raises a 400 `ApiError` with the real server's wording when malformed."""
    if not selector or not selector.strip():
        return ()
    requirements: list[Requirement] = []
    for raw in _split_top_level(selector):
        part = raw.strip()
        if not part:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
        match = _SET_EXPR.match(part)
        if match:
            key, op = match.group(1), match.group(2)
            values = tuple(v.strip() for v in match.group(3).split(",")) if match.group(3).strip() else ()
            if not values:
                raise bad_request(
                    f"unable to parse requirement: values: Invalid value: \"\": for '{op}', 'notin' operators, "
                    "values set can't be empty"
                )
            requirement = Requirement(key, op, values)
        elif part.startswith("!"):
            requirement = Requirement(part[1:].strip(), "!")
        elif (match := _BINARY.match(part)) is not None:
            key, op, value = match.group(1), match.group(2), match.group(3)
            op = "=" if op == "==" else op
            if op in "<>":
                try:
                    int(value)
                except ValueError:
                    raise bad_request(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
                    ) from None
            requirement = Requirement(key, op, (value,))
        elif re.fullmatch(r"[^\s=!<>(),]+", part):
            requirement = Requirement(part, "exists")
        else:
            raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier")
        for error in label_key_errors(requirement.key):
            raise bad_request(f'unable to parse requirement: key: Invalid value: "{requirement.key}": {error}')
        for value in requirement.values if requirement.operator not in "<>" else ():
            for error in label_value_errors(value):
                raise bad_request(
                    f'unable to parse requirement: values[0][{requirement.key}]: Invalid value: "{value}": {error}'
                )
        requirements.append(requirement)
    return tuple(requirements)


def selector_from_label_selector(selector: dict[str, Any] | None) -> tuple[Requirement, ...] | None:
    """Requirements of a `metav1.LabelSelector` object; None for a null selector (which matches nothing)."""
    if selector is None:
        return None
    requirements = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        operator = operators.get(expr.get("operator", ""))
        if operator is None:
            raise bad_request(f"{expr.get('operator')!r} is not a valid label selector operator")
        requirements.append(Requirement(expr.get("key", ""), operator, tuple(expr.get("values") or ())))
    return tuple(requirements)


def format_label_selector(requirements: tuple[Requirement, ...]) -> str:
    """The string form of requirements (used where an API returns a selector as text, e.g. `scale.status`)."""
    parts = []
    for r in requirements:
        if r.operator in ("=", "!=", ">", "<"):
            parts.append(f"{r.key}{r.operator}{r.values[0]}")
        elif r.operator in ("in", "notin"):
            parts.append(f"{r.key} {r.operator} ({','.join(sorted(r.values))})")
        elif r.operator == "exists":
            parts.append(r.key)
        else:
            parts.append(f"!{r.key}")
    return ",".join(parts)


def labels_match(requirements: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    label: str
    path: str
    negate: bool
    value: str


_FIELD_TERM = re.compile(r"^(.*?)(==|!=|=)(.*)$", re.S)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split_fields(selector: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in selector:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_field_selector(selector: str, kind: Kind) -> tuple[FieldRequirement, ...]:
    """Parse a field selector for `kind`; unknown labels are a 400 as on the real server."""
    if not selector or not selector.strip():
        return ()
    requirements = []
    for term in _split_fields(selector):
        if not term.strip():
            continue
        match = _FIELD_TERM.match(term)
        if not match:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        label = _unescape(match.group(1)).strip()
        path = kind.field_label_path(label)
        if path is None:
            if kind.builtin:
                raise bad_request(f"field label not supported: {label}")
            allowed = '"metadata.name", "metadata.namespace"' if kind.namespaced else '"metadata.name"'
            raise bad_request(f'"{label}" is not a known field selector: only {allowed}')
        requirements.append(FieldRequirement(label, path, match.group(2) == "!=", _unescape(match.group(3))))
    return tuple(requirements)


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    for requirement in requirements:
        if requirement.path == ".metadata.name":
            actual = obj["metadata"].get("name", "")
        elif requirement.path == ".metadata.namespace":
            actual = obj["metadata"].get("namespace", "")
        else:
            actual = _field_text(find_first(obj, requirement.path))
        if (actual == requirement.value) == requirement.negate:
            return False
    return True


@dataclass(frozen=True)
class Selection:
    """A namespace plus label and field requirements: what a LIST or WATCH asks for."""

    namespace: str | None = None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    @property
    def is_everything(self) -> bool:
        return not self.labels and not self.fields

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels and not labels_match(self.labels, meta.get("labels")):
            return False
        return not self.fields or fields_match(self.fields, obj)
