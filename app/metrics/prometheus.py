"""A Prometheus HTTP API as the source of the live figures (e.g. the HyperPod observability add-on's Prometheus).

The same fields as a direct scrape, by PromQL: one instant query for every field the view reads, whose vectors
become the same `Series` a dcgm-exporter scrape gives (so the join is the same), and, on first open, one range query
for the activity of the last minutes: the sparklines start full and an idle notebook shows how long it has been
idle at once, instead of from the moment the pane opened.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.metrics.dcgm import GR_ACTIVE, UTIL, WANTED, Series

DROPPED = frozenset({"__name__", "job", "instance"})
"""Labels Prometheus adds itself; the rest identify the device as the exporter named it."""


class PrometheusError(Exception):
    pass


class PrometheusSource:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        import aiohttp

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.get(self.url + path, params=params) as response:
                    body = await response.json(content_type=None)
        except asyncio.TimeoutError:
            raise PrometheusError(f"Prometheus at {self.url} did not answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        except ValueError:
            raise PrometheusError(f"Prometheus at {self.url} answered something that is not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise PrometheusError(f"Prometheus at {self.url}: {error or 'unexpected answer'}")
        return body.get("data") or {}

    async def series(self) -> list[Series]:
        """The latest value of every field the view reads, grouped into one Series per device."""
        names = "|".join(sorted(WANTED))
        data = await self._get("/api/v1/query", {"query": f'{{__name__=~"{names}"}}'})
        grouped: dict[tuple[tuple[str, str], ...], Series] = {}
        for item in data.get("result") or []:
            metric = item.get("metric") or {}
            try:
                value = float((item.get("value") or [0, "nan"])[1])
            except (TypeError, ValueError):
                continue
            labels = {k: v for k, v in metric.items() if k not in DROPPED}
            key = tuple(sorted(labels.items()))
            entry = grouped.get(key)
            if entry is None:
                entry = grouped[key] = Series(labels)
            if value == value:  # not NaN
                entry.values[metric.get("__name__", "")] = value
        return list(grouped.values())

    async def activity_history(self, minutes: float, step: float) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
        """(hostname, UUID, GPU_I_ID or "") -> [(unix time, activity %)] over the last `minutes`, oldest first:
        DCGM_FI_DEV_GPU_UTIL on whole GPUs, DCGM_FI_PROF_GR_ENGINE_ACTIVE x 100 on MIG slices."""
        end = time.time()
        query = (f'{UTIL}{{GPU_I_PROFILE=""}} or ({GR_ACTIVE}{{GPU_I_PROFILE!=""}} * 100)')
        data = await self._get("/api/v1/query_range", {"query": query, "start": f"{end - minutes * 60:.3f}",
                                                      "end": f"{end:.3f}", "step": f"{max(step, 1.0):g}"})
        history: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        for item in data.get("result") or []:
            metric = item.get("metric") or {}
            host = metric.get("hostname") or metric.get("Hostname") or ""
            key = (host, metric.get("UUID", ""), metric.get("GPU_I_ID", ""))
            points = history.setdefault(key, [])
            for stamp, value in item.get("values") or []:
                try:
                    points.append((float(stamp), float(value)))
                except (TypeError, ValueError):
                    continue
            points.sort()
        return history
