"""What the server serves: kinds, their versions, scope, printer columns, subresources and schemas.

A `Kind` is the server's whole knowledge of one resource type; the `KindRegistry` answers the lookups that routing,
discovery, OpenAPI and the store need. Kinds come from two places: the compact catalogue the project writes
(`catalog.py`) and `apiextensions.k8s.io/v1` CustomResourceDefinitions created at runtime (`crds.py`), which add
a kind or refine a catalogued one (for instance with the upstream openAPIV3Schema that enables validation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

CellFunction = Callable[[dict[str, Any]], Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """One column of server-side printing (`kubectl get`): a JSONPath for CRDs, a function for built-in kinds."""

    name: str
    type: str = "string"  # string | integer | number | boolean | date
    json_path: str = ""
    cell: CellFunction | None = None
    format: str = ""
    description: str = ""
    priority: int = 0  # 0: always shown; 1: only with `-o wide`


@dataclass(frozen=True)
class ScaleSpec:
    """Where a kind keeps the fields its `scale` subresource exposes."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str = ""


@dataclass(frozen=True)
class KindVersion:
    name: str
    served: bool = True
    storage: bool = False
    schema: dict[str, Any] | None = None  # openAPIV3Schema, when one is loaded
    columns: tuple[PrinterColumn, ...] = ()


@dataclass(frozen=True)
class Kind:
    """A resource type. `group` is "" for the core (`/api/v1`) group."""

    group: str
    kind: str
    plural: str
    versions: tuple[KindVersion, ...]
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    # Field selector labels beyond metadata.name / metadata.namespace, mapped to the JSONPath they read.
    field_labels: tuple[tuple[str, str], ...] = ()
    # Whether metadata.generation is kept (true for CRs and workload controllers, false for pods, configmaps...).
    tracks_generation: bool = True
    # "subdomain" (DNS-1123 subdomain, most kinds) or "label" (DNS-1123 label: namespaces, services).
    name_rule: str = "subdomain"
    builtin: bool = False  # compiled into the real server (strategic merge patch allowed) rather than a CR
    verbs: tuple[str, ...] = ALL_VERBS
    # Whether a completed DELETE answers with a Status (most built-in kinds) rather than the deleted object.
    delete_returns_status: bool = False

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        if not any(v.storage for v in self.versions):
            storage = sorted_versions([v.name for v in self.versions])[0]
            object.__setattr__(self, "versions", tuple(replace(v, storage=v.name == storage) for v in self.versions))

    @property
    def resource_key(self) -> str:
        """The store's key for this resource: `pods`, `workloads.kueue.x-k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def storage_version(self) -> str:
        return next(v.name for v in self.versions if v.storage)

    @property
    def served_versions(self) -> list[str]:
        return sorted_versions([v.name for v in self.versions if v.served])

    def version(self, name: str) -> KindVersion | None:
        for version in self.versions:
            if version.name == name and version.served:
                return version
        return None

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def columns(self, version: str) -> tuple[PrinterColumn, ...]:
        found = self.version(version)
        return found.columns if found else ()

    def schema(self, version: str) -> dict[str, Any] | None:
        found = self.version(version)
        return found.schema if found else None

    def field_label_path(self, label: str) -> str | None:
        """The JSONPath a field selector label reads, or None when the kind does not support the label."""
        if label == "metadata.name":
            return ".metadata.name"
        if label == "metadata.namespace" and self.namespaced:
            return ".metadata.namespace"
        for name, path in self.field_labels:
            if name == label:
                return path
        return None


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Sort key for Kubernetes version names: GA before beta before alpha, higher numbers first, others last."""
    match = _VERSION.match(name)
    if not match:
        return (3, 0, 0, name)
    major = int(match.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, name)


def sorted_versions(names: Iterable[str]) -> list[str]:
    """Version names in the order discovery lists them (preferred first)."""
    return sorted(names, key=version_priority)


class KindRegistry:
    """All kinds the server serves, indexed for routing, discovery and the store.

    `revision` increases on every change so that discovery and OpenAPI documents can be cached between changes.
    """

    def __init__(self, kinds: Iterable[Kind] = ()) -> None:
        self._by_resource: dict[tuple[str, str], Kind] = {}
        self._catalogue: dict[tuple[str, str], Kind] = {}
        self.revision = 0
        for kind in kinds:
            self.register(kind)
            self._catalogue[(kind.group, kind.plural)] = kind

    def register(self, kind: Kind) -> None:
        """Add `kind`, or replace the kind with the same group and plural."""
        self._by_resource[(kind.group, kind.plural)] = kind
        self.revision += 1

    def unregister(self, group: str, plural: str) -> Kind | None:
        """Forget a runtime kind; a catalogued kind falls back to its catalogue definition.

        Returns the kind still served afterwards (the catalogue one), or None if the kind is gone.
        """
        key = (group, plural)
        original = self._catalogue.get(key)
        if original is not None:
            self._by_resource[key] = original
        else:
            self._by_resource.pop(key, None)
        self.revision += 1
        return original

    def kinds(self) -> list[Kind]:
        return list(self._by_resource.values())

    def lookup(self, group: str, version: str, plural: str) -> Kind | None:
        """The kind served at `/apis/<group>/<version>/<plural>`, or None."""
        kind = self._by_resource.get((group, plural))
        if kind is None or kind.version(version) is None:
            return None
        return kind

    def lookup_any(self, group: str, plural: str) -> Kind | None:
        """The kind with this group and plural, whatever versions it serves."""
        return self._by_resource.get((group, plural))

    def by_kind(self, api_version: str, kind_name: str) -> Kind | None:
        """The kind with this `apiVersion` and `kind`, as written in an object."""
        group, _, version = api_version.rpartition("/")
        for kind in self._by_resource.values():
            if kind.group == group and kind.kind == kind_name and kind.version(version) is not None:
                return kind
        return None

    def groups(self) -> dict[str, list[Kind]]:
        """Kinds by group ("" is the core group), in registration order."""
        grouped: dict[str, list[Kind]] = {}
        for kind in self._by_resource.values():
            grouped.setdefault(kind.group, []).append(kind)
        return grouped

    def group_versions(self, group: str) -> list[str]:
        """Served versions of `group`, preferred first."""
        names = {v for kind in self._by_resource.values() if kind.group == group for v in kind.served_versions}
        return sorted_versions(names)

    def kinds_in(self, group: str, version: str) -> list[Kind]:
        return [k for k in self._by_resource.values() if k.group == group and k.version(version) is not None]
