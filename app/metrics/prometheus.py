"""A Prometheus HTTP API as the source of the live figures (e.g. the HyperPod observability add-on's Prometheus).

The same fields as a direct scrape, by PromQL: one instant query for every field the view reads, whose vectors
become the same `Series` a dcgm-exporter scrape gives (so the join is the same), and, on first open, one range query
for the activity of the last `idle_minutes`: the sparklines start full and an idle notebook shows how long it has
been idle at once, instead of from the moment the pane opened.

Scraped through Kubernetes service discovery (a ServiceMonitor), a series carries the exporter's own target labels
(`pod`, `namespace`, `container`, `service`, `endpoint`, often `node`) and dcgm-exporter's pod labels renamed
`exported_pod`/`exported_namespace`/`exported_container`: the exported ones name the holder, the target ones are
dropped. A bearer token (`gpus.prometheus_token_file`) is sent when configured; a Prometheus behind SigV4 (Amazon
Managed Service for Prometheus) is reached through a signing proxy on 127.0.0.1 (see README).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import urllib.parse
from pathlib import Path
from typing import Any

from app.metrics.dcgm import GR_ACTIVE, UTIL, WANTED, Series, device_key

TARGET_LABELS = frozenset({"__name__", "job", "instance", "service", "endpoint", "prometheus", "prometheus_replica",
                           "pod_template_hash", "controller_revision_hash", "pod_template_generation"})
"""Labels Prometheus (or its service discovery) adds itself; the rest identify the device as the exporter named it."""
NODE_LABELS = ("node", "kubernetes_node", "exported_node")
"""Where service discovery relabelling commonly puts the exporter pod's node."""


class PrometheusError(Exception):
    pass


def redact(url: str) -> str:
    """The URL without user:password (and without a query string, which may carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def device_labels(metric: dict[str, str]) -> dict[str, str]:
    """A Prometheus series' labels as the exporter printed them: target labels dropped, `exported_*` restored."""
    labels = {k: v for k, v in metric.items() if k not in TARGET_LABELS}
    if labels.get("exported_pod") or labels.get("exported_namespace"):
        target_pod = labels.get("pod", "")
        for name in ("pod", "namespace", "container"):
            labels.pop(name, None)
            if f"exported_{name}" in labels:
                labels[name] = labels.pop(f"exported_{name}")
        if target_pod:
            labels["__exporter_pod"] = target_pod
    for name in NODE_LABELS:
        if labels.get(name):
            labels["__node"] = labels.pop(name)
            break
    return labels


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PrometheusSource:
    """One Prometheus API; its HTTP session (one connection kept open across polls) lives until `close()`."""

    def __init__(self, url: str, timeout: float = 10.0, token_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.where = redact(self.url)
        self.timeout = timeout
        self.token_file = token_file
        self._session: Any = None
        self._session_loop: Any = None

    async def _client(self) -> Any:
        """The session, made on first use in this event loop (a CLI run, the app's loop)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._session_loop is asyncio.get_running_loop():
            await session.close()

    def _scrub(self, text: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        text = text.replace(self.url, self.where)
        for secret in (parts.password, parts.username):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _headers(self) -> dict[str, str]:
        if not self.token_file:
            return {}
        try:
            token = Path(self.token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise PrometheusError(f"cannot read gpus.prometheus_token_file {self.token_file}: "
                                  f"{exc.strerror or exc}") from None
        if token and urllib.parse.urlsplit(self.url).scheme != "https" and not _loopback(self.url):
            raise PrometheusError(f"not sending the token of gpus.prometheus_token_file to {self.where} over plain "
                                  f"http: use an https URL (or a proxy on 127.0.0.1)")
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        import aiohttp

        headers = self._headers()
        session = await self._client()
        try:
            async with session.get(self.url + path, params=params, headers=headers) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
        except asyncio.TimeoutError:
            raise PrometheusError(f"Prometheus at {self.where} did not answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.where}: {self._scrub(str(exc) or type(exc).__name__)}") from None
        error = body.get("error") if isinstance(body, dict) else None
        if status in (401, 403):
            hint = "check gpus.prometheus_token_file" if status == 401 or not self.token_file else "the token is refused"
            raise PrometheusError(f"Prometheus at {self.where} answered HTTP {status} "
                                  f"({'unauthorized' if status == 401 else 'forbidden'}): {hint}")
        if body is None:
            raise PrometheusError(f"Prometheus at {self.where} answered HTTP {status} with something that is not "
                                  f"JSON (is gpus.prometheus_url the API's base URL?)")
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.where} answered HTTP {status}: "
                                  f"{self._scrub(str(error)) if error else 'unexpected answer'}")
        return body.get("data") or {}

    async def series(self) -> list[Series]:
        """The latest value of every field the view reads, grouped into one Series per device (its lines merged,
        whatever extra labels each carries: `err_code` on XID errors, one line per pod on a time-sliced GPU)."""
        names = "|".join(sorted(WANTED))
        data = await self._get("/api/v1/query", {"query": f'{{__name__=~"{names}"}}'})
        grouped: dict[Any, Series] = {}
        for item in data.get("result") or []:
            metric = item.get("metric") or {}
            try:
                value = float((item.get("value") or [0, "nan"])[1])
            except (TypeError, ValueError):
                continue
            labels = device_labels(metric)
            key = device_key(labels)
            if key is None:
                continue
            key = (labels.get("__node", ""), *key)
            entry = grouped.get(key)
            if entry is None:
                entry = grouped[key] = Series(labels)
            entry.add_pod(labels)
            if value == value:  # not NaN
                entry.values[metric.get("__name__", "")] = value
        return list(grouped.values())

    async def activity_history(self, minutes: float, step: float) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
        """(node or hostname, UUID, GPU_I_ID or "") -> [(unix time, activity %)] over the last `minutes`, oldest
        first: DCGM_FI_DEV_GPU_UTIL on whole GPUs, DCGM_FI_PROF_GR_ENGINE_ACTIVE x 100 on MIG slices. At most
        about 600 points a series (the step grows with the window)."""
        end = time.time()
        step = max(step, 1.0, minutes * 60 / 600)
        by = "max by (Hostname, hostname, UUID, GPU_I_ID, node, kubernetes_node, exported_node)"
        query = f'{by} ({UTIL}{{GPU_I_PROFILE=""}}) or {by} ({GR_ACTIVE}{{GPU_I_PROFILE!=""}} * 100)'

        data = await self._get("/api/v1/query_range", {"query": query, "start": f"{end - minutes * 60:.3f}",
                                                      "end": f"{end:.3f}", "step": f"{step:g}"})
        history: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        for item in data.get("result") or []:
            labels = device_labels(item.get("metric") or {})
            host = labels.get("__node") or labels.get("hostname") or labels.get("Hostname") or ""
            key = (host, labels.get("UUID", ""), labels.get("GPU_I_ID", ""))
            points = history.setdefault(key, [])
            for stamp, value in item.get("values") or []:
                try:
                    points.append((float(stamp), float(value)))
                except (TypeError, ValueError):
                    continue
            points.sort()
        return history
