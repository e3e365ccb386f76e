"""Prometheus as the source of the figures: a real Prometheus scrapes the simulated dcgm-exporters through the API
server's proxy; the GPU view read by PromQL matches a direct scrape, and its history fills the sparklines and the
idle clocks on the first refresh."""

from __future__ import annotations

import time

from app.metrics.collector import GpuCollector
from app.metrics.prometheus import PrometheusSource
from tests.plugins.gpus import collect
from tests.plugins.tui import closed_port


def test_figures_and_history_from_prometheus(hyperpod_cluster, prometheus_server):
    direct = collect(hyperpod_cluster)
    url = prometheus_server(hyperpod_cluster, [n.exporter for n in direct.nodes])
    source = PrometheusSource(url)

    deadline = time.monotonic() + 60
    while True:  # a scraped sample becomes queryable only after a few seconds
        view = collect(hyperpod_cluster, collector=GpuCollector(prometheus=source, poll_seconds=1.0))
        notebook = next((d for d in view.devices if d.holder and d.holder.name == "alice-notebook"), None)
        if view.exporters == 8 and notebook is not None and len(notebook.history) >= 4:
            break
        assert time.monotonic() < deadline, view.state_line()
        time.sleep(1)

    assert view.source == "prometheus" and view.state_line() == ""
    assert {d.key for d in view.devices} == {d.key for d in direct.devices}
    wanted = {d.key: d for d in direct.devices}
    for device in view.devices:
        twin = wanted[device.key]
        assert (device.uuid, device.mig_profile, device.gi_id) == (twin.uuid, twin.mig_profile, twin.gi_id)
        assert (device.holder and device.holder.pod) == (twin.holder and twin.holder.pod)
        assert device.util_percent == twin.util_percent and device.mem_used_mib == twin.mem_used_mib
    # the first refresh already knows the last minutes: a full sparkline, and how long the notebook has idled
    # (a first direct scrape can only say 0: it has seen one reading)
    assert notebook.idle_seconds >= 1.0
    assert next(d for d in direct.devices if d.key == notebook.key).idle_seconds == 0
    training = next(d for d in view.devices if d.holder and d.holder.kind == "HyperPodPyTorchJob")
    assert len(training.history) >= 4 and min(training.history) > 50 and training.idle_seconds is None


def test_prometheus_unreachable_keeps_the_allocation(hyperpod_cluster):
    source = PrometheusSource(f"http://127.0.0.1:{closed_port()}", timeout=2)
    view = collect(hyperpod_cluster, collector=GpuCollector(prometheus=source))
    assert "cannot reach Prometheus" in view.state_line()
    assert any(d.holder and d.holder.name == "llama3-70b-pretrain" for d in view.devices)
    assert all(d.util_percent is None for d in view.devices)
