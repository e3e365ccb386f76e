"""The GPU data model every source fills: nodes, their GPUs and MIG slices, who holds each, and live figures.

Plain dataclasses, no I/O: the allocation (from the node and pod stores), dcgm-exporter, Prometheus and NVML all
produce `Device`s, and the pane, the CLI and the benchmark read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"


def is_gpu_resource(name: str) -> bool:
    return name == GPU or name.startswith(MIG_PREFIX)


@dataclass
class Holder:
    """The pod holding a device, and the job or space it belongs to (from the pod's labels and owners)."""

    namespace: str
    pod: str
    kind: str = "Pod"
    """HyperPodPyTorchJob, PyTorchJob, Job, JobSet, Workspace, Notebook, InferenceService, ... or Pod."""
    name: str = ""

    @property
    def text(self) -> str:
        owner = f" ({self.kind} {self.name})" if self.kind != "Pod" and self.name else ""
        return f"{self.namespace}/{self.pod}{owner}"


@dataclass
class Device:
    """One whole GPU, or one MIG slice of a GPU."""

    node: str
    gpu: int | None
    """The GPU's index on its node; None where only the allocation is known (no exporter)."""
    uuid: str | None = None
    model: str = ""
    mig_profile: str | None = None
    gi_id: int | None = None
    """The MIG GPU instance id."""
    util_percent: float | None = None
    """Activity: DCGM_FI_DEV_GPU_UTIL on whole GPUs, DCGM_FI_PROF_GR_ENGINE_ACTIVE x 100 on MIG slices."""
    mem_used_mib: float | None = None
    mem_total_mib: float | None = None
    power_w: float | None = None
    temp_c: float | None = None
    xid: int | None = None
    holder: Holder | None = None
    sharers: tuple[Holder, ...] = ()
    """The other pods on a time-sliced (shared) GPU, besides `holder`."""
    idle_seconds: float | None = None
    """How long this device has been held and under the idle threshold; None while busy or free."""
    history: tuple[float, ...] = ()
    """The last activity readings, oldest first (for the sparkline)."""
    slot: int | None = None
    """Without an exporter: the n-th device of its resource on the node (the key of the row)."""

    @property
    def key(self) -> str:
        index = "?" if self.gpu is None else str(self.gpu)
        if self.gpu is None:
            return f"{self.node}/?/{self.mig_profile or 'gpu'}/{self.slot}"
        if self.mig_profile:
            return f"{self.node}/{index}/{self.mig_profile}/{self.gi_id}"
        return f"{self.node}/{index}"

    def as_dict(self) -> dict[str, Any]:
        """One GPU or MIG slice as `hyperdesk get gpus -o json` prints it."""
        holder = self.holder
        return {
            "node": self.node,
            "gpu": self.gpu,
            "uuid": self.uuid,
            "model": self.model,
            "mig_profile": self.mig_profile,
            "gpu_instance_id": self.gi_id,
            "util_percent": _round(self.util_percent),
            "mem_used_mib": _round(self.mem_used_mib),
            "mem_total_mib": _round(self.mem_total_mib),
            "power_w": _round(self.power_w),
            "temp_c": _round(self.temp_c),
            "xid": self.xid,
            "namespace": holder.namespace if holder else None,
            "pod": holder.pod if holder else None,
            "holder_kind": holder.kind if holder else None,
            "holder_name": (holder.name or holder.pod) if holder else None,
            "shared_with": [f"{h.namespace}/{h.pod}" for h in self.sharers],
            "idle_seconds": _round(self.idle_seconds),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class NodeGpus:
    """A GPU node: its inventory from the GPU operator's labels, its allocation, its health, its exporter."""

    name: str
    product: str = ""
    gpu_count: int = 0
    gpu_memory_mib: int = 0
    instance_type: str = ""
    mig_strategy: str = ""
    """"", "none", "single" or "mixed"."""
    mig_config: str = ""
    mig_config_state: str = ""
    health: str = ""
    """HyperPod's node-health-status (Schedulable, Unschedulable, UnschedulablePendingReplacement...)."""
    deep_health: str = ""
    fault: str = ""
    unschedulable: bool = False
    ready: bool = True
    capacity: dict[str, int] = field(default_factory=dict)
    allocatable: dict[str, int] = field(default_factory=dict)
    allocated: dict[str, int] = field(default_factory=dict)
    """Resource -> the sum of the requests of the pods bound here that still run."""
    claims: list[tuple[Holder, dict[str, int]]] = field(default_factory=list)
    """(holder, {resource: count}) of each pod holding GPUs here."""
    exporter: str | None = None
    """namespace/name of the node's dcgm-exporter pod; None when it has none."""
    metrics_state: str = "pending"
    """"ok", "no-exporter", "forbidden", "error", "stale" (the last good devices kept) or "pending"."""
    metrics_error: str = ""
    stale_seconds: float | None = None
    """With "stale": the age of the devices shown."""
    devices: list[Device] = field(default_factory=list)

    @property
    def badges(self) -> list[str]:
        """What is wrong with the node, in words (empty when healthy)."""
        out: list[str] = []
        if self.health and self.health != "Schedulable":
            out.append(self.health)
        elif self.unschedulable:
            out.append("Cordoned")
        if self.deep_health == "Failed":
            out.append("DeepHealthCheckFailed")
        elif self.deep_health == "InProgress":
            out.append("DeepHealthCheckInProgress")
        if self.fault:
            out.append(self.fault)
        if not self.ready:
            out.append("NotReady")
        if self.mig_config_state and self.mig_config_state != "success":
            out.append(f"MIG {self.mig_config_state}")
        return out

    @property
    def profiles(self) -> list[str]:
        return sorted(r[len(MIG_PREFIX):] for r in self.capacity if r.startswith(MIG_PREFIX) and self.capacity[r])

    @property
    def single_profile(self) -> str | None:
        """Under the single MIG strategy, every `nvidia.com/gpu` is a slice of this profile."""
        if self.mig_strategy != "single":
            return None
        marker = "-MIG-"
        return self.product.split(marker, 1)[1] if marker in self.product else None

    @property
    def model(self) -> str:
        return self.product.split("-MIG-", 1)[0]
