"""Which of the kinds hyperdesk reads the cluster serves, and in which API version.

Panes adapt to the answer (Kueue v1beta1 or v1beta2, HyperPodPyTorchJob or only PyTorchJob, jupyter-k8s or
Kubeflow Notebooks, HyperPod inference or KServe); a kind that is absent is a state, never an error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS, ResourceKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Discovery:
    versions: dict[str, str] = field(default_factory=dict)
    """kind name -> the API version hyperdesk will use; kinds the cluster does not serve are absent."""
    failed_groups: dict[str, str] = field(default_factory=dict)
    """group/version -> why its discovery failed (an aggregated API that is down, say)."""

    def serves(self, name: str) -> bool:
        return name in self.versions

    def version(self, name: str) -> str | None:
        return self.versions.get(name)


async def discover(connection: ClusterConnection, kinds: dict[str, ResourceKind] = KINDS) -> Discovery:
    groups_doc, core_doc = await asyncio.gather(
        connection.request("GET", "/apis"), connection.request("GET", "/api/v1"))
    served_versions: dict[str, list[str]] = {"": ["v1"]}
    for group in groups_doc.get("groups") or []:
        served_versions[group.get("name", "")] = [v.get("version") for v in group.get("versions") or []]

    wanted: dict[tuple[str, str], list[ResourceKind]] = {}
    for kind in kinds.values():
        for version in kind.versions:
            if version in served_versions.get(kind.group, []):
                wanted.setdefault((kind.group, version), []).append(kind)

    async def resources(group: str, version: str) -> tuple[str, str, set[str] | str]:
        if not group:
            doc = core_doc
        else:
            try:
                doc = await connection.request("GET", f"/apis/{group}/{version}")
            except ApiError as exc:
                return group, version, str(exc)
        return group, version, {r.get("name") for r in doc.get("resources") or []}

    found = await asyncio.gather(*(resources(g, v) for g, v in wanted))
    plurals = {(g, v): names for g, v, names in found if isinstance(names, set)}
    failed = {f"{g}/{v}" if g else v: names for g, v, names in found if isinstance(names, str)}
    for where, why in failed.items():
        log.warning("discovery of %s failed: %s", where, why)

    versions: dict[str, str] = {}
    for kind in kinds.values():
        for version in kind.versions:
            if kind.plural in plurals.get((kind.group, version), ()):
                versions[kind.name] = version
                break
    return Discovery(versions, failed)
