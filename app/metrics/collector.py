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
from datetime import datetime
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.metrics.allocation import allocation, holder_of, profile_of
from app.metrics.dcgm import ExpositionParser, Series, reading
from app.metrics.model import GPU, Device, Holder, NodeGpus
from app.model.status import human_age

EXPORTER_SELECTORS = ("app=nvidia-dcgm-exporter", "app.kubernetes.io/name=dcgm-exporter")
PORT = 9400
MAX_BYTES = 16 * 1024 * 1024
HISTORY = 90
DISCOVERY_SECONDS = 30.0
"""How long a lookup of the exporters is trusted, "no exporter on this node" included."""
DISCOVERY_BACKOFF_MAX = 300.0
STALE_GRACE_SECONDS = 120.0
"""A node whose scrape fails keeps its last devices (marked stale, with their age) this long."""
FORGET_SECONDS = 600.0
"""Sparklines and idle clocks of a device unseen this long (or five polls, if longer) are dropped."""
POD_FIELDS = "status.phase!=Succeeded,status.phase!=Failed"
CLUSTER_WIDE = ("all namespaces", "")


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
    discovery_forbidden: str = ""
    """The API server's refusal to list pods across namespaces (to find the exporters)."""
    history_error: str = ""
    """Prometheus answered the figures but not the history query."""
    pods_note: str = ""
    """Set when the allocation covers only some namespaces (pods could not be listed cluster-wide)."""
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
            if self.history_error:
                parts.append(f"no history: {self.history_error}")
        elif self.forbidden and not any(n.metrics_state in ("ok", "stale") for n in self.nodes):
            parts.append(f"metrics forbidden: {self.forbidden} (needs get on pods/proxy); allocation only")
        elif self.discovery_error and not self.exporters:
            parts.append(f"cannot look for dcgm-exporter: {self.discovery_error}; allocation only")
        elif self.discovery_forbidden and not self.exporters:
            parts.append(f"cannot look for dcgm-exporter: {self.discovery_forbidden} (needs list on pods in all "
                         f"namespaces); allocation only")
        elif self.nodes and not self.exporters:
            parts.append("no dcgm-exporter found: allocation only, no live figures")
        else:
            if self.discovery_forbidden or self.discovery_error:
                parts.append(f"cannot look for more dcgm-exporters ({self.discovery_forbidden or self.discovery_error})"
                             f": scraping the {self.exporters} known")
            missing = [n.name for n in self.nodes if n.metrics_state == "no-exporter"]
            failing = [n for n in self.nodes if n.metrics_state in ("error", "stale")]
            refused = [n for n in self.nodes if n.metrics_state == "forbidden"]
            if refused:
                parts.append(f"metrics forbidden on {len(refused)} node{'s' if len(refused) > 1 else ''}: "
                             f"{self.forbidden} (needs get on pods/proxy)")
            if missing:
                parts.append(f"no dcgm-exporter on {len(missing)} node{'s' if len(missing) > 1 else ''}")
            if failing:
                parts.append(f"scrape failed on {len(failing)} node{'s' if len(failing) > 1 else ''}: "
                             f"{failing[0].metrics_error}")
        if self.pods_note:
            parts.append(self.pods_note)
        if self.malformed:
            parts.append(f"{self.malformed} malformed metric line{'s' if self.malformed > 1 else ''} skipped")
        if self.scraped_at is not None and now is not None and now - self.scraped_at > stale_after:
            parts.append(f"stale: metrics from {human_age(now - self.scraped_at)} ago")
        return "; ".join(parts)


class IdleTracker:
    """Since when each held device has been under the idle threshold (a new holder starts the clock again).

    A device not read for longer than `gap` (the pane was hidden, its node's scrape failed) starts its clock again
    when it is read next: what it did meanwhile is unknown. A device's idle time is None until it has been seen idle
    twice (or Prometheus's history says since when), never a made-up 0."""

    def __init__(self, threshold_percent: float, gap: float = 10.0, forget: float = FORGET_SECONDS) -> None:
        self.threshold = threshold_percent
        self.gap = gap
        self.forget = forget
        self._since: dict[tuple[str, str, str], float] = {}
        self._seen: dict[str, float] = {}  # device key -> when it was last read

    def start(self, device: Device, since: float) -> None:
        """Known from elsewhere (Prometheus's history): this held device has been idle since `since`."""
        if device.holder is not None:
            self._since[(device.key, device.holder.namespace, device.holder.pod)] = since

    def update(self, devices: Iterable[Device], now: float) -> None:
        """`devices`: the ones read in this refresh."""
        current: set[tuple[str, str, str]] = set()
        for device in devices:
            device.idle_seconds = None
            if device.util_percent is None:
                continue
            last = self._seen.get(device.key)
            self._seen[device.key] = now
            if device.holder is None:
                continue
            key = (device.key, device.holder.namespace, device.holder.pod)
            if device.util_percent > self.threshold or (last is not None and now - last > self.gap):
                self._since.pop(key, None)
                if device.util_percent > self.threshold:
                    continue
            current.add(key)
            since = self._since.setdefault(key, now)
            if since < now:
                device.idle_seconds = now - since
        # clocks of devices read now under another holder, or never read, or unseen for long, go
        for key in list(self._since):
            seen = self._seen.get(key[0])
            if seen is None or now - seen > self.forget or (seen == now and key not in current):
                del self._since[key]
        for key, seen in list(self._seen.items()):
            if now - seen > self.forget:
                del self._seen[key]


def is_waste(device: Device, idle_minutes: float) -> bool:
    return device.idle_seconds is not None and device.idle_seconds >= idle_minutes * 60


class GpuCollector:
    """Refreshes a `GpuView`. One per pane or CLI run: it keeps the parser's memory, the history and idle clocks."""

    def __init__(self, idle_threshold_percent: float = 5.0, concurrency: int = 16, timeout: float = 5.0,
                 history: int = HISTORY, prometheus: Any = None, poll_seconds: float = 2.0,
                 idle_minutes: float = 30.0, deadline: float | None = None) -> None:
        """`prometheus`: a PrometheusSource to read the figures from instead of scraping the exporters.
        `deadline`: how long the scrapes of one refresh may take together (about a poll and one scrape's `timeout`
        by default); the nodes that have not answered by then count as failed this round, and go first next round."""
        self.prometheus = prometheus
        self.poll_seconds = poll_seconds
        self.idle_minutes = idle_minutes
        self._seeded = False
        self.threshold = idle_threshold_percent
        self.concurrency = concurrency
        self.timeout = timeout
        self.deadline = poll_seconds + timeout if deadline is None else deadline
        self.parser = ExpositionParser()
        self.forget_seconds = max(FORGET_SECONDS, 5 * poll_seconds)
        self.idle = IdleTracker(idle_threshold_percent, gap=2 * poll_seconds + timeout, forget=self.forget_seconds)
        self._history: dict[str, deque[float]] = {}
        self._history_seen: dict[str, float] = {}
        self._history_len = history
        self._exporters: dict[str, tuple[str, str]] = {}  # node -> (namespace, pod), from the last lookup
        self._next_discovery = 0.0  # time.monotonic() of the next lookup
        self._discovery_backoff = DISCOVERY_SECONDS
        self._discovery_refused = ""
        self._discovery_failed = ""
        self._pods_refused_until = 0.0
        self._pods_refused = ""
        self._cluster_pods: list[Mapping[str, Any]] = []
        self._cluster_pods_until = 0.0
        self._cluster_pods_connection: Any = None
        self._last_good: dict[str, tuple[float, list[Device]]] = {}  # node -> (when, its devices then)
        self.view = GpuView()
        self.build_cpu_seconds = 0.0
        """CPU time of the last refresh's parse and join (they run in a worker thread)."""

    # --- discovery ---------------------------------------------------------------------------------------------

    async def discover(self, connection: Any, force: bool = False) -> dict[str, tuple[str, str]]:
        """node -> its running dcgm-exporter pod, looked up across namespaces. A lookup (its "no exporter here"
        included) is trusted for DISCOVERY_SECONDS; a refused or failed one is retried later and later, while the
        exporters already known are still scraped."""
        from app.cluster.connection import ApiError

        if not force and time.monotonic() < self._next_discovery:
            return self._exporters
        found: dict[str, tuple[str, str]] = {}
        try:
            for selector in EXPORTER_SELECTORS:
                answer = await connection.request("GET", "/api/v1/pods", {"labelSelector": selector})
                found.update(exporter_nodes((answer or {}).get("items") or []))
        except ApiError as exc:
            if exc.status == 403:
                self._discovery_refused, self._discovery_failed = str(exc), ""
            else:
                self._discovery_refused, self._discovery_failed = "", str(exc)
            self._next_discovery = time.monotonic() + self._discovery_backoff
            self._discovery_backoff = min(DISCOVERY_BACKOFF_MAX, self._discovery_backoff * 2)
            return self._exporters
        self._discovery_refused = self._discovery_failed = ""
        self._discovery_backoff = DISCOVERY_SECONDS
        self._exporters = found
        self._next_discovery = time.monotonic() + DISCOVERY_SECONDS
        return found

    async def cluster_pods(self, connection: Any, pods: list[Mapping[str, Any]], scope: str,
                           view: GpuView) -> tuple[list[Mapping[str, Any]], bool]:
        """The pods bound to nodes in every namespace, and whether they are that: the caller's pods are when their
        scope is the whole cluster; otherwise they are listed here, and where that is refused the caller's pods
        are used and the view says the allocation covers only `scope`."""
        from app.cluster.connection import ApiError

        if scope in CLUSTER_WIDE:
            return pods, True
        if time.monotonic() < self._cluster_pods_until and connection is self._cluster_pods_connection:
            return self._merged(self._cluster_pods, pods), True
        if time.monotonic() >= self._pods_refused_until:
            try:
                answer = await connection.request("GET", "/api/v1/pods", {"fieldSelector": POD_FIELDS})
                # Listing every pod of a large cluster each poll would cost the API server more than the scrape:
                # other namespaces' holders are refreshed every DISCOVERY_SECONDS, the caller's own pods each poll.
                self._cluster_pods = list((answer or {}).get("items") or [])
                self._cluster_pods_until = time.monotonic() + DISCOVERY_SECONDS
                self._cluster_pods_connection = connection
                return self._merged(self._cluster_pods, pods), True
            except ApiError as exc:
                self._pods_refused = str(exc)
                self._pods_refused_until = time.monotonic() + DISCOVERY_SECONDS
        view.pods_note = (f"allocation of {scope} only: pods of other namespaces cannot be listed "
                          f"({self._pods_refused})")
        return pods, False

    @staticmethod
    def _merged(cluster: list[Mapping[str, Any]], own: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The cluster-wide list with the caller's fresher copies of its own pods in place of the listed ones."""
        mine = {(p.get("metadata") or {}).get("uid") for p in own}
        namespaces = {(p.get("metadata") or {}).get("namespace") for p in own}
        return [p for p in cluster if (p.get("metadata") or {}).get("uid") not in mine
                and (p.get("metadata") or {}).get("namespace") not in namespaces] + list(own)

    # --- one refresh -------------------------------------------------------------------------------------------

    async def refresh(self, connection: Any, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                      now: float | None = None, pods_scope: str = "all namespaces") -> GpuView:
        """One refresh. `pods`: the pods at hand and `pods_scope` what they cover (a store's scope: `all
        namespaces`, `namespace team-a`...); where that is not the whole cluster the pods are listed here."""
        from app.cluster.connection import ApiError

        now = time.time() if now is None else now
        nodes = list(nodes)
        view = GpuView(scraped_at=self.view.scraped_at)
        pods, complete = await self.cluster_pods(connection, list(pods), pods_scope, view)
        if self.prometheus is not None:
            await self._from_prometheus(view, nodes, pods, now)
            return view
        inventory_nodes = {(n.get("metadata") or {}).get("name", "") for n in nodes}
        # Every exporter is among the pods when they cover the cluster; else ask the API server for the rest.
        exporters = exporter_nodes(p for p in pods if is_exporter(p))
        if complete:
            self._exporters = dict(exporters)
        elif not inventory_nodes <= set(exporters):
            exporters = {**await self.discover(connection), **exporters}
            view.discovery_forbidden, view.discovery_error = self._discovery_refused, self._discovery_failed
        texts: dict[str, str] = {}
        failures: dict[str, tuple[str, str]] = {}  # node -> (state, message)
        # the nodes read longest ago (or never) first: a round cut short by the deadline reaches the others next time
        targets = sorted((n for n in inventory_nodes if n in exporters),
                         key=lambda n: (self._last_good.get(n, (0.0,))[0], n))
        if targets:
            semaphore = asyncio.Semaphore(self.concurrency)

            async def one(name: str) -> None:
                namespace, pod = exporters[name]
                async with semaphore:
                    try:
                        texts[name] = await scrape(connection, namespace, pod, self.timeout)
                    except ApiError as exc:
                        failures[name] = ("forbidden" if exc.status == 403 else "error", str(exc))
                        if exc.status == 403:
                            view.forbidden = str(exc)
                        elif exc.status == 404:  # the exporter pod went away: look again next time
                            self._next_discovery = 0.0
                            self._exporters.pop(name, None)
                    except MetricsTooLarge as exc:
                        failures[name] = ("error", str(exc))

            tasks = [asyncio.ensure_future(one(name)) for name in targets]
            done, pending = await asyncio.wait(tasks, timeout=self.deadline)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()  # a bug in one scrape is the refresh's failure, as before
            for name in targets:
                if name not in texts and name not in failures:
                    failures[name] = ("error", f"no answer this round (all scrapes together may take "
                                               f"{self.deadline:g} s)")
        await asyncio.to_thread(self._build, view, nodes, pods, exporters, texts, failures, now)
        return view

    def _build(self, view: GpuView, nodes: list[Mapping[str, Any]], pods: list[Mapping[str, Any]],
               exporters: Mapping[str, tuple[str, str]], texts: Mapping[str, str],
               failures: Mapping[str, tuple[str, str]], now: float) -> None:
        """The pure part of a refresh (parse, join, remember), run off the event loop."""
        started = time.thread_time()
        inventory = allocation(nodes, pods)
        by_name = pod_index(pods)
        view.nodes = sorted(inventory.values(), key=lambda n: n.name)
        view.exporters = sum(1 for n in inventory if n in exporters)
        fresh: list[Device] = []
        for node in view.nodes:
            if node.name in exporters:
                namespace, pod = exporters[node.name]
                node.exporter = f"{namespace}/{pod}"
            if node.name in texts:
                result = self.parser.parse(texts[node.name])
                view.malformed += result.malformed
                node.metrics_state = "ok"
                node.devices = join(node, result.series, by_name)
                fresh.extend(node.devices)
                self._last_good[node.name] = (now, node.devices)
                continue
            state, error = failures.get(node.name, ("no-exporter", ""))
            node.metrics_state, node.metrics_error = state, error
            node.devices = self._stale_devices(node, now) or join(node, None, by_name)
        for name in [n for n, (when, _) in self._last_good.items() if now - when > STALE_GRACE_SECONDS]:
            del self._last_good[name]
        if texts:
            view.scraped_at = now
        self._remember(fresh, now)
        self.view = view
        self.build_cpu_seconds = time.thread_time() - started

    def _stale_devices(self, node: NodeGpus, now: float) -> list[Device] | None:
        """A node read before whose scrape fails now keeps its last devices for a while, marked stale."""
        last = self._last_good.get(node.name)
        if last is None or node.metrics_state == "forbidden" or now - last[0] > STALE_GRACE_SECONDS:
            return None
        node.stale_seconds = now - last[0]
        node.metrics_state = "stale"
        if not node.metrics_error:
            node.metrics_error = "its dcgm-exporter is gone"
        return last[1]

    async def _from_prometheus(self, view: GpuView, nodes: list[Mapping[str, Any]],
                               pods: list[Mapping[str, Any]], now: float) -> None:
        from app.metrics.prometheus import PrometheusError

        view.source = "prometheus"
        series: list[Series] = []
        history: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        try:
            series = await self.prometheus.series()
        except PrometheusError as exc:
            view.discovery_error = str(exc)
        else:
            if not self._seeded:
                self._seeded = True  # one try: an empty or failed history is not asked for again
                try:
                    history = await self.prometheus.activity_history(self.idle_minutes, self.poll_seconds)
                except PrometheusError as exc:
                    view.history_error = str(exc)
        await asyncio.to_thread(self._build_prometheus, view, nodes, pods, series, history, now)

    def _build_prometheus(self, view: GpuView, nodes: list[Mapping[str, Any]], pods: list[Mapping[str, Any]],
                          series: list[Series], history: Mapping[tuple[str, str, str], list[tuple[float, float]]],
                          now: float) -> None:
        inventory = allocation(nodes, pods)
        by_name = pod_index(pods)
        view.nodes = sorted(inventory.values(), key=lambda n: n.name)
        pod_nodes = {pod: node for node, (_, pod) in exporter_nodes(p for p in pods if is_exporter(p)).items()}
        by_node: dict[str, list[Series]] = {}
        for item in series:
            node = series_node(item.labels, inventory, pod_nodes)
            if node is not None:
                by_node.setdefault(node, []).append(item)
        view.exporters = len(by_node)
        fresh: list[Device] = []
        for node in view.nodes:
            found = by_node.get(node.name)
            node.metrics_state = "ok" if found else "no-exporter"
            node.devices = join(node, found, by_name)
            if found:
                fresh.extend(node.devices)
        if by_node:
            view.scraped_at = now
        if history:
            self._seed(view, by_name, {(series_node({"hostname": host}, inventory, pod_nodes) or host, uuid, gi): points
                              for (host, uuid, gi), points in history.items()})
        self._remember(fresh, now)
        self.view = view

    def _seed(self, view: GpuView, pods: Mapping[str, Mapping[str, Any]],
              history: Mapping[tuple[str, str, str], list[tuple[float, float]]]) -> None:
        """Sparklines and idle clocks from Prometheus's memory of the last `idle_minutes`. The history is the
        device's, not its holder's: an idle clock starts no earlier than the holder pod did (a GPU idle and free
        for 40 minutes, given to a pod a minute ago, has been wasted for a minute)."""
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
                started = pod_started(pods.get(f"{device.holder.namespace}/{device.holder.pod}"))
                if since is not None and started is not None:
                    since = max(since, started)
                if since is not None:
                    self.idle.start(device, since)

    def _remember(self, devices: list[Device], now: float) -> None:
        """History and idle clocks of the devices read in this refresh; those unseen for FORGET_SECONDS go."""
        for device in devices:
            if device.util_percent is None:
                continue
            key = device.key
            history = self._history.get(key)
            if history is None or now - self._history_seen.get(key, now) > self.forget_seconds:
                history = self._history[key] = deque(maxlen=self._history_len)
            history.append(device.util_percent)
            self._history_seen[key] = now
            device.history = tuple(history)
        for key in [k for k, seen in self._history_seen.items() if now - seen > self.forget_seconds]:
            del self._history_seen[key]
            self._history.pop(key, None)
        self.idle.update(devices, now)


def pod_started(pod: Mapping[str, Any] | None) -> float | None:
    """When a pod started (its `status.startTime`, else its creation), as a Unix time; None when unknown."""
    if pod is None:
        return None
    stamp = (pod.get("status") or {}).get("startTime") or (pod.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_index(pods: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """namespace/name -> pod."""
    return {(p.get("metadata") or {}).get("namespace", "") + "/" + (p.get("metadata") or {}).get("name", ""): p
            for p in pods}


def series_node(labels: Mapping[str, str], inventory: Mapping[str, Any], exporter_pods: Mapping[str, str]) -> str | None:
    """The node a Prometheus series belongs to: a `node`-like label from service discovery, else its
    `hostname`/`Hostname` when that is a node's name, else the node of the exporter pod it names (an exporter without
    NODE_NAME puts its pod's name in `Hostname`)."""
    for candidate in (labels.get("__node"), labels.get("hostname"), labels.get("Hostname")):
        if candidate and candidate in inventory:
            return candidate
    for candidate in (labels.get("hostname"), labels.get("Hostname"), labels.get("__exporter_pod")):
        if candidate and candidate in exporter_pods:
            return exporter_pods[candidate]
    return None


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
    labels them with its pod's hostname, not the node's), Prometheus series were matched by `series_node`.
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
    holders: list[Holder] = []
    for namespace, name in s.pods or ([s.pod] if s.pod else []):
        pod = pods.get(f"{namespace}/{name}")
        if pod is not None and is_exporter(pod):
            continue  # a Prometheus target label naming the exporter itself, not a holder
        holders.append(holder_of(pod) if pod is not None else Holder(namespace, name, "Pod", name))
    model = s.labels.get("modelName") or node.model.replace("-", " ")
    return Device(node=node.name, gpu=s.gpu, uuid=s.uuid, model=model, mig_profile=profile, gi_id=s.gi_id,
                  util_percent=figures.util_percent, mem_used_mib=figures.mem_used_mib,
                  mem_total_mib=figures.mem_total_mib, power_w=figures.power_w, temp_c=figures.temp_c,
                  xid=figures.xid, holder=holders[0] if holders else None, sharers=tuple(holders[1:]))


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
