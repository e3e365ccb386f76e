"""GPUs: the device plugin's assignment of GPUs and MIG slices to pods, and a dcgm-exporter per GPU node.

The inventory of a node comes from its labels, as the GPU operator's feature discovery writes them
(`nvidia.com/gpu.count`, `nvidia.com/gpu.product`, `nvidia.com/gpu.memory`, `nvidia.com/mig.config`). Each GPU node
runs a `nvidia-dcgm-exporter-*` pod in namespace `gpu-operator`; its port 9400 answers `GET /metrics`, reached
through the API server's `pods/proxy`, with the Prometheus text that dcgm-exporter prints: the default fields, the
labels `gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`, `GPU_I_PROFILE`/`GPU_I_ID` on MIG instances,
and `container`/`namespace`/`pod` for the pod holding each device; `err_code`/`err_msg` on
`DCGM_FI_DEV_XID_ERRORS` (dcgm-exporter >= 3.3.6). MIG instances carry their parent GPU's `UUID`.

Two knobs for tests and demos: a node labelled `nvidia.com/gpu.deploy.dcgm-exporter=false` (the GPU operator's
own switch) gets no exporter, and the node annotation `demo.hyperdesk.dev/dcgm-labels` picks the exporter
generation's label names: `old` (`Hostname`, `pod_name`/`pod_namespace`/`container_name`), `current` (the default:
`Hostname`, `pod`/`namespace`/`container`) or `new` (`hostname`, `pod`/`namespace`/`container`). Under the single
MIG strategy (`nvidia.com/mig.strategy=single`) every slice is advertised as `nvidia.com/gpu`. Values follow what the pods do (see
`World.activity`): near 100% for a training step loop, 0% for a notebook that holds a GPU and computes nothing.
As on real hardware, `DCGM_FI_DEV_GPU_UTIL` reads 0 on MIG instances; `DCGM_FI_PROF_GR_ENGINE_ACTIVE` carries
their activity.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import Controller, World
from .clock import smooth_noise
from .objects import GPU, MIG_PREFIX

NAMESPACE = "gpu-operator"
EXPORTER = "nvidia-dcgm-exporter"
EXPORTER_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04"
PORT = 9400
DRIVER_VERSION = "550.127.05"
LABEL_STYLE_ANNOTATION = "demo.hyperdesk.dev/dcgm-labels"
NO_EXPORTER_LABEL = "nvidia.com/gpu.deploy.dcgm-exporter"

# Instances per GPU of the `all-<profile>` MIG configurations, and the GPU instance IDs each profile gets.
_ALL_COUNTS = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1, "1g.5gb": 7,
               "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1}
_FIRST_GI_ID = {"1g": 7, "2g": 3, "3g": 1, "4g": 5, "7g": 0}
_PCI_P5 = ("53", "64", "75", "86", "97", "A8", "B9", "CA")


def mig_layout(config: str) -> list[tuple[str, int]]:
    """MIG instances per GPU for a `nvidia.com/mig.config` name: [(profile, count)]; empty when MIG is off."""
    if not config or config == "all-disabled":
        return []
    if config.startswith("all-"):
        profile = config[4:]
        return [(profile, _ALL_COUNTS.get(profile, 1))]
    if config.startswith("mixed-"):
        parts = config[6:].split("-")
        return [(parts[i + 1], int(parts[i])) for i in range(0, len(parts) - 1, 2)]
    return []


def profile_memory_mib(profile: str) -> int:
    match = re.search(r"(\d+)gb$", profile)
    return int(match.group(1)) * 1024 - 256 if match else 0


@dataclass
class Device:
    """One GPU, or one MIG GPU instance."""

    node: str
    gpu: int
    uuid: str
    pci_bus_id: str
    model: str
    memory_mib: int
    resource: str  # nvidia.com/gpu or nvidia.com/mig-<profile>
    profile: str = ""
    instance_id: int | None = None
    holder: tuple[str, str, str] | None = None  # (namespace, pod, container)

    @property
    def key(self) -> str:
        return f"{self.node}/{self.gpu}/{self.profile}/{self.instance_id}"


@dataclass
class NodeGpus:
    node: str
    model: str
    count: int
    devices: list[Device] = field(default_factory=list)
    xid: dict[int, int] = field(default_factory=dict)  # gpu index -> last XID error
    label_style: str = "current"  # see LABEL_STYLE_ANNOTATION


def _uuid(node: str, index: int) -> str:
    """The GPU's UUID. dcgm-exporter labels a MIG instance's series with its parent GPU's UUID (and GPU_I_ID)."""
    digest = hashlib.sha1(f"{node}/{index}//None".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def node_inventory(node: dict[str, Any]) -> NodeGpus | None:
    """The GPUs (and MIG instances) a node has, from its GPU feature discovery labels."""
    labels = node["metadata"].get("labels") or {}
    count = int(labels.get("nvidia.com/gpu.count", "0") or 0)
    if not count:
        return None
    name = node["metadata"]["name"]
    model = labels.get("nvidia.com/gpu.product", "NVIDIA GPU").split("-MIG-")[0].replace("-", " ")
    memory = int(labels.get("nvidia.com/gpu.memory", "0") or 0)
    strategy = labels.get("nvidia.com/mig.strategy", "")
    layout = mig_layout(labels.get("nvidia.com/mig.config", "")) if strategy in ("single", "mixed") else []
    styles = {"old", "current", "new"}
    style = (node["metadata"].get("annotations") or {}).get(LABEL_STYLE_ANNOTATION, "current")
    inventory = NodeGpus(name, model, count, label_style=style if style in styles else "current")
    for index in range(count):
        pci = f"00000000:{_PCI_P5[index]}:00.0" if count == 8 else f"00000000:00:{0x1B + index:02X}.0"
        if not layout:
            inventory.devices.append(Device(name, index, _uuid(name, index), pci, model, memory, GPU))
            continue
        for profile, instances in layout:
            first = _FIRST_GI_ID.get(profile.split(".")[0], 1)
            for n in range(instances):
                instance_id = first + n
                inventory.devices.append(
                    Device(name, index, _uuid(name, index), pci, model,
                           profile_memory_mib(profile), GPU if strategy == "single" else MIG_PREFIX + profile,
                           profile, instance_id)
                )
    return inventory


class DeviceAllocator:
    """The device plugin: which pod holds which GPU or MIG instance (lowest free device first)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeGpus] = {}
        self._held: dict[tuple[str, str], list[Device]] = {}

    def sync_node(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if name in self.nodes:
            return
        inventory = node_inventory(node)
        if inventory is not None:
            self.nodes[name] = inventory

    def allocate(self, node: str, pod: tuple[str, str], container: str, wanted: dict[str, int]) -> bool:
        inventory = self.nodes.get(node)
        if inventory is None:
            return not wanted
        chosen: list[Device] = []
        for resource, count in sorted(wanted.items()):
            free = [d for d in inventory.devices if d.resource == resource and d.holder is None and d not in chosen]
            if len(free) < count:
                return False
            chosen.extend(free[:count])
        for device in chosen:
            device.holder = (pod[0], pod[1], container)
        self._held.setdefault(pod, []).extend(chosen)
        return True

    def release(self, pod: tuple[str, str]) -> None:
        for device in self._held.pop(pod, []):
            device.holder = None

    def holders(self) -> set[tuple[str, str]]:
        return set(self._held)

    def held_by(self, pod: tuple[str, str]) -> list[Device]:
        return list(self._held.get(pod, []))


# --- metric values ---------------------------------------------------------------------------------------------------

_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Ratio of cycles the device memory interface is active sending or receiving data."),
)

# (utilisation %, graphics engine, tensor, dram, memory fraction used) by what the holder does
_ACTIVITY = {
    "train": (96.0, 0.94, 0.55, 0.64, 0.93),
    "serve": (42.0, 0.45, 0.28, 0.35, 0.88),
    "load": (9.0, 0.08, 0.01, 0.05, 0.45),
    "idle": (0.0, 0.0, 0.0, 0.0, 0.22),
    None: (0.0, 0.0, 0.0, 0.0, 0.0),
}
_POWER = {"H100": (72.0, 690.0), "A10G": (24.0, 148.0)}


def device_values(device: Device, activity: str | None, seed: int, t: float, xid: int = 0) -> dict[str, float]:
    """Every field's value for one device, doing `activity`, at simulated second `t`."""
    util, gr, tensor, dram, memory = _ACTIVITY.get(activity, _ACTIVITY[None])
    wobble = smooth_noise(seed, device.key, t, period=7.0) - 0.5  # -0.5 .. 0.5
    if activity == "train":
        util = min(100.0, util + wobble * 8)
        gr = min(0.99, gr + wobble * 0.08)
    elif activity == "serve":
        util = max(3.0, util + wobble * 50)
        gr = max(0.03, gr + wobble * 0.5)
    elif activity == "load":
        util = max(0.0, util + wobble * 10)
    elif activity == "idle":
        util, gr = 0.0, max(0.0, 0.004 + wobble * 0.008)
    busy = gr
    idle_w, max_w = next((v for k, v in _POWER.items() if k in device.model), (50.0, 300.0))
    share = (device.memory_mib / 81559) if device.profile else 1.0
    used = int(device.memory_mib * memory * (1 + wobble * 0.02)) if activity else 0
    temp = 31 + 40 * busy + wobble * 2
    values = {
        "DCGM_FI_DEV_SM_CLOCK": 1980 if busy > 0.05 else 345,
        "DCGM_FI_DEV_MEM_CLOCK": 2619 if "H100" in device.model else 6251,
        "DCGM_FI_DEV_GPU_TEMP": round(temp),
        "DCGM_FI_DEV_POWER_USAGE": round((idle_w + (max_w - idle_w) * busy) * share, 3),
        "DCGM_FI_DEV_GPU_UTIL": 0 if device.profile else round(util),
        "DCGM_FI_DEV_MEM_COPY_UTIL": 0 if device.profile else round(util * dram * 0.7),
        "DCGM_FI_DEV_XID_ERRORS": xid,
        "DCGM_FI_DEV_FB_FREE": device.memory_mib - used,
        "DCGM_FI_DEV_FB_USED": used,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": round(gr, 6),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": round(tensor * (1 + wobble * 0.1), 6),
        "DCGM_FI_PROF_DRAM_ACTIVE": round(dram * (1 + wobble * 0.1), 6),
    }
    return values


XID_MESSAGES = {0: "No Error", 13: "Graphics Engine Exception", 31: "GPU memory page fault",
                48: "Double Bit ECC Error", 79: "GPU has fallen off the bus"}
"""err_msg of the XID errors the scenarios raise (dcgm-exporter >= 3.3.6 labels DCGM_FI_DEV_XID_ERRORS with them)."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(inventory: NodeGpus, activity: dict[tuple[str, str], str], seed: int, t: float) -> str:
    """The dcgm-exporter text of one node."""
    series: list[tuple[dict[str, str], dict[str, float]]] = []
    for device in inventory.devices:
        labels = {
            "gpu": str(device.gpu),
            "UUID": device.uuid,
            "pci_bus_id": device.pci_bus_id,
            "device": f"nvidia{device.gpu}",
            "modelName": device.model,
        }
        if device.profile:
            labels["GPU_I_PROFILE"] = device.profile
            labels["GPU_I_ID"] = str(device.instance_id)
        labels["hostname" if inventory.label_style == "new" else "Hostname"] = inventory.node
        labels["DCGM_FI_DRIVER_VERSION"] = DRIVER_VERSION
        namespace, pod, container = device.holder or ("", "", "")
        if inventory.label_style == "old":
            labels.update({"container_name": container, "pod_namespace": namespace, "pod_name": pod})
        else:
            labels.update({"container": container, "namespace": namespace, "pod": pod})
        state = activity.get((namespace, pod)) if device.holder else None
        series.append((labels, device_values(device, state, seed, t, inventory.xid.get(device.gpu, 0))))
    lines: list[str] = []
    for name, type_, help_text in _FIELDS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {type_}")
        for labels, values in series:
            if name == "DCGM_FI_DEV_XID_ERRORS" and inventory.label_style != "old":
                code = int(values[name])
                labels = {**labels, "err_code": str(code), "err_msg": XID_MESSAGES.get(code, "Unknown Error")}
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{rendered}}} {values[name]}")
    return "\n".join(lines) + "\n"


class DcgmExporters(Controller):
    """The dcgm-exporter DaemonSet: one pod per GPU node, each serving its node's metrics on port 9400."""

    name = "dcgm-exporter"
    watches = frozenset({("", "Node"), ("", "Pod")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._served: dict[str, str] = {}  # pod name -> node

    def reconcile(self) -> None:
        world = self.world
        assert world.devices is not None
        nodes = {n["metadata"]["name"]: n for n in self.cache.all("v1", "Node")}
        pods = {
            (p.get("spec") or {}).get("nodeName"): p
            for p in self.cache.all("v1", "Pod", NAMESPACE)
            if (p["metadata"].get("labels") or {}).get("app") == EXPORTER
        }
        for name, node in nodes.items():
            world.devices.sync_node(node)
            if name not in world.devices.nodes:
                continue
            if (node["metadata"].get("labels") or {}).get(NO_EXPORTER_LABEL) == "false":
                continue
            pod = pods.get(name)
            if pod is None:
                if world.cache.get("v1", "Namespace", NAMESPACE) is None:
                    world.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                pod = world.create(self._pod(node))
                if pod is None:
                    continue
                self._startup_log(pod, name)
            pod_name = pod["metadata"]["name"]
            if self._served.get(pod_name) != name:
                world.proxies.register_pod(NAMESPACE, pod_name, PORT, self._handler(name))
                self._served[pod_name] = name

    def _startup_log(self, pod: dict[str, Any], node: str) -> None:
        stamp = self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        inventory = self.world.devices.nodes[node] if self.world.devices else None
        mig = inventory is not None and any(d.profile for d in inventory.devices)
        lines = [
            f'time="{stamp}" level=info msg="Starting dcgm-exporter" Version=3.3.9-3.6.1',
            f'time="{stamp}" level=info msg="DCGM successfully initialized!"',
            f'time="{stamp}" level=info msg="Collecting DCP Metrics"',
            f'time="{stamp}" level=info msg="Initializing system entities of type: GPU"',
        ]
        if mig:
            lines.append(f'time="{stamp}" level=info msg="Initializing system entities of type: MIG instance"')
        lines += [
            f'time="{stamp}" level=info msg="Kubernetes metrics collection enabled!"',
            f'time="{stamp}" level=info msg="Starting webserver"',
            f'time="{stamp}" level=info msg="Listening on" address="[::]:{PORT}"',
        ]
        self.world.logs.write(NAMESPACE, pod["metadata"]["name"], EXPORTER, lines, at=self.world.clock.now())

    def _pod(self, node: dict[str, Any]) -> dict[str, Any]:
        name = node["metadata"]["name"]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{EXPORTER}-{self.world.rng.suffix()}",
                "namespace": NAMESPACE,
                "labels": {"app": EXPORTER, "app.kubernetes.io/name": "dcgm-exporter", "controller-revision-hash": "7c9b5d6f8d",
                           "pod-template-generation": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": EXPORTER,
                                     "uid": "5f0c8a52-6c1d-4c55-9a53-3d6a1b7f0e21", "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": {
                "nodeName": name,
                "priorityClassName": "system-node-critical",
                "serviceAccountName": EXPORTER,
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {
                        "name": EXPORTER,
                        "image": EXPORTER_IMAGE,
                        "args": ["-f", "/etc/dcgm-exporter/dcp-metrics-included.csv"],
                        "env": [{"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
                                {"name": "DCGM_EXPORTER_LISTEN", "value": f":{PORT}"},
                                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "ports": [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ],
            },
        }

    def _handler(self, node: str) -> Any:
        world = self.world

        async def metrics(request: web.Request, path: str) -> web.StreamResponse:
            if not path.startswith("/metrics"):
                return web.Response(status=404, text="404 page not found\n")
            inventory = world.devices.nodes.get(node) if world.devices else None
            if inventory is None:
                return web.Response(status=503, text="no GPUs\n")
            body = exposition(inventory, world.activity, world.seed, world.clock.elapsed)
            return web.Response(body=body.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

        return metrics
