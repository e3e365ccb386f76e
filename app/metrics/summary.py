"""The cluster summary: GPUs and MIG slices by product and profile — capacity, allocated, in use, idle but held."""

from __future__ import annotations

from dataclasses import dataclass

from app.metrics.model import GPU, NodeGpus


@dataclass
class SummaryRow:
    product: str
    profile: str | None
    """The MIG profile; None for whole GPUs."""
    capacity: int = 0
    allocated: int = 0
    in_use: int = 0
    """Devices active above the idle threshold."""
    idle_held: int = 0
    """Allocated devices at or under the threshold."""
    unmeasured: int = 0
    """Devices without live figures (no exporter, forbidden, not scraped yet)."""

    @property
    def key(self) -> str:
        return f"{self.product}/{self.profile or 'gpu'}"


def summarize(nodes: list[NodeGpus], threshold_percent: float) -> list[SummaryRow]:
    rows: dict[tuple[str, str | None], SummaryRow] = {}
    for node in nodes:
        model = node.model.replace("-", " ") or "unknown GPU"
        for resource, total in node.capacity.items():
            if not total:
                continue
            profile = node.single_profile if resource == GPU else resource.rpartition("mig-")[2]
            row = rows.setdefault((model, profile), SummaryRow(model, profile))
            row.capacity += total
            row.allocated += node.allocated.get(resource, 0)
        for device in node.devices:
            row = rows.setdefault((model, device.mig_profile), SummaryRow(model, device.mig_profile))
            if device.util_percent is None:
                row.unmeasured += 1
            elif device.util_percent > threshold_percent:
                row.in_use += 1
            elif device.holder is not None:
                row.idle_held += 1
    return sorted(rows.values(), key=lambda r: (r.product, r.profile is not None, r.profile or ""))
