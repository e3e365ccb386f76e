"""`hyperdesk get KIND`: the headless listing framework the panes' issues extend with their kinds.

A kind is a name, its aliases, table columns and a fetch function returning plain dicts (the same objects
`-o json` prints). Fetch functions use the same core as the panes, never a separate code path.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TextIO

import yaml

from app.cluster.kubeconfig import Kubeconfig
from app.config import Settings


class GetError(Exception):
    """A failure to report in one line, with a non-zero exit: 2 for bad usage, 1 for a runtime failure."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class GetContext:
    settings: Settings
    kubeconfig: Kubeconfig | None
    namespace: str | None
    """None: all namespaces."""


Fetch = Callable[[GetContext], "list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]"]


@dataclass(frozen=True)
class Kind:
    name: str
    fetch: Fetch
    columns: tuple[tuple[str, str], ...]
    """(header, field of the fetched dict)"""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    for name in (kind.name, *kind.aliases):
        REGISTRY[name] = kind
    return kind


def lookup(name: str) -> Kind:
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(sorted({k.name for k in REGISTRY.values()}))
        raise GetError(f'unknown kind "{name}" (known: {known})', exit_code=2) from None


def run(name: str, output: str, ctx: GetContext, out: TextIO = sys.stdout) -> None:
    kind = lookup(name)
    result = kind.fetch(ctx)
    if hasattr(result, "__await__"):
        import asyncio

        result = asyncio.run(result)  # type: ignore[arg-type]
    items: list[dict[str, Any]] = list(result)  # type: ignore[arg-type]
    if output == "json":
        json.dump(items, out, indent=2, default=str)
        out.write("\n")
    elif output == "yaml":
        yaml.safe_dump(items, out, sort_keys=False, default_flow_style=False)
    elif not items:
        scope = "" if ctx.namespace is None else f" in {ctx.namespace} namespace"
        print(f"No {kind.name} found{scope}.", file=sys.stderr)
    else:
        out.write(format_table(kind.columns, items))


def format_table(columns: tuple[tuple[str, str], ...], items: list[dict[str, Any]]) -> str:
    """kubectl's layout: upper-case headers, columns padded to the widest cell plus three spaces."""
    rows = [[header for header, _ in columns]]
    rows += [[_cell(item.get(key)) for _, key in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    if isinstance(value, bool):
        return "*" if value else ""
    return str(value)


def _contexts(ctx: GetContext) -> list[dict[str, Any]]:
    if ctx.kubeconfig is None:
        raise GetError("no kubeconfig found ($KUBECONFIG or ~/.kube/config); try `hyperdesk demo`")
    current = ctx.kubeconfig.current_context
    return [
        {"current": c.name == current, "name": c.name, "cluster": c.cluster, "user": c.user,
         "namespace": c.namespace, "server": c.server}
        for c in ctx.kubeconfig.contexts
    ]


register(Kind(
    name="contexts",
    aliases=("context", "ctx"),
    fetch=_contexts,
    columns=(("CURRENT", "current"), ("NAME", "name"), ("CLUSTER", "cluster"), ("AUTHINFO", "user"),
             ("NAMESPACE", "namespace")),
    description="the kubeconfig's contexts",
))
