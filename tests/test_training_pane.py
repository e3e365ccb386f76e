"""The Training pane against a real `mlflow server` (own venv, SQLite, 127.0.0.1) that a real numpy training loop logs
to with `log_batch`, beside the simulated cluster: runs list, live follow, overlay, smoothing, the job links both
ways, system metrics, CSV export, and the server failing (down at start, down mid-follow, slow) through a TCP proxy."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import MlflowSettings, Settings
from app.tracking.chart import render_chart
from app.tracking.curves import smooth
from app.tui import HyperdeskApp
from tests.test_tui_navigation import wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")

NS = "hyperpod-ns-nlp"
JOB = f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: NAME, namespace: {NS}, labels: {{kueue.x-k8s.io/queue-name: {NS}-localqueue}}}}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: python:3.11, command: [python, -c, "print(1)"]}}]
"""


def settings(uri: str | None, **mlflow) -> Settings:
    return Settings(all_namespaces=True, mlflow=MlflowSettings(tracking_uri=uri, poll_seconds=0.3,
                                                               timeout_seconds=mlflow.pop("timeout", 3), **mlflow))


def names(pane) -> list[str]:
    table = pane.table
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


def cell(pane, run_name: str, column: str) -> str:
    table = pane.table
    labels = [str(c.label) for c in table.columns.values()]
    for i in range(table.row_count):
        row = table.get_row_at(i)
        if str(row[1]) == run_name:
            return str(row[labels.index(column)])
    raise AssertionError(f"no row {run_name}")


def cursor_to(pane, run_name: str) -> None:
    pane.table.move_cursor(row=names(pane).index(run_name), animate=False)


def chart_state(pane) -> str:
    return str(pane.query_one("#training-state").render())


def history_len(pane, run_id: str, key: str = "loss") -> int:
    history = pane.tracker.history(run_id, key) if pane.tracker else None
    return len(history) if history else 0


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


async def test_runs_follow_overlay_smoothing_and_job_links(mlflow_server, train, bare_cluster, demo_kubectl) -> None:
    uri = mlflow_server.uri
    live = train(uri, "pane", "sft-live", steps=60, system=True)
    done = train(uri, "pane", "baseline", steps=100, lr=0.01, seed=1, end="FINISHED")
    demo_kubectl(bare_cluster)("create", "-f", "-", stdin=JOB.replace("NAME", "sft-live"))

    app = HyperdeskApp(settings(uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: {"sft-live", "baseline"} <= set(names(pane)), timeout=30)
        await wait_for(pilot, lambda: cell(pane, "sft-live", "JOB").startswith("sft-live ("), timeout=20)
        assert cell(pane, "sft-live", "STATUS") == "RUNNING" and cell(pane, "baseline", "STATUS") == "FINISHED"
        assert cell(pane, "baseline", "JOB") == ""
        assert cell(pane, "sft-live", "STEP") == "59"
        assert "loss=" in cell(pane, "sft-live", "METRICS") and "lr=0.05" in cell(pane, "sft-live", "PARAMS")
        assert "live" not in chart_state(pane) or "runs, updated" in chart_state(pane)

        # One run: its loss, drawn.
        cursor_to(pane, "sft-live")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, live) == 60, timeout=20)
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label == "loss" and not line.faint for line in chart.spec.lines))
        history = pane.tracker.history(live, "loss")

        # It follows: the loop trains on, the chart gains the new steps (appended to the same history).
        train(uri, "pane", "sft-live", steps=40, start=60, run_id=live, system=True)
        await wait_for(pilot, lambda: history_len(pane, live) == 100, timeout=20)
        assert pane.tracker.history(live, "loss") is history and history.steps == list(range(100))
        await wait_for(pilot, lambda: cell(pane, "sft-live", "STEP") == "99")
        lines = {line.label: line for line in chart.spec.lines if not line.faint}
        assert list(lines["loss"].xs)[-1] == 99

        # Smoothing: the smoothed line is the time-weighted EMA of the raw one, drawn over it.
        weight_before = pane.smoothing
        await pilot.press("plus")
        assert pane.smoothing == weight_before + 1
        from app.screens.training import SMOOTHING

        raw = [line for line in chart.spec.lines if line.faint and line.label == "loss"]
        smoothed = [line for line in chart.spec.lines if not line.faint and line.label == "loss"]
        assert len(raw) == 1 and len(smoothed) == 1
        assert list(smoothed[0].ys) == smooth(history.steps, history.values, SMOOTHING[pane.smoothing])
        assert list(smoothed[0].ys) != history.values
        assert f"smoothing {SMOOTHING[pane.smoothing]:g}" in chart.spec.title

        # System metrics get their own chart.
        gpu = pane.query_one("#training-system-gpu")
        await wait_for(pilot, lambda: any("gpu_0_utilization" in line.label for line in gpu.spec.lines))
        assert pane.query_one("#training-system").display

        # The cursor reads exact values.
        await pilot.press("full_stop")
        readout = str(pane.query_one("#training-readout").render())
        assert f"loss={history.values[-1]:.4g}" in readout and "(step 99)" in readout

        # Overlay: both runs marked, one line each, with a legend.
        pane.table.move_cursor(row=0)
        await pilot.press("space", "space", "enter")
        await wait_for(pilot, lambda: history_len(pane, done) == 100, timeout=20)
        await wait_for(pilot, lambda: {"sft-live loss", "baseline loss", "sft-live eval_loss"}
                       <= {line.label for line in chart.spec.lines})
        assert not any(line.faint for line in chart.spec.lines)  # overlaid runs: smoothed lines only
        drawn = render_chart(chart.spec, 160, 30)
        assert "sft-live" in drawn and "baseline" in drawn

        # A metric one of the runs lacks: said, not drawn, not an error.
        pane.metrics = ["system/gpu_0_utilization_percentage"]
        pane.chart_runs(pane.charted)
        await wait_for(pilot, lambda: "baseline: no system/gpu_0_utilization_percentage"
                       in str(pane.query_one("#training-readout").render()))
        pane.metrics = []
        pane.chart_runs(pane.charted)

        # Export: the charted data as CSV.
        await pilot.press("ctrl+s")
        exported = list((Path.home() / "hyperdesk-curves").glob("*.csv"))
        assert len(exported) == 1
        rows = list(csv.reader(exported[0].open()))
        assert rows[0] == ["run", "run_id", "metric", "step", "timestamp_ms", "value"]
        assert sum(1 for r in rows if r[0] == "sft-live" and r[2] == "loss") == 100

        # Run -> job: `j` opens the Jobs pane on it; job -> run: `t` there comes back charting it.
        pane.table.marked.clear()
        cursor_to(pane, "sft-live")
        await pilot.press("j")
        assert app.active_pane == "jobs"
        assert app.pane("jobs").table.cursor_key == f"jobs/{NS}/sft-live"
        pane.charted = []
        await pilot.press("t")
        assert app.active_pane == "training"
        await wait_for(pilot, lambda: pane.charted == [live])


async def test_server_down_at_start_then_back(mlflow_server, mlflow_proxy, train, bare_cluster) -> None:
    train(mlflow_server.uri, "faults", "early-run", steps=20, end="FINISHED")
    mlflow_proxy.down()
    app = HyperdeskApp(settings(mlflow_proxy.uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "unreachable" in chart_state(pane), timeout=20)
        assert "retrying" in chart_state(pane) and pane.table.row_count == 0
        # The rest of the app does not wait on MLflow: the cluster connects, other panes switch.
        await wait_for(pilot, lambda: app.health.state == "connected", timeout=20)
        await pilot.press("2")
        assert app.active_pane == "jobs"
        await pilot.press("4")
        mlflow_proxy.up()
        await wait_for(pilot, lambda: "early-run" in names(pane), timeout=20)
        assert "runs, updated" in chart_state(pane)


async def test_down_mid_follow_keeps_the_last_data_and_recovers(mlflow_server, mlflow_proxy, train) -> None:
    run_id = train(mlflow_server.uri, "faults", "followed", steps=30)
    app = HyperdeskApp(settings(mlflow_proxy.uri), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "followed" in names(pane), timeout=20)
        cursor_to(pane, "followed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, run_id) == 30, timeout=20)
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label == "loss" for line in chart.spec.lines))

        mlflow_proxy.down()
        await wait_for(pilot, lambda: "unreachable" in chart_state(pane), timeout=20)
        assert "Showing the last data" in chart_state(pane)
        assert "followed" in names(pane) and history_len(pane, run_id) == 30
        assert any(line.label == "loss" for line in chart.spec.lines)  # the chart stays

        train(mlflow_server.uri, "faults", "followed", steps=20, start=30, run_id=run_id)
        mlflow_proxy.up()
        await wait_for(pilot, lambda: history_len(pane, run_id) == 50, timeout=20)
        await wait_for(pilot, lambda: "runs, updated" in chart_state(pane))


async def test_a_slow_server_is_shown_and_the_ui_stays_responsive(mlflow_server, mlflow_proxy, train) -> None:
    train(mlflow_server.uri, "faults", "slow-run", steps=10, end="FINISHED")
    app = HyperdeskApp(settings(mlflow_proxy.uri, timeout=1), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "slow-run" in names(pane), timeout=20)
        mlflow_proxy.slow(2.5)
        await wait_for(pilot, lambda: "is slow" in chart_state(pane), timeout=20)
        # While requests hang in the proxy, keys still work: the polls wait in a thread, not on the screen.
        await pilot.press("2")
        assert app.active_pane == "jobs"
        await pilot.press("4")
        assert app.active_pane == "training" and "slow-run" in names(pane)
        mlflow_proxy.up()
        await wait_for(pilot, lambda: "runs, updated" in chart_state(pane), timeout=20)


async def test_gaps_are_counted_and_a_job_without_a_run_says_so(mlflow_server, train, bare_cluster,
                                                                demo_kubectl) -> None:
    run_id = train(mlflow_server.uri, "bad", "gappy", steps=80, bad={10: "nan", 11: "inf", 50: "-inf"}, end="FAILED")
    demo_kubectl(bare_cluster)("create", "-f", "-", stdin=JOB.replace("NAME", "no-run-job"))
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "gappy" in names(pane), timeout=20)
        cursor_to(pane, "gappy")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, run_id) == 80, timeout=20)
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label == "loss (3 gaps)" for line in chart.spec.lines))
        assert "gappy loss: 3 NaN/inf values drawn as gaps" in str(pane.query_one("#training-readout").render())
        assert cell(pane, "gappy", "STATUS") == "FAILED"

        await pilot.press("2")
        jobs = app.pane("jobs").table
        await wait_for(pilot, lambda: jobs.row_count == 1, timeout=20)
        await pilot.press("t")
        await wait_for(pilot, lambda: any("no MLflow run for job" in n.message for n in app._notifications))


async def test_tracking_uri_from_a_cluster_configmap(mlflow_server, train, bare_cluster, demo_kubectl) -> None:
    train(mlflow_server.uri, "published", "found-through-configmap", steps=5, end="FINISHED")
    demo_kubectl(bare_cluster)("create", "configmap", "hyperdesk-mlflow", "-n", "kube-system",
                               f"--from-literal=tracking_uri={mlflow_server.uri}")
    app = HyperdeskApp(settings(None), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "found-through-configmap" in names(pane), timeout=30)
        assert "from configmap kube-system/hyperdesk-mlflow" in chart_state(pane)


async def test_no_tracking_uri_anywhere_is_explained(isolated_home) -> None:
    app = HyperdeskApp(settings(None), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "No MLflow tracking server configured" in chart_state(pane))
        assert "MLFLOW_TRACKING_URI" in chart_state(pane)
