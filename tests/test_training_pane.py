"""The Training pane against a real `mlflow server` (own venv, SQLite, 127.0.0.1) that a real numpy training loop logs
to with `log_batch`, beside the simulated cluster: runs list, live follow, overlay, smoothing, the job links both
ways, system metrics, CSV export, and the server failing (down at start, down mid-follow, slow) through a TCP proxy."""

from __future__ import annotations

import asyncio
import csv
import threading
from pathlib import Path

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import MlflowSettings, Settings
from app.tracking.chart import render_chart
from app.tracking.curves import smooth
from app.tui import HyperdeskApp
from tests.plugins.tui import record_notifications, wait_for

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


async def pick(pilot, key: str, menu: str = "m") -> None:
    """Choose `key` in the metric picker the way a user does: open it, move down to it, enter."""
    from textual.widgets import OptionList

    from app.screens.dialogs import ChoiceScreen

    app = pilot.app
    await pilot.press(menu)
    await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
    options = app.screen.query_one(OptionList)
    ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
    await pilot.press("home", *["down"] * ids.index(key), "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, ChoiceScreen))


def mark(pane, pilot, *run_names: str):
    async def go() -> None:
        for name in run_names:
            cursor_to(pane, name)
            await pilot.press("space")
    return go()


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
    notes = record_notifications(app)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: {"sft-live", "baseline"} <= set(names(pane)), timeout=30)
        await wait_for(pilot, lambda: cell(pane, "sft-live", "JOB").startswith("sft-live ("), timeout=20)
        assert cell(pane, "sft-live", "STATUS") == "RUNNING" and cell(pane, "baseline", "STATUS") == "FINISHED"
        assert cell(pane, "baseline", "JOB") == ""
        assert cell(pane, "sft-live", "STEP") == "59"
        assert "loss=" in cell(pane, "sft-live", "METRICS") and "lr=0.05" in cell(pane, "sft-live", "PARAMS")
        await wait_for(pilot, lambda: "runs, updated" in chart_state(pane))

        # One run: its loss, drawn.
        cursor_to(pane, "sft-live")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, live) == 60, timeout=20)
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label == "loss" and not line.faint for line in chart.spec.lines))
        history = pane.tracker.history(live, "loss")

        # It follows: the loop trains on, the chart gains the new steps (appended to the same history).
        train(uri, "pane", "sft-live", steps=160, start=60, run_id=live, system=True)
        await wait_for(pilot, lambda: history_len(pane, live) == 220, timeout=20)
        assert pane.tracker.history(live, "loss") is history and history.steps == list(range(220))
        await wait_for(pilot, lambda: cell(pane, "sft-live", "STEP") == "219")
        lines = {line.label: line for line in chart.spec.lines if not line.faint}
        assert list(lines["loss"].xs)[-1] == 219

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

        # The cursor reads exact values; `,` moves it left, `c` hides it.
        readout = lambda: str(pane.query_one("#training-readout").render())  # noqa: E731
        await pilot.press("full_stop")
        assert f"loss={history.values[-1]:.4g}" in readout() and "(step 219)" in readout()
        await pilot.press(*["comma"] * 8)
        assert "(step 219)" not in readout() and "step ≈" in readout()
        await pilot.press("c")
        assert "step ≈" not in readout()

        # Zoom to the last 100 steps, then export what the chart shows: those steps, raw and smoothed.
        await pilot.press("z", "z", "z")
        assert "last 100 steps" in chart.spec.title
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any(n.message.startswith("saved ") for n in notes))
        exported = list((Path.home() / "hyperdesk-curves").glob("*.csv"))
        assert len(exported) == 1
        rows = list(csv.reader(exported[0].open()))
        assert rows[0] == ["run", "run_id", "metric", "step", "timestamp_ms", "value", "smoothed"]
        loss_rows = [r for r in rows if r[0] == "sft-live" and r[2] == "loss"]
        assert [int(r[3]) for r in loss_rows] == list(range(119, 220))
        expected = smooth(history.steps, history.values, SMOOTHING[pane.smoothing])
        assert float(loss_rows[-1][6]) == pytest.approx(expected[-1])
        await pilot.press("z")
        assert "last" not in chart.spec.title

        # Log scale and the wall-time axis, by their keys.
        await pilot.press("o")
        assert chart.spec.log_y and "log" in chart.spec.title
        await pilot.press("o", "x")
        assert not chart.spec.log_y and chart.spec.x_label == "wall time (min)"
        assert list(lines["loss"].xs) != list(chart.spec.lines[-1].xs)  # minutes, not steps
        await pilot.press("x")
        assert chart.spec.x_label == "step"

        # Overlay: both runs marked, one line each, with a legend.
        await mark(pane, pilot, "sft-live", "baseline")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, done) == 100, timeout=20)
        await wait_for(pilot, lambda: {"sft-live loss", "baseline loss", "sft-live eval_loss"}
                       <= {line.label for line in chart.spec.lines})
        assert not any(line.faint for line in chart.spec.lines)  # overlaid runs: smoothed lines only
        drawn = render_chart(chart.spec, 160, 30)
        assert "sft-live" in drawn and "baseline" in drawn

        # A metric one of the runs lacks, picked with `m`: said, not drawn, not an error.
        await pick(pilot, "system/gpu_0_utilization_percentage")
        await wait_for(pilot, lambda: "baseline: no system/gpu_0_utilization_percentage" in readout())
        # `m` again charts learning_rate alone; `a` adds eval_loss beside it.
        await pick(pilot, "learning_rate")
        await wait_for(pilot, lambda: chart.spec.title.startswith("learning_rate ·")
                       and {"sft-live", "baseline"} == {line.label for line in chart.spec.lines})
        await pick(pilot, "eval_loss", menu="a")
        await wait_for(pilot, lambda: {"baseline eval_loss", "sft-live learning_rate"}
                       <= {line.label for line in chart.spec.lines})
        assert chart.spec.title.startswith("learning_rate · eval_loss")

        # Run -> job: `j` opens the Jobs pane on it; job -> run: `t` there comes back charting it alone.
        cursor_to(pane, "sft-live")
        await pilot.press("j")
        assert app.active_pane == "jobs"
        assert app.pane("jobs").table.cursor_key == f"jobs/{NS}/sft-live"
        assert len(pane.charted) == 2
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
        # While a request is held in the proxy, keys still work at once: polls wait in a thread, not on the loop
        # (were the loop blocked, a key would wait for the held request, which waits for us: the bound fails).
        mlflow_proxy.hold()
        await wait_for(pilot, lambda: mlflow_proxy.held > 0, timeout=20)
        await asyncio.wait_for(pilot.press("2"), timeout=5)
        assert app.active_pane == "jobs" and mlflow_proxy.held > 0
        await asyncio.wait_for(pilot.press("4"), timeout=5)
        assert app.active_pane == "training" and "slow-run" in names(pane) and mlflow_proxy.held > 0
        mlflow_proxy.up()
        await wait_for(pilot, lambda: "runs, updated" in chart_state(pane), timeout=20)


async def test_a_held_poll_does_not_pile_up_or_block_quitting(mlflow_server, mlflow_proxy, train) -> None:
    train(mlflow_server.uri, "faults", "held-run", steps=10, end="FINISHED")
    # Polls only when asked (`r`) during the test: the follow loop's next round is a minute away.
    app = HyperdeskApp(Settings(all_namespaces=True, mlflow=MlflowSettings(
        tracking_uri=mlflow_proxy.uri, poll_seconds=60, timeout_seconds=30)), kubeconfig=None)
    mlflow_threads = lambda: sum(t.name == "hyperdesk-mlflow" for t in threading.enumerate())  # noqa: E731
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "held-run" in names(pane) and not pane._polling, timeout=20)
        before = pane.polls
        mlflow_proxy.hold()
        await pilot.press("r")
        await wait_for(pilot, lambda: mlflow_proxy.held > 0, timeout=20)
        assert pane._polling and pane.polls == before + 1 and mlflow_threads() == 1
        await pilot.press("r", "r", "r")  # refreshes while that poll hangs: remembered as one more, not started
        await wait_for(pilot, lambda: pane._poll_again)
        assert pane.polls == before + 1 and mlflow_threads() == 1 and mlflow_proxy.held == 1
        # Another thread worker of the app is not starved by the hung poll.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), timeout=5) == 42
        # Released: the held poll ends, the refreshes asked meanwhile run as exactly one more poll, then none.
        mlflow_proxy.up()
        await wait_for(pilot, lambda: not pane._polling, timeout=20)
        assert pane.polls == before + 2 and not pane._poll_again and "runs, updated" in chart_state(pane)
        mlflow_proxy.hold()
        await pilot.press("r")
        await wait_for(pilot, lambda: mlflow_proxy.held > 0, timeout=20)
    # Leaving `run_test` quit the app while the request still hung: nothing waited for it.
    mlflow_proxy.up()


async def test_gaps_are_counted_and_a_job_without_a_run_says_so(mlflow_server, train, bare_cluster,
                                                                demo_kubectl) -> None:
    run_id = train(mlflow_server.uri, "bad", "gappy", steps=80, bad={10: "nan", 11: "inf", 50: "-inf"}, end="FAILED")
    demo_kubectl(bare_cluster)("create", "-f", "-", stdin=JOB.replace("NAME", "no-run-job"))
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
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
        await wait_for(pilot, lambda: any("no MLflow run for job" in n.message for n in notes))


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


async def test_a_run_with_only_system_metrics_and_a_stepless_metric(mlflow_server, train) -> None:
    system_only = train(mlflow_server.uri, "odd", "only-system", steps=30, only_system=True)
    stepless = train(mlflow_server.uri, "odd", "stepless", steps=5, stepless=True)
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: {"only-system", "stepless"} <= set(names(pane)), timeout=20)
        cursor_to(pane, "only-system")
        await pilot.press("enter")
        readout = lambda: str(pane.query_one("#training-readout").render())  # noqa: E731
        await wait_for(pilot, lambda: "no training metrics yet" in readout())
        gpu = pane.query_one("#training-system-gpu")
        await wait_for(pilot, lambda: any("gpu_0_utilization" in line.label for line in gpu.spec.lines))
        assert pane.tracker.history(system_only, "system/gpu_0_utilization_percentage") is not None

        # Logged without a step (all at step 0): every point is kept, and new ones are followed.
        cursor_to(pane, "stepless")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, stepless) == 5, timeout=20)
        train(mlflow_server.uri, "odd", "stepless", steps=3, start=5, run_id=stepless, stepless=True)
        await wait_for(pilot, lambda: history_len(pane, stepless) == 8, timeout=20)
        history = pane.tracker.history(stepless, "loss")
        assert set(history.steps) == {0}
        # Drawn by point index (the axis says so), and smoothed: not eight points stacked at x=0, not a flat line.
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(not line.faint and len(line.ys) == 8 for line in chart.spec.lines))
        from app.screens.training import SMOOTHING

        raw = next(line for line in chart.spec.lines if line.faint)
        smoothed = next(line for line in chart.spec.lines if not line.faint)
        assert list(raw.xs) == list(range(8)) and list(raw.ys) == history.values
        assert "logged without a step" in chart.spec.x_label
        assert list(smoothed.ys) == smooth(list(range(8)), history.values, SMOOTHING[pane.smoothing])
        assert len(set(smoothed.ys)) == 8 and smoothed.ys[-1] != smoothed.ys[0]


async def test_t_while_mlflow_is_down_waits_one_poll_then_gives_up(mlflow_server, mlflow_proxy, train, bare_cluster,
                                                                   demo_kubectl) -> None:
    train(mlflow_server.uri, "faults", "late-job", steps=5, end="FINISHED")
    train(mlflow_server.uri, "faults", "other", steps=5, end="FINISHED")
    demo_kubectl(bare_cluster)("create", "-f", "-", stdin=JOB.replace("NAME", "late-job"))
    mlflow_proxy.down()
    app = HyperdeskApp(settings(mlflow_proxy.uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "unreachable" in chart_state(pane), timeout=20)
        await pilot.press("2")
        jobs = app.pane("jobs").table
        await wait_for(pilot, lambda: jobs.row_count == 1, timeout=20)
        await pilot.press("t")
        messages = lambda: " ".join(n.message for n in notes)  # noqa: E731
        assert "waiting for MLflow" in messages()
        await wait_for(pilot, lambda: "were not charted" in messages(), timeout=20)
        assert pane._pending_job is None
        # When MLflow answers again the user's own chart is not replaced by that job's run.
        mlflow_proxy.up()
        await wait_for(pilot, lambda: {"late-job", "other"} <= set(names(pane)), timeout=20)
        cursor_to(pane, "other")
        await pilot.press("enter")
        await pilot.press("r")
        await wait_for(pilot, lambda: "runs, updated" in chart_state(pane))
        assert [pane.tracker.runs[r].name for r in pane.charted] == ["other"]


async def test_export_to_an_unwritable_place_says_so(mlflow_server, train, tmp_path) -> None:
    run_id = train(mlflow_server.uri, "export", "exported", steps=10, end="FINISHED")
    (Path.home()).mkdir(parents=True, exist_ok=True)
    (Path.home() / "hyperdesk-curves").write_text("a file where the folder should be")
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=None)
    notes = record_notifications(app)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "exported" in names(pane), timeout=20)
        cursor_to(pane, "exported")
        await pilot.press("enter")
        await wait_for(pilot, lambda: history_len(pane, run_id) == 10, timeout=20)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("could not save the CSV" in n.message for n in notes))
        assert app.is_running


async def test_a_long_history_is_smoothed_off_the_event_loop() -> None:
    from app.screens.training import SMOOTH_IN_THREAD, SMOOTHING, TrainingPane
    from tests.test_snapshots_training import RUNS, TrainingApp, curve

    app = TrainingApp([])
    async with app.run_test(size=(150, 48)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.table.row_count == len(RUNS))
        run_id = RUNS[0][0].run_id
        long = curve("loss", 3 * SMOOTH_IN_THREAD, 0.4, 2.2, 9)
        pane.tracker.histories[(run_id, "loss")] = long
        cursor_to(pane, "mistral-7b-sft")
        await pilot.press("enter")
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label.startswith("loss") for line in chart.spec.lines))
        await pilot.press("plus")
        weight = SMOOTHING[pane.smoothing]
        # The key was handled at once; the curve is smoothed in a thread and drawn when done.
        await wait_for(pilot, lambda: any(line.label == "loss" and not line.faint for line in chart.spec.lines),
                       timeout=30)
        smoothed = next(line for line in chart.spec.lines if line.label == "loss" and not line.faint)
        assert list(smoothed.ys) == smooth(long.steps, long.values, weight)


async def test_the_uri_is_looked_up_when_the_pane_is_shown_and_again_on_a_namespace_change(
        mlflow_server, train, bare_cluster, demo_kubectl) -> None:
    train(mlflow_server.uri, "published", "found-through-annotation", steps=5, end="FINISHED")
    demo_kubectl(bare_cluster)("annotate", "namespace", NS, f"hyperdesk.dev/mlflow-tracking-uri={mlflow_server.uri}")
    app = HyperdeskApp(Settings(namespace="default", mlflow=MlflowSettings(poll_seconds=0.3, timeout_seconds=3)),
                       kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(180, 50)) as pilot:
        pane = app.pane("training")
        await wait_for(pilot, lambda: app.health.state == "connected", timeout=20)
        await pilot.pause(0.5)
        assert pane.tracker is None and pane.state == "starting"  # hidden: nothing asked
        await pilot.press("4")
        await wait_for(pilot, lambda: "No MLflow tracking server configured" in chart_state(pane), timeout=20)
        assert "annotation hyperdesk.dev/mlflow-tracking-uri on namespace default" in chart_state(pane)
        await pilot.press("colon", *f"ns {NS}", "enter")
        await wait_for(pilot, lambda: "found-through-annotation" in names(pane), timeout=20)
        assert f"from namespace {NS} annotation" in chart_state(pane)
        await pilot.press("colon", *"ns default", "enter")
        await wait_for(pilot, lambda: "No MLflow tracking server configured" in chart_state(pane), timeout=20)
        assert names(pane) == []


async def test_the_experiment_picker_lists_one_experiments_runs(mlflow_server, train) -> None:
    train(mlflow_server.uri, "exp-a", "run-in-a", steps=5, end="FINISHED")
    train(mlflow_server.uri, "exp-b", "run-in-b", steps=5, end="FINISHED")
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: {"run-in-a", "run-in-b"} <= set(names(pane)), timeout=20)
        await pick(pilot, "exp-a", menu="ctrl+e")
        await wait_for(pilot, lambda: set(names(pane)) == {"run-in-a"}, timeout=20)
        await wait_for(pilot, lambda: "runs of experiment exp-a, updated" in chart_state(pane))
        await pick(pilot, "*", menu="ctrl+e")
        await wait_for(pilot, lambda: {"run-in-a", "run-in-b"} <= set(names(pane)), timeout=20)


async def test_a_long_curve_smoothed_again_from_its_start_is_smoothed_off_the_event_loop() -> None:
    from app.screens.training import SMOOTH_IN_THREAD, SMOOTHING, TrainingPane
    from tests.test_snapshots_training import RUNS, TrainingApp, curve

    app = TrainingApp([])
    async with app.run_test(size=(150, 48)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.table.row_count == len(RUNS))
        run_id = RUNS[0][0].run_id
        long = curve("loss", 3 * SMOOTH_IN_THREAD, 0.4, 2.2, 9)
        pane.tracker.histories[(run_id, "loss")] = long
        cursor_to(pane, "mistral-7b-sft")
        await pilot.press("enter")
        chart = pane.query_one("#training-charts")
        smoothed = lambda: next((line for line in chart.spec.lines  # noqa: E731
                                 if line.label == "loss" and not line.faint), None)
        await wait_for(pilot, lambda: smoothed() is not None and len(smoothed().ys) == len(long), timeout=30)
        # The run goes on logging every 10 steps: the mean spacing moves to another unit, and the whole curve must
        # be smoothed again from its first point. The old curve stays drawn meanwhile; the loop does not do it.
        count, last_ts = len(long), long.times[-1]
        long.extend((long.steps[-1] + 10 * (i + 1), last_ts + 2000 * (i + 1), 0.4) for i in range(count // 15))
        pane.draw_charts()
        assert len(smoothed().ys) == count and pane._smoothing
        await wait_for(pilot, lambda: len(smoothed().ys) == len(long), timeout=30)
        assert list(smoothed().ys) == smooth(long.steps, long.values, SMOOTHING[pane.smoothing])


async def test_export_of_a_long_curve_is_written_off_the_event_loop() -> None:
    from app.screens.training import SMOOTH_IN_THREAD, SMOOTHING, TrainingPane
    from tests.test_snapshots_training import RUNS, TrainingApp, curve

    app = TrainingApp([])
    notes = record_notifications(app)
    async with app.run_test(size=(150, 48)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.table.row_count == len(RUNS))
        run_id = RUNS[0][0].run_id
        long = curve("loss", 4 * SMOOTH_IN_THREAD, 0.4, 2.2, 9)
        pane.tracker.histories[(run_id, "loss")] = long
        pane.metrics = ["loss"]
        cursor_to(pane, "mistral-7b-sft")
        await pilot.press("enter")
        chart = pane.query_one("#training-charts")
        await wait_for(pilot, lambda: any(line.label.startswith("loss") for line in chart.spec.lines))
        folder = Path.home() / "hyperdesk-curves"
        pane.action_export()
        # The key's handler only copied the points: the rows are built and written in a thread.
        assert not (folder.exists() and list(folder.glob("*.csv")))
        await wait_for(pilot, lambda: any(f"saved {len(long)} points" in n.message for n in notes),
                       timeout=60)
        assert any(f"saving {len(long)} points" in n.message for n in notes)
        rows = list(csv.reader(next(folder.glob("*.csv")).open()))
        assert len(rows) == 1 + len(long) and rows[0][-1] == "smoothed"
        expected = smooth(long.steps, long.values, SMOOTHING[pane.smoothing])
        assert [float(rows[i][6]) for i in (1, len(long) // 2, len(long))] == \
            [expected[0], expected[len(long) // 2 - 1], expected[-1]]


async def test_t_on_a_job_name_found_in_two_namespaces_charts_only_a_run_linked_to_it(
        mlflow_server, train, bare_cluster, demo_kubectl) -> None:
    # A run named after a job that exists in two namespaces, the run not saying which: the runs table links it to
    # neither, and `t` on either job does not chart it either.
    train(mlflow_server.uri, "links", "twin", steps=5, end="FINISHED")
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "namespace", "team-b")
    kubectl("create", "-f", "-", stdin=JOB.replace("NAME", "twin"))
    kubectl("create", "-f", "-", stdin=JOB.replace("NAME", "twin").replace(f"namespace: {NS}", "namespace: team-b"))
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: "twin" in names(pane) and "runs, updated" in chart_state(pane), timeout=30)
        await pilot.press("2")
        jobs = app.pane("jobs").table
        await wait_for(pilot, lambda: jobs.row_count == 2, timeout=20)
        await pilot.press("4")
        assert cell(pane, "twin", "JOB") == ""
        await pilot.press("2")
        jobs.move_cursor(row=jobs.get_row_index("jobs/team-b/twin"), animate=False)
        await pilot.press("t")
        await wait_for(pilot, lambda: any("no MLflow run for job team-b/twin" in n.message
                                          for n in notes))
        assert pane.charted == []


async def test_a_modal_screen_over_the_pane_pauses_its_polls(mlflow_server, train) -> None:
    train(mlflow_server.uri, "covered", "under-help", steps=5, end="FINISHED")
    app = HyperdeskApp(settings(mlflow_server.uri), kubeconfig=None)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("4")
        pane = app.pane("training")
        await wait_for(pilot, lambda: pane.polls >= 2, timeout=20)  # polls every 0.3 s while shown
        await pilot.press("question_mark")  # help covers the pane
        await wait_for(pilot, lambda: len(app.screen_stack) > 1)
        await wait_for(pilot, lambda: not pane._polling, timeout=10)  # a poll that had begun may end
        covered = pane.polls
        await pilot.pause(1.5)  # five poll periods
        assert pane.polls == covered
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1 and pane.polls > covered, timeout=10)
