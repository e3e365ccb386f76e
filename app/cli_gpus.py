"""GPUs: the `get gpus` kind (issue #10): one row per GPU or MIG slice, with its live figures and its holder.

`hyperdesk get gpus [-o table|json|yaml] [--idle] [--source dcgm|prometheus|nvml]`. `--source dcgm` reads the
cluster: allocation from the nodes and pods, live figures from each node's dcgm-exporter through the API server's
`pods/proxy`. `--source prometheus` (the default when `gpus.prometheus_url` is set) takes the figures from that
Prometheus instead. `--source nvml` reads this machine's GPUs through NVML. `--idle` keeps the GPUs and slices that are
held by a pod and at or under the idle threshold in this reading (the pane's waste view also knows for how long).

Imports only argparse at module level: `hyperdesk --version` imports this module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

CLI_DEADLINE_SECONDS = 30.0
"""How long `get gpus` waits for all the exporters together; the nodes that have not answered by then are listed
without figures (the pane, which polls again, waits about one poll)."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """`get gpus`'s options; the GPUs area has no subcommand of its own."""
    get = sub.choices["get"]
    get.add_argument("--idle", action="store_const", const=True, default=None,
                     help="gpus: only GPUs and MIG slices held by a pod and idle now")
    get.add_argument("--source", choices=("dcgm", "prometheus", "nvml"), default=None,
                     help="gpus: dcgm (scrape the exporters), prometheus (gpus.prometheus_url; the default when "
                          "set) or nvml (this machine's GPUs)")


async def _gpus(ctx: Any) -> list[dict[str, Any]]:
    from app.get import GetError, _with_cluster

    threshold = ctx.settings.gpus.idle_threshold_percent
    url = ctx.settings.gpus.prometheus_url
    source = ctx.options.get("source") or ("prometheus" if url else "dcgm")
    if source == "prometheus" and not url:
        raise GetError("--source prometheus needs gpus.prometheus_url in the configuration "
                       "(or HYPERDESK_GPUS__PROMETHEUS_URL)", exit_code=2)
    if source == "nvml":
        from app.metrics.nvml import NvmlUnavailable, local_devices

        try:
            devices = local_devices()
        except NvmlUnavailable as exc:
            raise GetError(str(exc)) from None
    else:
        from app.metrics.collector import GpuCollector
        from app.metrics.prometheus import PrometheusSource

        prometheus = (PrometheusSource(url, token_file=ctx.settings.gpus.prometheus_token_file)
                      if source == "prometheus" and url else None)

        async def work(connection: Any, discovery: Any) -> list[Any]:
            from app.cluster.connection import ApiError

            nodes = await connection.request("GET", "/api/v1/nodes")
            scope = "all namespaces"
            try:
                pods = await connection.request("GET", "/api/v1/pods")
            except ApiError as exc:
                # a namespace-scoped user (a HyperPod team's RBAC): the holders of its namespace, said so
                if exc.status != 403 or ctx.namespace is None:
                    raise
                pods = await connection.request("GET", f"/api/v1/namespaces/{ctx.namespace}/pods")
                scope = f"namespace {ctx.namespace}"
            collector = GpuCollector(threshold, prometheus=prometheus, idle_minutes=ctx.settings.gpus.idle_minutes,
                                     deadline=CLI_DEADLINE_SECONDS)
            try:
                view = await collector.refresh(connection, (nodes or {}).get("items") or [],
                                               (pods or {}).get("items") or [], pods_scope=scope)
            finally:
                if prometheus is not None:
                    await prometheus.close()
            note = view.state_line()
            if note:
                print(f"hyperdesk: warning: {note}", file=sys.stderr)
            return view.devices

        devices = await _with_cluster(ctx, work)
    if ctx.options.get("idle"):
        devices = [d for d in devices if d.holder is not None and d.util_percent is not None
                   and d.util_percent <= threshold]
    return [d.as_dict() for d in devices]


def _cells(item: dict[str, Any]) -> dict[str, Any]:
    def number(value: Any, unit: str = "") -> str:
        return "" if value is None else f"{value:.0f}{unit}"

    memory = ""
    if item["mem_total_mib"] is not None:
        used = item["mem_used_mib"] or 0
        memory = f"{used / 1024:.1f}/{item['mem_total_mib'] / 1024:.0f}Gi"
    holder = f"{item['namespace']}/{item['pod']}" if item["pod"] else ""
    if item["holder_kind"] and item["holder_kind"] != "Pod":
        holder += f" ({item['holder_kind']} {item['holder_name']})"
    return {**item, "gpu": "?" if item["gpu"] is None else item["gpu"], "mig": item["mig_profile"] or "",
            "util": number(item["util_percent"], "%"), "memory": memory, "power": number(item["power_w"], "W"),
            "temp": number(item["temp_c"], "C"), "holder": holder}


def register_kinds() -> None:
    from app.get import Kind, register

    register(Kind(
        name="gpus",
        aliases=("gpu",),
        fetch=_gpus,
        columns=(("NODE", "node"), ("GPU", "gpu"), ("MIG", "mig"), ("MODEL", "model"), ("UTIL", "util"),
                 ("MEMORY", "memory"), ("POWER", "power"), ("TEMP", "temp"), ("XID", "xid"), ("HOLDER", "holder")),
        description="every GPU and MIG slice of the cluster, with live figures and the pod holding it",
        display=_cells,
        options=("idle", "source"),
    ))
