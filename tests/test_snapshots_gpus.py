"""Snapshots of the GPUs pane from fixed plain data: the cluster summary, a node's MIG slices, the waste view.

The pane against the simulated cluster is covered by tests/test_gpus_pane.py; these pin the layout.
"""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from app.metrics.collector import GpuView
from app.metrics.model import Device, Holder, NodeGpus
from app.screens.gpus import GpusPane
from themes import BUILTIN, STYLESHEET

H100 = "NVIDIA H100 80GB HBM3"
RAMP = tuple(float(v) for v in (12, 40, 75, 92, 95, 97, 94, 96, 98, 95, 93, 96))
FLAT = (0.0,) * 12


def train(node: str, gpu: int, util: float) -> Device:
    return Device(node, gpu, f"GPU-{gpu:08x}-0000-0000-0000-{node[-4:]}", H100, util_percent=util,
                  mem_used_mib=74_000 + gpu * 100, mem_total_mib=81559, power_w=640 + gpu, temp_c=68, xid=0,
                  holder=Holder("hyperpod-ns-research", f"llama3-70b-pretrain-pod-{gpu // 8}", "HyperPodPyTorchJob",
                                "llama3-70b-pretrain"), history=RAMP)


def view() -> GpuView:
    training = NodeGpus("hyperpod-i-0a1b2c3d4e5f60718", "NVIDIA-H100-80GB-HBM3", 8, 81559, "ml.p5.48xlarge",
                        health="Schedulable", capacity={"nvidia.com/gpu": 8}, allocatable={"nvidia.com/gpu": 8},
                        allocated={"nvidia.com/gpu": 8}, metrics_state="ok",
                        devices=[train("hyperpod-i-0a1b2c3d4e5f60718", g, 94 + g % 4) for g in range(8)])
    mig_name = "hyperpod-i-0b2c3d4e5f6071829"
    slices = []
    for gpu in range(2):
        for profile, gi, memory in (("3g.40gb", 1, 40704), ("2g.20gb", 3, 20224), ("1g.10gb", 7, 9984),
                                    ("1g.10gb", 8, 9984)):
            holder, util, history = None, 0.0, FLAT
            if gpu == 0 and profile == "3g.40gb":
                holder, util, history = Holder("hyperpod-ns-research", "whisper-distill-trainer-0-x1", "JobSet",
                                               "whisper-distill"), 91.8, RAMP
            if gpu == 0 and profile == "2g.20gb":
                holder, util = Holder("hyperpod-ns-vision", "workspace-bob-mig-lab-7c9d-x2", "Workspace",
                                      "bob-mig-lab"), 0.3
            slices.append(Device(mig_name, gpu, f"GPU-{gpu:08x}-0000-0000-0000-000000000000", H100, profile, gi,
                                 util_percent=util, mem_used_mib=memory * 0.6 if holder else 0,
                                 mem_total_mib=memory, power_w=120 if holder else 9, temp_c=45 if holder else 31,
                                 xid=0, holder=holder, history=history,
                                 idle_seconds=1260.0 if holder and util < 5 else None))
    mig = NodeGpus(mig_name, "NVIDIA-H100-80GB-HBM3", 2, 81559, "ml.p5.48xlarge", mig_strategy="mixed",
                   mig_config="mixed-2-1g.10gb-1-2g.20gb-1-3g.40gb", mig_config_state="success",
                   health="Schedulable",
                   capacity={"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 4, "nvidia.com/mig-2g.20gb": 2,
                             "nvidia.com/mig-3g.40gb": 2},
                   allocated={"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1}, metrics_state="ok",
                   devices=slices)
    dev_name = "hyperpod-i-0c3d4e5f607182930"
    notebook = Holder("hyperpod-ns-nlp", "workspace-alice-notebook-5hqj-qftth", "Workspace", "alice-notebook")
    serving = Holder("hyperpod-ns-nlp", "llama3-8b-instruct-gdk75-l5hpl", "Deployment", "llama3-8b-instruct")
    dev = NodeGpus(dev_name, "NVIDIA-A10G", 2, 23028, "ml.g5.12xlarge", health="Schedulable",
                   capacity={"nvidia.com/gpu": 2}, allocated={"nvidia.com/gpu": 2}, metrics_state="ok", devices=[
                       Device(dev_name, 0, "GPU-a10g0000-0000-0000-0000-000000000000", "NVIDIA A10G", util_percent=0.0,
                              mem_used_mib=5037, mem_total_mib=23028, power_w=24, temp_c=30, xid=0, holder=notebook,
                              history=FLAT, idle_seconds=2520.0),
                       Device(dev_name, 1, "GPU-a10g0001-0000-0000-0000-000000000000", "NVIDIA A10G",
                              util_percent=44.0, mem_used_mib=20265, mem_total_mib=23028, power_w=88, temp_c=51, xid=0,
                              holder=serving, history=(30.0, 52.0, 41.0, 60.0, 38.0, 44.0)),
                   ])
    broken_name = "hyperpod-i-0d4e5f60718293a41"
    broken = NodeGpus(broken_name, "NVIDIA-H100-80GB-HBM3", 8, 81559, "ml.p5.48xlarge",
                      health="UnschedulablePendingReplacement", deep_health="Failed", fault="XID79-GPUFallenOffBus",
                      unschedulable=True, capacity={"nvidia.com/gpu": 8}, metrics_state="no-exporter",
                      devices=[Device(broken_name, None, None, H100, slot=i) for i in range(8)])
    return GpuView(nodes=[training, mig, dev, broken], exporters=3, scraped_at=0.0)


class GpusApp(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self, expand: set[str] | None = None) -> None:
        """`expand`: the only nodes shown expanded (None: the default, all of them in a small cluster)."""
        super().__init__()
        self.register_theme(BUILTIN["hyperdesk-dark"])
        self.theme = "hyperdesk-dark"
        self.expand = expand

    def compose(self) -> ComposeResult:
        yield GpusPane()

    def on_mount(self) -> None:
        pane = self.query_one(GpusPane)
        data = view()
        if self.expand is not None:
            pane.collapsed = {n.name for n in data.nodes} - self.expand
        pane.show_view(data, state=data.state_line())
        pane.focus()


@pytest.mark.usefixtures("isolated_home")
def test_summary_with_nodes_collapsed(snap_compare) -> None:
    assert snap_compare(GpusApp(expand=set()), terminal_size=(150, 30))


@pytest.mark.usefixtures("isolated_home")
def test_node_with_mig_slices(snap_compare) -> None:
    async def to_mig(pilot) -> None:
        pane = pilot.app.query_one(GpusPane)
        pane.table.move_cursor(row=2)

    assert snap_compare(GpusApp(expand={"hyperpod-i-0b2c3d4e5f6071829"}), terminal_size=(150, 34),
                        run_before=to_mig)


@pytest.mark.usefixtures("isolated_home")
def test_waste_view(snap_compare) -> None:
    assert snap_compare(GpusApp(), terminal_size=(150, 30), press=["w"])


@pytest.mark.usefixtures("isolated_home")
def test_narrow_as_in_split_view(snap_compare) -> None:
    assert snap_compare(GpusApp(expand={"hyperpod-i-0c3d4e5f607182930"}), terminal_size=(80, 24))
