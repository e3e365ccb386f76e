"""The subset of Kubernetes JSONPath that printer columns and scale subresource paths use.

CRDs describe columns with expressions such as `.spec.queueName`, `.status.conditions[?(@.type=='Admitted')].status`,
`.status.conditions[-1:].type` or `.metadata.annotations['workspace\\.jupyter\\.org/created-by']`. This module parses
such an expression once into steps and evaluates it against plain dicts; the full JSONPath language (recursive
descent, unions, arithmetic) is not needed by any column the server knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Filter:
    path: tuple[str, ...]
    value: str


_Step = _Field | _Index | _Slice | _Wildcard | _Filter

_FILTER = re.compile(r"""\?\(@((?:\.[A-Za-z0-9_\-]+)+)\s*==\s*(?:'([^']*)'|"([^"]*)")\)""")


class JsonPathError(ValueError):
    """The expression is outside the supported subset."""


@lru_cache(maxsize=512)
def compile_path(expression: str) -> tuple[_Step, ...]:
    """Parse `expression` (with or without the `{...}` template braces) into evaluation steps."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == ".":
            j = i + 1
            while j < len(text) and text[j] not in ".[":
                j += 1
            name = text[i + 1 : j]
            if not name:
                raise JsonPathError(f"empty field name in {expression!r}")
            steps.append(_Wildcard() if name == "*" else _Field(name))
            i = j
        elif char == "[":
            j = _closing_bracket(text, i, expression)
            steps.append(_bracket(text[i + 1 : j], expression))
            i = j + 1
        else:
            raise JsonPathError(f"unexpected {char!r} in {expression!r}")
    return tuple(steps)


def _closing_bracket(text: str, start: int, expression: str) -> int:
    quote = ""
    depth = 0
    for j in range(start, len(text)):
        char = text[j]
        if quote:
            if char == "\\":
                continue
            if char == quote and text[j - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JsonPathError(f"unclosed bracket in {expression!r}")


def _bracket(inner: str, expression: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _Wildcard()
    if inner[:1] in "'\"" and inner[-1:] == inner[:1]:
        return _Field(inner[1:-1].replace("\\.", "."))
    match = _FILTER.fullmatch(inner)
    if match:
        path = tuple(match.group(1).strip(".").split("."))
        value = match.group(2) if match.group(2) is not None else match.group(3)
        return _Filter(path, value)
    if ":" in inner:
        start, _, stop = inner.partition(":")
        try:
            return _Slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
        except ValueError as exc:
            raise JsonPathError(f"bad slice [{inner}] in {expression!r}") from exc
    try:
        return _Index(int(inner))
    except ValueError as exc:
        raise JsonPathError(f"unsupported [{inner}] in {expression!r}") from exc


def find_all(obj: Any, expression: str) -> list[Any]:
    """Every value `expression` selects in `obj` (an empty list when nothing matches)."""
    current = [obj]
    for step in compile_path(expression):
        nxt: list[Any] = []
        for value in current:
            _apply(step, value, nxt)
        current = nxt
        if not current:
            break
    return current


def find_first(obj: Any, expression: str, default: Any = None) -> Any:
    """The first value `expression` selects, or `default`."""
    found = find_all(obj, expression)
    return found[0] if found else default


def _apply(step: _Step, value: Any, out: list[Any]) -> None:
    if isinstance(step, _Field):
        if isinstance(value, dict):
            got = value.get(step.name, _MISSING)
            if got is not _MISSING:
                out.append(got)
    elif isinstance(step, _Index):
        if isinstance(value, list) and -len(value) <= step.index < len(value):
            out.append(value[step.index])
    elif isinstance(step, _Slice):
        if isinstance(value, list):
            out.extend(value[step.start : step.stop])
    elif isinstance(step, _Wildcard):
        if isinstance(value, list):
            out.extend(value)
        elif isinstance(value, dict):
            out.extend(value.values())
    elif isinstance(value, list):
        for item in value:
            probe: Any = item
            for name in step.path:
                probe = probe.get(name, _MISSING) if isinstance(probe, dict) else _MISSING
            if probe is not _MISSING and str(probe) == step.value:
                out.append(item)


def field_path(expression: str) -> tuple[str, ...]:
    """The plain field names of a dotted path such as `.spec.replicas` (scale subresource paths).

    Raises `JsonPathError` for anything but plain fields, since such paths must be writable.
    """
    names: list[str] = []
    for step in compile_path(expression):
        if not isinstance(step, _Field):
            raise JsonPathError(f"{expression!r} is not a plain field path")
        names.append(step.name)
    return tuple(names)
