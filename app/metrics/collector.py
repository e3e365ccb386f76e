"""One refresh of the cluster's GPUs: allocation from the stores, dcgm-exporter scraped through `pods/proxy`, joined.

`GpuCollector.refresh()` finds the exporters (pods labelled as the GPU operator's or the Helm chart's
dcgm-exporter), scrapes each node's port 9400 through the API server with only the user's Kubernetes credentials,
several nodes at a time but never more than `concurrency`, parses, and joins series to nodes by the exporter pod's
node (and the `hostname`/`Hostname` label), to pods by their `pod`/`namespace` labels, MIG series by
(`UUID`, `GPU_I_ID`). It remembers the last readings of each device (the sparkline) and since when a held device has
been idle (the waste view).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.metrics.allocation import allocation, holder_of, profile_of
from app.metrics.dcgm import ExpositionParser, Series, reading
from app.metrics.model import GPU, Device, Holder, NodeGpus

EXPORTER_SELECTORS = ("app=nvidia-dcgm-exporter", "app.kubernetes.io/name=dcgm-exporter")
PORT = 9400
MAX_BYTES = 16 * 1024 * 1024
HISTORY = 90
DISCOVERY_SECONDS = 30.0


class MetricsTooLarge(Exception):
    pass


@dataclass
class GpuView:
    """Everything the pane and the CLI show, from one refresh."""

    nodes: list[NodeGpus] = field(default_factory=list)
    exporters: int = 0
    forbidden: str = ""
    """The API server's refusal of `pods/proxy` (RBAC), when it refused."""
    discovery_error: str = ""
    malformed: int = 0
    scraped_at: float | None = None
    """time.time() of the last refresh that read any metrics."""
    source: str = "dcgm"

    @property
    def devices(self) -> list[Device]:
        return [d for node in self.nodes for d in node.devices]

    def state_line(self, now: float | None = None, stale_after: float = 10.0) -> str:
        """What limits the figures shown, in one line; empty when all is well."""
        parts: list[str] = []
        if self.source == "prometheus":
            if self.discovery_error:
                parts.append(f"{self.discovery_error}; allocation only")
            elif self.nodes and not self.exporters:
                parts.append("Prometheus has no dcgm-exporter series for these nodes: allocation only")
            else:
                missing = sum(1 for n in self.nodes if n.metrics_state == "no-exporter")
                if missing:
                    parts.append(f"no dcgm-exporter series in Prometheus for {missing} node{'s' if missing > 1 else ''}")
        elif self.forbidden:
            parts.append(f"metrics forbidden: {self.forbidden} (needs get on pods/proxy); allocation only")
        elif self.discovery_error:
            parts.append(f"cannot look for dcgm-exporter: {self.discovery_error}; allocation only")
        elif self.nodes and not self.exporters:
            parts.append("no dcgm-exporter found: allocation only, no live figures")
        else:
            missing = [n.name for n in self.nodes if n.metrics_state == "no-exporter"]
            failing = [n for n in self.nodes if n.metrics_state == "error"]
            if missing:
                parts.append(f"no dcgm-exporter on {len(missing)} node{'s' if len(missing) > 1 else ''}")
            if failing:
                parts.append(f"scrape failed on {len(failing)} node{'s' if len(failing) > 1 else ''}: "
                             f"{failing[0].metrics_error}")
        if self.malformed:
            parts.append(f"{self.malformed} malformed metric line{'s' if self.malformed > 1 else ''} skipped")
        if self.scraped_at is not None and now is not None and now - self.scraped_at > stale_after:
            parts.append(f"stale: metrics from {human_age(now - self.scraped_at)} ago")
        return "; ".join(parts)


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class IdleTracker:
    """Since when each held device has been under the idle threshold (a new holder starts the clock again)."""

    def __init__(self, threshold_percent: float) -> None:
        self.threshold = threshold_percent
        self._since: dict[tuple[str, str, str], float] = {}

    def start(self, device: Device, since: float) -> None:
        """Known from elsewhere (Prometheus's history): this held device has been idle since `since`."""
        if device.holder is not None:
            self._since[(device.key, device.holder.namespace, device.holder.pod)] = since

    def update(self, devices: Iterable[Device], now: float) -> None:
        seen: set[tuple[str, str, str]] = set()
        for device in devices:
            if device.holder is None or device.util_percent is None:
                device.idle_seconds = None
                continue
            key = (device.key, device.holder.namespace, device.holder.pod)
            if device.util_percent > self.threshold:
                device.idle_seconds = None
                continue
            seen.add(key)
            since = self._since.setdefault(key, now)
            device.idle_seconds = now - since
        for key in set(self._since) - seen:
            del self._since[key]


def is_waste(device: Device, idle_minutes: float) -> bool:
    return device.idle_seconds is not None and device.idle_seconds >= idle_minutes * 60


class GpuCollector:
    """Refreshes a `GpuView`. One per pane or CLI run: it keeps the parser's memory, the history and idle clocks."""

    def __init__(self, idle_threshold_percent: float = 5.0, concurrency: int = 16, timeout: float = 5.0,
                 history: int = HISTORY, prometheus: Any = None, poll_seconds: float = 2.0) -> None:
        """`prometheus`: a PrometheusSource to read the figures from instead of scraping the exporters."""
        self.prometheus = prometheus
        self.poll_seconds = poll_seconds
        self._seeded = False
        self.threshold = idle_threshold_percent
        self.concurrency = concurrency
        self.timeout = timeout
        self.parser = ExpositionParser()
        self.idle = IdleTracker(idle_threshold_percent)
        self._history: dict[str, deque[float]] = {}
        self._history_len = history
        self._exporters: dict[str, tuple[str, str]] = {}  # node -> (namespace, pod)
        self._discovered_at = -1e9
        self.view = GpuView()

    def _stale(self, seconds: float) -> bool:
        return time.monotonic() - self._discovered_at >= seconds

    # --- discovery ---------------------------------------------------------------------------------------------

    async def discover(self, connection: Any, force: bool = False) -> dict[str, tuple[str, str]]:
        """node -> its running dcgm-exporter pod, looked up across namespaces (cached for DISCOVERY_SECONDS)."""
        if not force and time.monotonic() - self._discovered_at < DISCOVERY_SECONDS:
            return self._exporters
        found: dict[str, tuple[str, str]] = {}
        for selector in EXPORTER_SELECTORS:
            answer = await connection.request("GET", "/api/v1/pods", {"labelSelector": selector})
            for pod in (answer or {}).get("items") or []:
                found.update(exporter_nodes([pod]))
        self._exporters = found
        self._discovered_at = time.monotonic()
        return found

    # --- one refresh -------------------------------------------------------------------------------------------

    async def refresh(self, connection: Any, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                      now: float | None = None) -> GpuView:
        from app.cluster.connection import ApiError

        now = time.time() if now is None else now
        pods = list(pods)
        inventory = allocation(nodes, pods)
        by_name = {(p.get("metadata") or {}).get("namespace", "") + "/" + (p.get("metadata") or {}).get("name", ""): p
                   for p in pods}
        view = GpuView(nodes=sorted(inventory.values(), key=lambda n: n.name), scraped_at=self.view.scraped_at)
        if self.prometheus is not None:
            await self._from_prometheus(view, inventory, by_name, now)
            return view
        # The exporters among the pods already at hand (a cluster-wide pod store); ask the API server for the rest.
        exporters = exporter_nodes(p for p in pods if is_exporter(p))
        if not set(inventory) <= set(exporters):
            try:
                complete = set(inventory) <= set(self._exporters)
                exporters = {**await self.discover(connection, force=not complete and self._stale(5.0)), **exporters}
            except ApiError as exc:
                if exc.status == 403:
                    view.forbidden = str(exc)
                else:
                    view.discovery_error = str(exc)
        view.exporters = sum(1 for n in inventory if n in exporters)
        scraped: dict[str, list[Series]] = {}
        if exporters and not view.forbidden:
            semaphore = asyncio.Semaphore(self.concurrency)
            targets = [node for node in view.nodes if node.name in exporters]

            async def one(node: NodeGpus) -> None:
                namespace, pod = exporters[node.name]
                node.exporter = f"{namespace}/{pod}"
                async with semaphore:
                    try:
                        text = await scrape(connection, namespace, pod, self.timeout)
                    except ApiError as exc:
                        node.metrics_state = "forbidden" if exc.status == 403 else "error"
                        node.metrics_error = str(exc)
                        if exc.status == 403:
                            view.forbidden = str(exc)
                        return
                    except MetricsTooLarge as exc:
                        node.metrics_state, node.metrics_error = "error", str(exc)
                        return
                result = self.parser.parse(text)
                view.malformed += result.malformed
                node.metrics_state = "ok"
                scraped[node.name] = result.series

            await asyncio.gather(*(one(node) for node in targets))
            if any(n.metrics_state == "error" and "404" in n.metrics_error for n in targets):
                self._discovered_at = -1e9  # an exporter pod went away: look again next time
        for node in view.nodes:
            if node.name not in exporters:
                node.metrics_state = "no-exporter"
            if view.forbidden and node.metrics_state != "ok":
                node.metrics_state = "forbidden"
            node.devices = join(node, scraped.get(node.name), by_name)
        if scraped:
            view.scraped_at = now
        self._remember(view, now)
        self.view = view
        return view

    async def _from_prometheus(self, view: GpuView, inventory: Mapping[str, NodeGpus],
                               pods: Mapping[str, Mapping[str, Any]], now: float) -> None:
        from app.metrics.prometheus import PrometheusError

        view.source = "prometheus"
        by_host: dict[str, list[Series]] = {}
        history: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        try:
            for series in await self.prometheus.series():
                by_host.setdefault(series.hostname, []).append(series)
            if not self._seeded:
                history = await self.prometheus.activity_history(self._history_len * self.poll_seconds / 60,
                                                                 self.poll_seconds)
        except PrometheusError as exc:
            view.discovery_error = str(exc)
        view.exporters = sum(1 for name in inventory if name in by_host)
        for node in view.nodes:
            series = by_host.get(node.name)
            node.metrics_state = "ok" if series else "no-exporter"
            node.devices = join(node, series, pods)
        if by_host:
            view.scraped_at = now
        if history:
            self._seed(view, history)
            self._seeded = True
        self._remember(view, now)
        self.view = view

    def _seed(self, view: GpuView, history: Mapping[tuple[str, str, str], list[tuple[float, float]]]) -> None:
        """Sparklines and idle clocks from Prometheus's memory of the last minutes."""
        for device in view.devices:
            points = history.get((device.node, device.uuid or "", "" if device.gi_id is None else str(device.gi_id)))
            if not points:
                continue
            self._history[device.key] = deque((v for _, v in points), maxlen=self._history_len)
            if device.holder is not None:
                since = None
                for stamp, value in reversed(points):
                    if value > self.threshold:
                        break
                    since = stamp
                if since is not None:
                    self.idle.start(device, since)

    def _remember(self, view: GpuView, now: float) -> None:
        live: set[str] = set()
        for device in view.devices:
            if device.util_percent is None:
                continue
            key = device.key
            live.add(key)
            history = self._history.get(key)
            if history is None:
                history = self._history[key] = deque(maxlen=self._history_len)
            history.append(device.util_percent)
            device.history = tuple(history)
        for key in set(self._history) - live:
            del self._history[key]
        self.idle.update(view.devices, now)


def is_exporter(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get("app") == "nvidia-dcgm-exporter" or labels.get("app.kubernetes.io/name") == "dcgm-exporter"


def exporter_nodes(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """node -> (namespace, pod) of the running exporter pods among `pods`."""
    found: dict[str, tuple[str, str]] = {}
    for pod in pods:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        if node and status.get("phase", "Running") == "Running" and meta.get("deletionTimestamp") is None:
            found[node] = (meta.get("namespace", ""), meta.get("name", ""))
    return found


async def scrape(connection: Any, namespace: str, pod: str, timeout: float) -> str:
    """GET the exporter's /metrics through the API server's pods/proxy; at most MAX_BYTES."""
    from app.cluster.connection import ApiError

    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{PORT}/proxy/metrics"

    async def read() -> bytes:
        async with connection.stream(path, headers={"Accept": "text/plain"}) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise MetricsTooLarge(f"{namespace}/{pod} answered more than {MAX_BYTES // (1024 * 1024)} MiB")
                chunks.append(chunk)
            return b"".join(chunks)

    try:
        body = await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(0, f"{namespace}/{pod} did not answer within {timeout:g} s") from None
    except (ApiError, MetricsTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - a dropped connection mid-body, say
        raise ApiError(0, f"{namespace}/{pod}: {exc or type(exc).__name__}") from None
    return body.decode("utf-8", "replace")


def join(node: NodeGpus, series: list[Series] | None, pods: Mapping[str, Mapping[str, Any]]) -> list[Device]:
    """The node's devices: from its exporter's series when scraped, else one row per allocated or free device.

    The series are the node's already: a direct scrape knows its exporter pod's node (an exporter without NODE_NAME
    labels them with its pod's hostname, not the node's), Prometheus series were grouped by `hostname`/`Hostname`.
    A series without a GPU UUID or index identifies no device and is left out."""
    if series is not None:
        devices = [_device(node, s, pods) for s in series if s.uuid or s.gpu is not None]
        if devices:
            devices.sort(key=lambda d: (d.gpu if d.gpu is not None else 1 << 30, d.gi_id if d.gi_id is not None else -1))
            return devices
    return allocation_devices(node)


def _device(node: NodeGpus, s: Series, pods: Mapping[str, Mapping[str, Any]]) -> Device:
    figures = reading(s)
    profile = s.mig_profile or node.single_profile
    holder: Holder | None = None
    if s.pod is not None:
        namespace, name = s.pod
        pod = pods.get(f"{namespace}/{name}")
        holder = holder_of(pod) if pod is not None else Holder(namespace, name, "Pod", name)
    model = s.labels.get("modelName") or node.model.replace("-", " ")
    return Device(node=node.name, gpu=s.gpu, uuid=s.uuid, model=model, mig_profile=profile, gi_id=s.gi_id,
                  util_percent=figures.util_percent, mem_used_mib=figures.mem_used_mib,
                  mem_total_mib=figures.mem_total_mib, power_w=figures.power_w, temp_c=figures.temp_c,
                  xid=figures.xid, holder=holder)


def allocation_devices(node: NodeGpus) -> list[Device]:
    """Without metrics: a row per allocatable GPU or slice, the held ones first with their holders (which index a
    pod holds only the exporter can tell)."""
    devices: list[Device] = []
    model = node.model.replace("-", " ")
    for resource in sorted(node.capacity):
        total = node.capacity[resource]
        profile = profile_of(resource) or (node.single_profile if resource == GPU else None)
        held = [(holder, claim[resource]) for holder, claim in node.claims if claim.get(resource)]
        index = 0
        for holder, count in held:
            for _ in range(count):
                devices.append(Device(node=node.name, gpu=None, model=model, mig_profile=profile, slot=index,
                                      holder=holder))
                index += 1
        while index < total:
            devices.append(Device(node=node.name, gpu=None, model=model, mig_profile=profile, slot=index))
            index += 1
    return devices
