"""Discovery documents, built from the kind registry: `/version`, `/api`, `/apis`, per group-version resource lists,
and the aggregated form (`apidiscovery.k8s.io/v2`) that kubectl 1.26+ asks for first.

Extra subresources (pod logs, proxies, port-forward) are declared by whoever serves them (`Subresource`), so
discovery never advertises a path the server does not answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .kinds import Kind, KindRegistry

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "hyperdesk-demo",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class Subresource:
    """A subresource served in addition to `status` and `scale`."""

    group: str
    plural: str
    name: str  # e.g. "log", "proxy", "portforward"
    verbs: tuple[str, ...]
    response_kind: str  # kind of the response ("Pod" for log, proxy and portforward, as the real server says)


def _status_verbs() -> list[str]:
    return ["get", "patch", "update"]


def _subresources(kind: Kind, extra: tuple[Subresource, ...]) -> list[tuple[str, str, str, str, list[str]]]:
    """(name, group, version, kind, verbs) of each subresource of `kind`; group/version empty means the kind's."""
    found = []
    if kind.status_subresource:
        found.append(("status", "", "", kind.kind, _status_verbs()))
    if kind.scale is not None:
        found.append(("scale", "autoscaling", "v1", "Scale", _status_verbs()))
    for sub in extra:
        if sub.group == kind.group and sub.plural == kind.plural:
            found.append((sub.name, "", "", sub.response_kind, list(sub.verbs)))
    return found


def _storage_hash(kind: Kind) -> str:
    digest = hashlib.sha256(f"{kind.group}/{kind.storage_version}/{kind.kind}".encode()).digest()
    return digest[:8].hex()


def resource_list(registry: KindRegistry, group: str, version: str, extra: tuple[Subresource, ...]) -> dict[str, Any]:
    """The APIResourceList of `/api/v1` or `/apis/<group>/<version>`."""
    resources = []
    for kind in registry.kinds_in(group, version):
        entry: dict[str, Any] = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": list(kind.verbs),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        entry["storageVersionHash"] = _storage_hash(kind)
        resources.append(entry)
        for name, sub_group, sub_version, sub_kind, verbs in _subresources(kind, extra):
            sub: dict[str, Any] = {"name": f"{kind.plural}/{name}", "singularName": "", "namespaced": kind.namespaced}
            if sub_group:
                sub["group"] = sub_group
                sub["version"] = sub_version
            sub["kind"] = sub_kind
            sub["verbs"] = verbs
            resources.append(sub)
    body: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}" if group else version}
    if group:
        body["apiVersion"] = "v1"
    body["resources"] = resources
    return body


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group(registry: KindRegistry, group: str) -> dict[str, Any]:
    versions = registry.group_versions(group)
    return {
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def group_list(registry: KindRegistry) -> dict[str, Any]:
    groups = [api_group(registry, g) for g in registry.groups() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def aggregated(registry: KindRegistry, *, core: bool, extra: tuple[Subresource, ...]) -> dict[str, Any]:
    """The aggregated discovery document of `/api` (core) or `/apis` (every named group)."""
    items = []
    for group, kinds in registry.groups().items():
        if bool(group) == core:
            continue
        versions = []
        for version in registry.group_versions(group):
            resources = []
            for kind in kinds:
                if kind.version(version) is None:
                    continue
                entry: dict[str, Any] = {
                    "resource": kind.plural,
                    "responseKind": {"group": group, "version": version, "kind": kind.kind},
                    "scope": "Namespaced" if kind.namespaced else "Cluster",
                    "singularResource": kind.singular,
                    "verbs": list(kind.verbs),
                }
                if kind.short_names:
                    entry["shortNames"] = list(kind.short_names)
                if kind.categories:
                    entry["categories"] = list(kind.categories)
                subresources = []
                for name, sub_group, sub_version, sub_kind, verbs in _subresources(kind, extra):
                    subresources.append(
                        {
                            "subresource": name,
                            "responseKind": {
                                "group": sub_group or group,
                                "version": sub_version or version,
                                "kind": sub_kind,
                            },
                            "verbs": verbs,
                        }
                    )
                if subresources:
                    entry["subresources"] = subresources
                resources.append(entry)
            versions.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
