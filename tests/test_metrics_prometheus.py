"""Prometheus as the source of the figures: a real Prometheus scrapes the simulated dcgm-exporters through the API
server's proxy; the GPU view read by PromQL matches a direct scrape, and its history fills the sparklines and the
idle clocks on the first refresh."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse

import pytest

from app.metrics.collector import GpuCollector
from app.metrics.prometheus import PrometheusSource
from tests.plugins.gpus import collect
from tests.plugins.tui import closed_port


@pytest.mark.parametrize("service_discovery", [False, True], ids=["static", "service-discovery"])
def test_figures_and_history_from_prometheus(hyperpod_cluster, prometheus_server, service_discovery):
    direct = collect(hyperpod_cluster)
    url = prometheus_server(hyperpod_cluster, [n.exporter for n in direct.nodes], service_discovery=service_discovery)
    source = PrometheusSource(url)

    deadline = time.monotonic() + 60
    while True:  # a scraped sample becomes queryable only after a few seconds
        view = collect(hyperpod_cluster, collector=GpuCollector(prometheus=source, poll_seconds=1.0))
        notebook = next((d for d in view.devices if d.holder and d.holder.name == "alice-notebook"), None)
        if view.exporters == 8 and notebook is not None and all(len(d.history) >= 4 for d in view.devices):
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
    # (a first direct scrape cannot say: it has seen one reading)
    assert notebook.idle_seconds >= 1.0
    assert next(d for d in direct.devices if d.key == notebook.key).idle_seconds is None
    training = next(d for d in view.devices if d.holder and d.holder.kind == "HyperPodPyTorchJob")
    assert len(training.history) >= 4 and min(training.history) > 50 and training.idle_seconds is None


def test_prometheus_unreachable_keeps_the_allocation(hyperpod_cluster):
    source = PrometheusSource(f"http://127.0.0.1:{closed_port()}", timeout=2)
    view = collect(hyperpod_cluster, collector=GpuCollector(prometheus=source))
    assert "cannot reach Prometheus" in view.state_line()
    assert any(d.holder and d.holder.name == "llama3-70b-pretrain" for d in view.devices)
    assert all(d.util_percent is None for d in view.devices)


class _GuardedPrometheus(http.server.BaseHTTPRequestHandler):
    """A Prometheus behind an auth proxy: an HTML 401 page without the bearer token, an empty answer with it."""

    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.paths.append(self.path)
        if self.headers.get("Authorization") != "Bearer tok-123":
            body, status, kind = b"<html><body>401 Authorization Required</body></html>", 401, "text/html"
        else:
            body, status, kind = b'{"status":"success","data":{"resultType":"vector","result":[]}}', 200, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def guarded_prometheus():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GuardedPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_errors_say_the_status_and_never_the_credentials(hyperpod_cluster, guarded_prometheus, tmp_path):
    where = guarded_prometheus
    for url in (f"http://alice:s3cret-pass@{where}/?token=s3cret-pass", f"http://alice:s3cret-pass@{where}"):
        line = collect(hyperpod_cluster, collector=GpuCollector(prometheus=PrometheusSource(url, timeout=5))).state_line()
        assert f"Prometheus at http://{where}" in line and "answered HTTP 401 (unauthorized)" in line
        assert "s3cret" not in line and "alice" not in line
    closed = f"http://alice:s3cret-pass@127.0.0.1:{closed_port()}"
    line = collect(hyperpod_cluster, collector=GpuCollector(prometheus=PrometheusSource(closed, timeout=5))).state_line()
    assert "cannot reach Prometheus" in line and "s3cret" not in line and "alice" not in line

    token = tmp_path / "token"
    token.write_text("tok-123\n")
    source = PrometheusSource(f"http://{where}", timeout=5, token_file=str(token))
    _GuardedPrometheus.paths.clear()
    collector = GpuCollector(prometheus=source, idle_minutes=30)
    view = collect(hyperpod_cluster, collector=collector)
    assert "401" not in view.state_line() and "Prometheus has no dcgm-exporter series" in view.state_line()
    collect(hyperpod_cluster, collector=collector)
    # the history (over idle_minutes) is asked for once, even when it comes back empty
    ranges = [p for p in _GuardedPrometheus.paths if p.startswith("/api/v1/query_range")]
    assert len(ranges) == 1 and len(_GuardedPrometheus.paths) == 3
    window = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(ranges[0]).query))
    assert float(window["end"]) - float(window["start"]) == pytest.approx(30 * 60, abs=1)
    missing = PrometheusSource(f"http://{where}", token_file=str(tmp_path / "nope"))
    line = collect(hyperpod_cluster, collector=GpuCollector(prometheus=missing)).state_line()
    assert "cannot read gpus.prometheus_token_file" in line


class _KeepAlivePrometheus(_GuardedPrometheus):
    """The same, over HTTP/1.1: a client that keeps its connection asks every query on it."""

    protocol_version = "HTTP/1.1"
    clients: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.clients.append(self.client_address[1])
        super().do_GET()


def test_one_connection_serves_every_poll_and_a_token_never_goes_out_over_plain_http(tmp_path):
    import asyncio

    from app.metrics.prometheus import PrometheusError

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlivePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    try:
        source = PrometheusSource(f"http://127.0.0.1:{server.server_address[1]}", timeout=5, token_file=str(token))

        async def polls() -> None:
            try:
                for _ in range(3):
                    assert await source.series() == []
            finally:
                await source.close()

        asyncio.run(polls())
        assert len(_KeepAlivePrometheus.clients) == 3 and len(set(_KeepAlivePrometheus.clients)) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    remote = PrometheusSource("http://prometheus.monitoring.example:9090", timeout=5, token_file=str(token))
    with pytest.raises(PrometheusError, match="not sending the token .* over plain http"):
        asyncio.run(remote.series())
