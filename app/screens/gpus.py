"""The GPUs pane: GPU and MIG utilisation across the cluster, who holds each GPU, and the GPUs that sit idle.

At the top, the cluster summary by product and MIG profile. Below, one of two views:

- nodes: each GPU node (health badges, allocation), expanded into its GPUs and MIG slices with utilisation, a
  sparkline of the last minutes, memory, power, temperature, XID errors and the holder (namespace/pod, with its
  job or space). `enter` expands or collapses a node, `c` all of them; `U`, `M`, `I` sort by utilisation, memory
  and idle time; `/` filters by team (namespace), node or holder.
- waste (`w`): GPUs and slices held by a pod and idle (under `gpus.idle_threshold_percent`) for at least
  `gpus.idle_minutes`, longest first. `o` jumps to the holder in its pane (Jobs, Spaces or Endpoints: an inference
  endpoint's model server, whether its pods belong to an InferenceService or to the Deployment the HyperPod
  inference operator makes).

The figures come from a poll worker of this pane (`app/metrics`), which reschedules itself and runs only while the
pane is shown; the allocation comes from the node and pod stores, so it shows even when metrics cannot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from app.metrics.collector import GpuCollector, GpuView, allocation_devices, is_waste
from app.metrics.allocation import allocation
from app.metrics.model import Device, Holder, NodeGpus
from app.metrics.summary import summarize
from app.model.status import human_age
from app.screens.gpu_table import GpuTable
from app.screens.pane import Pane
from widgets.resource_table import ResourceTable, Row

log = logging.getLogger(__name__)

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 10
AUTO_EXPAND_NODES = 16
"""Clusters up to this many GPU nodes open with every node expanded; larger ones open collapsed."""

# holder kind -> (pane, store name in that pane's row keys)
HOLDER_PANES = {
    "HyperPodPyTorchJob": ("jobs", "hyperpodpytorchjobs"),
    "PyTorchJob": ("jobs", "pytorchjobs"),
    "Job": ("jobs", "jobs"),
    "JobSet": ("jobs", "jobsets"),
    "Workspace": ("spaces", "workspaces"),
    "Notebook": ("spaces", "notebooks"),
    "InferenceService": ("endpoints", "inferenceservices"),
}


_SPARK_BY_PERCENT = [SPARK[int(p / 100 * (len(SPARK) - 1) + 0.5)] for p in range(101)]


def sparkline(values: tuple[float, ...], width: int = SPARK_WIDTH) -> str:
    """The last `width` readings (0..100 %) as block characters, one per reading."""
    table = _SPARK_BY_PERCENT
    return "".join(table[100 if v >= 100 else 0 if v <= 0 else int(v)] for v in values[-width:])


def _percent(value: float | None) -> Text:
    if value is None:
        return Text("–", style="dim")
    style = "green" if value >= 60 else "yellow" if value > 5 else "dim"
    return Text(f"{value:.0f}%", style=style)


def _memory(device: Device) -> str:
    if device.mem_total_mib is None:
        return ""
    return f"{(device.mem_used_mib or 0) / 1024:.1f}/{device.mem_total_mib / 1024:.0f}Gi"


def _number(value: float | None, unit: str) -> str:
    return "" if value is None else f"{value:.0f}{unit}"


SHORT_KINDS = {"HyperPodPyTorchJob": "hpjob", "PyTorchJob": "pytorchjob", "Job": "job", "JobSet": "jobset",
               "Workspace": "space", "Notebook": "notebook", "InferenceService": "isvc", "Deployment": "deploy"}


def _holder(device: Device) -> Text:
    """namespace/job-or-space (kind); the pod itself is in `get gpus` and the job's own pane."""
    holder = device.holder
    if holder is None:
        return Text("free", style="dim")
    if holder.kind == "Pod" or not holder.name:
        text = Text(f"{holder.namespace}/{holder.pod}")
    else:
        text = Text(f"{holder.namespace}/{holder.name} ")
        text.append(f"({SHORT_KINDS.get(holder.kind, holder.kind)})", style="dim")
    if device.sharers:
        text.append(f" +{len(device.sharers)} shared", style="yellow")
    return text


def _idle(device: Device, idle_minutes: float) -> Text:
    if device.idle_seconds is None:
        return Text("")
    return Text(human_age(device.idle_seconds), style="bold red" if is_waste(device, idle_minutes) else "yellow")


class GpusPane(Pane):
    pane_id = "gpus"
    title = "GPUs"
    key = "3"
    columns = ("NODE / GPU", "MODEL / MIG", "UTIL", "HISTORY", "MEMORY", "POWER", "TEMP", "XID", "IDLE", "HOLDER")
    purpose = "Live GPU and MIG utilisation across the cluster, who holds each GPU, and the GPUs that sit idle."
    kinds = ("nodes", "pods")
    BINDINGS = [
        Binding("enter", "toggle_node", "Expand/collapse", id="gpus.toggle"),
        Binding("c", "toggle_all", "Expand/collapse all", show=False, id="gpus.toggle_all"),
        Binding("w", "waste", "Waste", id="gpus.waste"),
        Binding("o", "holder", "Go to holder", id="gpus.holder"),
        Binding("U", "order('util')", "Sort by utilisation", show=False, id="gpus.sort.util"),
        Binding("M", "order('memory')", "Sort by memory", show=False, id="gpus.sort.memory"),
        Binding("I", "order('idle')", "Sort by idle time", show=False, id="gpus.sort.idle"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view_mode = "nodes"
        self.order = ""
        self.order_reverse = True
        self.collapsed: set[str] = set()
        self.expanded: set[str] = set()
        self.view: GpuView | None = None
        self.collector: GpuCollector | None = None
        self.idle_minutes = 30.0
        self.threshold = 5.0
        self.poll_seconds = 2.0
        self._fallback: list[NodeGpus] = []
        self._state = ""
        self._base_notice = ""
        self._devices: dict[str, Device] = {}
        self._dirty = False
        self._prometheus = None
        self._engine: object | None = None
        """The cluster engine whose nodes the pane shows; another one (`:ctx`, a reconnect) drops the view."""
        self._error = ""
        """Why the last poll failed, shown before the view's own state line."""
        self._polled = False
        """The view comes from the poll (whose state line ages each second), not from `show_view`."""

    def compose(self) -> ComposeResult:
        summary = Static("", id="gpus-summary")
        summary.display = False  # until there are GPU nodes to sum up
        yield summary
        yield GpuTable(self.columns, id=f"{self.pane_id}-table")
        yield Static(self.purpose, classes="empty")

    def on_mount(self) -> None:
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            self.idle_minutes = settings.gpus.idle_minutes
            self.threshold = settings.gpus.idle_threshold_percent
            self.poll_seconds = max(0.5, settings.gpus.poll_seconds)
            if settings.gpus.prometheus_url:
                from app.metrics.prometheus import PrometheusSource

                self._prometheus = PrometheusSource(settings.gpus.prometheus_url,
                                                    token_file=settings.gpus.prometheus_token_file)
        self.collector = self._new_collector()
        if hasattr(self.app, "engine"):
            self.run_worker(self._poll(), exclusive=True, group="gpus-poll", exit_on_error=False)
            self.set_interval(1.0, self._tick_state)

    async def on_unmount(self) -> None:
        if self._prometheus is not None:
            await self._prometheus.close()

    def _new_collector(self) -> GpuCollector:
        return GpuCollector(self.threshold, prometheus=self._prometheus, poll_seconds=self.poll_seconds,
                            idle_minutes=self.idle_minutes)

    # --- data ----------------------------------------------------------------------------------------------------

    def _follow_engine(self, engine: object | None) -> bool:
        """After `:ctx` (or a reconnect) the app has another engine, or none yet: the old cluster's nodes, figures,
        sparklines and idle clocks go, and the pane starts again from the new cluster's allocation. True if so."""
        if engine is self._engine:
            return False
        self._engine = engine
        self.view = None
        self._fallback = []
        self._devices = {}
        self._error = self._state = ""
        self._polled = False
        self.expanded.clear()
        self.collapsed.clear()
        self.collector = self._new_collector()
        return True

    def _stale_after(self) -> float:
        return 0.0 if self._error else max(10.0, 3 * self.poll_seconds)

    def _state_now(self) -> str:
        """The error of the last poll, then what limits the view, with the figures' age when they are stale."""
        line = self.view.state_line(time.time(), stale_after=self._stale_after()) if self.view is not None else ""
        return "; ".join(part for part in (self._error, line) if part)

    def _tick_state(self) -> None:
        """Each second while shown: the state line ages though no poll has ended (a slow scrape round)."""
        if not self._polled or not self.shown():
            return
        state = self._state_now()
        if state != self._state:
            self._state = state
            self.show_notice(self._base_notice)

    async def _poll(self) -> None:
        """Refresh every `gpus.poll_seconds` while this pane is shown; the next round starts only after this one."""
        from app.cluster.connection import ApiError

        while True:
            engine = getattr(self.app, "engine", None)
            if self._follow_engine(engine):
                self.refresh_view()
            if engine is None or not self.shown() or not {"nodes", "pods"} <= set(engine.stores):
                await asyncio.sleep(0.25)
                continue
            started = time.monotonic()
            collector = self.collector
            assert collector is not None
            try:
                nodes = engine.stores["nodes"].snapshot().values()
                pod_store = engine.stores["pods"]
                pods = pod_store.snapshot().values()
                scope = pod_store.status.scope if pod_store.status.state == "live" else "unknown scope"
                view = await collector.refresh(engine.connection, nodes, pods, pods_scope=scope)
                error = ""
            except ApiError as exc:
                view, error = None, f"metrics: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug in one refresh must not stop the polling
                log.exception("GPU refresh failed")
                view, error = None, f"GPU refresh failed: {type(exc).__name__}: {exc}"
            if getattr(self.app, "engine", None) is not engine or collector is not self.collector:
                continue  # the context changed during the round: its answer is the old cluster's
            if view is not None:
                self.view = view
            self._error = error
            self._polled = True
            self._state = self._state_now()
            self.refresh_view()
            await asyncio.sleep(max(0.0, self.poll_seconds - (time.monotonic() - started)))

    def rows(self, stores: Mapping[str, Mapping[str, dict]]) -> list[Row] | None:
        """Called by the app when the node or pod store changes, and by the poll: until the first poll, the
        allocation from the stores; then the table changes only when a poll brings a new view (None: keep it)."""
        self._follow_engine(getattr(self.app, "engine", None))
        if self.view is None:
            inventory = allocation(stores.get("nodes", {}).values(), stores.get("pods", {}).values())
            self._fallback = sorted(inventory.values(), key=lambda n: n.name)
            for node in self._fallback:
                node.devices = allocation_devices(node)
            return self._rows()
        if not self._dirty:
            return None
        self._dirty = False
        return self._rows()

    def show_view(self, view: GpuView, state: str = "") -> None:
        """Show a refreshed view (the poll worker, and tests with fixed data)."""
        self.view = view
        self._state = state
        self._polled = False
        self.refresh_view()

    def refresh_view(self) -> None:
        self._dirty = True
        refresh = getattr(self.app, "refresh_pane", None)
        if refresh is not None and getattr(self.app, "engine", None) is not None:
            refresh(self.pane_id)
        else:
            self.table.set_rows(self._rows())
            self.show_notice(self._base_notice)

    def show_notice(self, text: str) -> None:
        self._base_notice = text
        lines = [line for line in (self._state, self._waste_line()) if line]
        super().show_notice("\n".join([*lines, text or self.purpose]))

    @property
    def nodes(self) -> list[NodeGpus]:
        return self.view.nodes if self.view is not None else self._fallback

    # --- rows ----------------------------------------------------------------------------------------------------

    def _rows(self) -> list[Row]:
        nodes = self.nodes
        self._devices = {d.key: d for node in nodes for d in node.devices}
        self._show_summary(nodes)
        if self.view_mode == "waste":
            return self._waste_rows(nodes)
        rows: list[Row] = []
        for node in self._ordered_nodes(nodes):
            rows.append(self._node_row(node))
            if self._is_expanded(node, len(nodes)):
                rows.extend(self._device_row(d) for d in self._ordered_devices(node.devices))
        return rows

    def _is_expanded(self, node: NodeGpus, count: int) -> bool:
        if self.table.filter_text.strip():
            return True  # a filter looks inside collapsed nodes too
        if node.name in self.expanded:
            return True
        if node.name in self.collapsed:
            return False
        return count <= AUTO_EXPAND_NODES

    def _sort_key(self, device: Device) -> float:
        if self.order == "util":
            return device.util_percent if device.util_percent is not None else -1.0
        if self.order == "memory":
            return device.mem_used_mib if device.mem_used_mib is not None else -1.0
        if self.order == "idle":
            return device.idle_seconds if device.idle_seconds is not None else -1.0
        return 0.0

    def _ordered_nodes(self, nodes: list[NodeGpus]) -> list[NodeGpus]:
        if not self.order:
            return nodes
        return sorted(nodes, key=lambda n: max((self._sort_key(d) for d in n.devices), default=-1.0),
                      reverse=self.order_reverse)

    def _ordered_devices(self, devices: list[Device]) -> list[Device]:
        if not self.order:
            return devices
        return sorted(devices, key=self._sort_key, reverse=self.order_reverse)

    def _node_row(self, node: NodeGpus) -> Row:
        measured = [d.util_percent for d in node.devices if d.util_percent is not None]
        util = sum(measured) / len(measured) if measured else None
        used = [d.mem_used_mib for d in node.devices if d.mem_used_mib is not None]
        total = node.gpu_count * node.gpu_memory_mib if node.gpu_memory_mib and not node.single_profile else 0
        power = [d.power_w for d in node.devices if d.power_w is not None]
        xids = sorted({d.xid for d in node.devices if d.xid})
        capacity = sum(node.capacity.values())
        allocated = sum(node.allocated.values())
        marker = "▾" if self._is_expanded(node, len(self.nodes)) else "▸"
        badges = " ".join(node.badges)
        state = {"no-exporter": "no exporter", "forbidden": "metrics forbidden", "error": "scrape failed",
                 "pending": ""}.get(node.metrics_state, "")
        if node.metrics_state == "stale":
            state = f"scrape failed, figures {human_age(node.stale_seconds or 0)} old"
        detail = Text(f"{allocated}/{capacity} allocated", style="bold")
        if node.mig_strategy in ("single", "mixed"):
            detail.append(f" · MIG {node.mig_strategy}")
        if state:
            detail.append(f" · {state}", style="yellow")
        if badges:
            detail.append(f" · {badges}", style="bold red")
        model = node.model.replace("NVIDIA-", "").replace("-", " ")
        return Row(f"node:{node.name}", (
            Text(f"{marker} {node.name}", style="bold"), f"{node.gpu_count}× {model}", _percent(util), "",
            f"{sum(used) / 1024:.0f}/{total / 1024:.0f}Gi" if used and total else "",
            f"{sum(power):.0f}W" if power else "", "", Text(",".join(map(str, xids)), style="bold red"), "", detail,
        ))

    def _device_row(self, device: Device, node_name: bool = False) -> Row:
        """A GPU or slice; in the waste view (`node_name`) its row key differs, so the table sizes it afresh."""
        index = "?" if device.gpu is None else str(device.gpu)
        mig = f"{device.mig_profile} #{device.gi_id}" if device.mig_profile and device.gi_id is not None else (
            device.mig_profile or "")
        first = Text(f"{device.node} GPU {index}") if node_name else Text(f"    GPU {index}")
        return Row(f"waste:{device.key}" if node_name else device.key, (
            first, mig, _percent(device.util_percent), Text(sparkline(device.history), style="cyan"),
            _memory(device), _number(device.power_w, "W"), _number(device.temp_c, "C"),
            Text(str(device.xid), style="bold red") if device.xid else "", _idle(device, self.idle_minutes),
            _holder(device),
        ))

    def _waste(self, nodes: list[NodeGpus]) -> list[Device]:
        waste = [d for node in nodes for d in node.devices if is_waste(d, self.idle_minutes)]
        return sorted(waste, key=lambda d: -(d.idle_seconds or 0))

    def _waste_rows(self, nodes: list[NodeGpus]) -> list[Row]:
        return [self._device_row(d, node_name=True) for d in self._waste(nodes)]

    def _waste_line(self) -> str:
        if self.view_mode == "waste":
            return (f"Waste: GPUs and MIG slices held and under {self.threshold:g}% for {self.idle_minutes:g} min or "
                    f"more. o: go to the holder · w: back to the nodes")
        return ""

    def _show_summary(self, nodes: list[NodeGpus]) -> None:
        widget = self.query_one("#gpus-summary", Static)
        widget.display = bool(nodes)
        if not nodes:
            return
        table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
        for label in ("PRODUCT", "MIG", "CAPACITY", "ALLOCATED", "IN USE", "IDLE HELD", "NO FIGURES"):
            table.add_column(label, justify="left" if label in ("PRODUCT", "MIG") else "right", no_wrap=True,
                             overflow="ellipsis")
        for row in summarize(nodes, self.threshold):
            table.add_row(row.product.removeprefix("NVIDIA "), row.profile or "whole GPU", str(row.capacity), str(row.allocated),
                          f"[green]{row.in_use}[/]", f"[yellow]{row.idle_held}[/]" if row.idle_held else "0",
                          f"[dim]{row.unmeasured}[/]")
        waste = len(self._waste(nodes))
        caption = Text(f"{sum(len(n.devices) for n in nodes)} GPUs and slices on {len(nodes)} nodes · ")
        caption.append(f"{waste} wasted (idle ≥ {self.idle_minutes:g} min)", style="bold red" if waste else "")
        table.caption = caption
        table.caption_justify = "left"
        widget.update(table)

    # --- actions -------------------------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        if self.view_mode == "waste":
            self.action_holder()
        else:
            self.action_toggle_node()

    def action_toggle_node(self) -> None:
        key = self.table.cursor_key
        if key is None:
            return
        name = key[5:] if key.startswith("node:") else (self._devices[key].node if key in self._devices else None)
        if name is None:
            return
        node = next((n for n in self.nodes if n.name == name), None)
        if node is None:
            return
        if self._is_expanded(node, len(self.nodes)):
            self.expanded.discard(name)
            self.collapsed.add(name)
        else:
            self.collapsed.discard(name)
            self.expanded.add(name)
        self._redraw(focus=f"node:{name}")

    def action_toggle_all(self) -> None:
        names = {n.name for n in self.nodes}
        if any(self._is_expanded(n, len(self.nodes)) for n in self.nodes):
            self.collapsed, self.expanded = names, set()
        else:
            self.collapsed, self.expanded = set(), names
        self._redraw()

    def action_waste(self) -> None:
        self.view_mode = "nodes" if self.view_mode == "waste" else "waste"
        self.border_subtitle = "waste" if self.view_mode == "waste" else ""
        self._redraw()

    def action_order(self, order: str) -> None:
        self.order_reverse = not self.order_reverse if self.order == order else True
        self.order = order
        self._redraw()

    def _redraw(self, focus: str | None = None) -> None:
        self.table.set_rows(self._rows())
        self.show_notice(self._base_notice)
        if focus is not None and focus in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(focus), animate=False)

    def action_holder(self) -> None:
        """Jump to the job or space holding the device under the cursor, in its own pane."""
        key = (self.table.cursor_key or "").removeprefix("waste:")
        device = self._devices.get(key)
        if device is None or device.holder is None:
            self.app.notify("no holder here: put the cursor on a held GPU or slice", severity="warning")
            return
        holder = device.holder
        target = HOLDER_PANES.get(holder.kind)
        endpoint = self._endpoint_key(holder) if target is None and holder.kind == "Deployment" else None
        if target is not None:
            pane_id, store = target
            wanted = (f"{store}/{holder.namespace}/{holder.name}", f"{holder.namespace}/{holder.name}")
        elif endpoint is not None:  # a HyperPod inference endpoint's model server, run by its Deployment
            pane_id, wanted = "endpoints", (endpoint,)
        else:
            self.app.notify(f"{holder.text}: no pane lists a {holder.kind}", severity="warning")
            return
        show = getattr(self.app, "action_show_pane", None)
        if show is None:
            return
        show(pane_id)
        table = self.app.query_one(f"#{pane_id}", Pane).table
        if table.filter_text:
            table.set_filter("")
        for row_key in table.rows:
            if row_key.value in wanted:
                table.move_cursor(row=table.get_row_index(row_key.value), animate=False)
                return
        self.app.notify(f"{holder.kind} {holder.namespace}/{holder.name} is not listed in the {pane_id} pane",
                        severity="warning")

    def _endpoint_key(self, holder: Holder) -> str | None:
        """The Endpoints pane's row of the endpoint whose model server pods include the holder's pod, if any."""
        from app.model.endpoints import endpoint_rows

        engine = getattr(self.app, "engine", None)
        if engine is None:
            return None
        kinds = self.app.query_one("#endpoints", Pane).kinds
        rows = endpoint_rows({k: engine.stores[k].snapshot() for k in kinds if k in engine.stores})
        pod = f"{holder.namespace}/{holder.pod}"
        return next((row.key for row in rows if pod in row.pods), None)
