"""`hyperdesk get runs` and `hyperdesk curve`, run as a user runs them: subprocesses against a real `mlflow server`
(its own venv, SQLite) that a real numpy training loop logged to, and the simulated cluster for the job links."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins.tui import closed_port, write_kubeconfig

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


def hyperdesk(*args: str, uri: str | None, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=90, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def runs(mlflow_server, train) -> dict[str, str]:
    uri = mlflow_server.uri
    return {
        "bert-sweep": train(uri, "nlp", "bert-sweep", steps=300, end="FINISHED"),
        "tagged": train(uri, "nlp", "tagged-run", steps=50, tags={"hyperdesk.job": f"{NS}/llm-sft"}, end="FINISHED"),
        "gappy": train(uri, "vision", "gappy", steps=120, bad={30: "nan", 31: "nan", 90: "inf"}, end="FAILED"),
    }


def test_get_runs_json_links_runs_to_jobs(mlflow_server, runs, bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=JOB.replace("NAME", "bert-sweep"))
    kubectl("create", "-f", "-", stdin=JOB.replace("NAME", "llm-sft"))
    result = hyperdesk("get", "runs", "-o", "json", "-n", NS, uri=mlflow_server.uri,
                       kubeconfig=bare_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    items = {item["name"]: item for item in json.loads(result.stdout)}
    assert set(items) >= {"bert-sweep", "tagged-run", "gappy"}
    bert = items["bert-sweep"]
    assert bert["run_id"] == runs["bert-sweep"] and bert["experiment"] == "nlp" and bert["status"] == "FINISHED"
    assert bert["start_time"].endswith("Z")
    assert bert["job"] == f"{NS}/bert-sweep"  # the run name is the job name
    assert items["tagged-run"]["job"] == f"{NS}/llm-sft"  # the job tag names it
    assert items["gappy"]["job"] is None  # no such job in the cluster
    assert set(bert["metrics"]) == {"loss", "eval_loss", "learning_rate"}
    assert 0 < bert["metrics"]["loss"] < 1 and bert["steps"]["loss"] == 299


def test_get_runs_table_and_experiment_filter(mlflow_server, runs) -> None:
    result = hyperdesk("get", "runs", "--experiment", "vision", uri=mlflow_server.uri)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "EXPERIMENT", "STATUS"]
    assert len(lines) == 1 and lines[0].split()[:3] == ["gappy", "vision", "FAILED"]
    unknown = hyperdesk("get", "runs", "--experiment", "nope", uri=mlflow_server.uri)
    assert unknown.returncode == 1 and "no experiment 'nope'" in unknown.stderr and "vision" in unknown.stderr


def test_curve_draws_the_loss(mlflow_server, runs) -> None:
    result = hyperdesk("curve", "bert-sweep", "--width", "100", "--height", "20", uri=mlflow_server.uri)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "bert-sweep (finished)" in lines[0]
    assert any("⡀" <= ch <= "⣿" for ch in result.stdout)  # braille
    assert "\x1b[" not in result.stdout  # not a terminal: no colour codes
    assert lines[-1].startswith("loss: 300 points, last ") and "at step 299" in lines[-1]
    by_id = hyperdesk("curve", runs["bert-sweep"], "--metric", "eval_loss", "--smoothing", "0.6", uri=mlflow_server.uri)
    assert by_id.returncode == 0 and "eval_loss: 30 points" in by_id.stdout and "smoothing 0.6" in by_id.stdout


def test_curve_counts_nan_and_inf_as_gaps(mlflow_server, runs) -> None:
    result = hyperdesk("curve", "gappy", "--width", "90", uri=mlflow_server.uri)
    assert result.returncode == 0, result.stderr
    assert "loss: 120 points" in result.stdout and "3 NaN/inf drawn as gaps" in result.stdout


def test_curve_bad_input(mlflow_server, runs) -> None:
    unknown = hyperdesk("curve", "no-such-run", uri=mlflow_server.uri)
    assert unknown.returncode == 1 and "no run 'no-such-run'" in unknown.stderr
    absent = hyperdesk("curve", "bert-sweep", "--metric", "accuracy", uri=mlflow_server.uri)
    assert absent.returncode == 1
    assert "has no metric 'accuracy'" in absent.stderr and "eval_loss, learning_rate, loss" in absent.stderr
    bad = hyperdesk("curve", "bert-sweep", "--smoothing", "1.5", uri=mlflow_server.uri)
    assert bad.returncode == 2 and "--smoothing" in bad.stderr
    no_uri = hyperdesk("curve", "bert-sweep", uri=None)
    assert no_uri.returncode == 2 and "No MLflow tracking server configured" in no_uri.stderr


def test_server_down_is_one_line_and_exit_1() -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    for args in (("get", "runs"), ("curve", "x")):
        result = hyperdesk(*args, uri=uri)
        assert result.returncode == 1, result
        assert result.stderr.strip().count("\n") == 0 and "unreachable: connection refused" in result.stderr


def test_curve_follow_redraws_until_the_run_ends(mlflow_server, train) -> None:
    run_id = train(mlflow_server.uri, "follow", "live-run", steps=40)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri}
    process = subprocess.Popen([sys.executable, "-m", "app", "curve", "live-run", "--follow", "--interval", "0.3",
                                "--width", "80"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        first = process.stdout.readline()  # the chart's title line arrives once the first draw is done
        assert "live-run (running)" in first
        train(mlflow_server.uri, "follow", "live-run", steps=60, start=40, run_id=run_id, end="FINISHED")
        out, err = process.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "loss: 40 points" in first + out  # the first draw
    assert out.rstrip().splitlines()[-1].startswith("loss: 100 points") and "at step 99" in out
    assert "live-run (finished)" in out


def test_curve_of_a_run_older_than_the_listing_and_a_run_without_points(mlflow_server, train) -> None:
    from app.tracking.client import Tracker, Tracking

    old = train(mlflow_server.uri, "crowded", "oldest", steps=20, end="FINISHED")
    tracking = Tracking(mlflow_server.uri, timeout=5)
    # The run is not among the runs listed (here: the listing is of another experiment): a poll gets it by id.
    train(mlflow_server.uri, "elsewhere", "newer", steps=1, end="FINISHED")
    tracker = Tracker(tracking)
    poll = tracker.poll([(old, "loss")], experiment="elsewhere")
    assert old in tracker.runs and len(tracker.history(old, "loss")) == 20 and (old, "loss") in poll.changed
    by_id = hyperdesk("curve", old, "--width", "80", uri=mlflow_server.uri)
    assert by_id.returncode == 0 and "loss: 20 points" in by_id.stdout
    only_system = train(mlflow_server.uri, "crowded", "no-loss-yet", steps=5, only_system=True)
    empty = hyperdesk("curve", only_system, "--metric", "system/gpu_0_utilization_percentage", "--metric", "loss",
                      uri=mlflow_server.uri)
    assert empty.returncode == 1 and "no points of 'loss'" in empty.stderr


def test_new_points_come_through_the_step_interval_and_settings_do_not_leak(mlflow_server, train) -> None:
    from app.tracking.client import Tracker, Tracking

    run_id = train(mlflow_server.uri, "interval", "grows", steps=50)
    tracking = Tracking(mlflow_server.uri, timeout=7)
    tracker = Tracker(tracking)
    tracker.poll([(run_id, "loss")])
    assert tracker.history(run_id, "loss").steps == list(range(50))
    assert tracking.history_since(run_id, "loss", 45, 49) == [p for p in tracking.history(run_id, "loss")
                                                               if p[0] >= 45]
    train(mlflow_server.uri, "interval", "grows", steps=30, start=50, run_id=run_id)
    poll = tracker.fetch([(run_id, "loss")])
    assert sorted(p[0] for p in poll.points[(run_id, "loss")]) == list(range(49, 80))  # not the 49 before
    tracker.apply(poll)
    assert tracker.history(run_id, "loss").steps == list(range(80))
    assert tracker.fetch([(run_id, "loss")]).points == {}  # nothing new: nothing asked
    assert not [v for v in os.environ if v.startswith("MLFLOW_HTTP_REQUEST")]


def test_a_cluster_that_cannot_be_asked_for_the_uri_is_a_runtime_failure(tmp_path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"gone": f"http://127.0.0.1:{closed_port()}"}, "gone")
    for args in (("get", "runs"), ("curve", "x")):
        result = hyperdesk(*args, uri=None, kubeconfig=kubeconfig)
        assert result.returncode == 1, result
        assert "the cluster could not be asked" in result.stderr


def test_a_run_resumed_from_a_checkpoint_is_followed(mlflow_server, train) -> None:
    from mlflow.entities import Metric

    from app.tracking.client import Tracker, Tracking

    run_id = train(mlflow_server.uri, "resume", "resumed", steps=150)
    tracking = Tracking(mlflow_server.uri, timeout=7)
    tracker = Tracker(tracking, resume_check_seconds=0)  # a running run is read whole on every poll (default 60 s)
    tracker.poll([(run_id, "loss")])
    history = tracker.history(run_id, "loss")
    assert history.steps == list(range(150))
    # The job restarts from its step-100 checkpoint into the same run and logs steps 100..119 again, later.
    later = max(history.times) + 60_000
    tracking.client().log_batch(run_id, metrics=[Metric("loss", 0.01 * i, later + 100 * i, 100 + i)
                                                 for i in range(20)])
    poll = tracker.poll([(run_id, "loss")])
    assert (run_id, "loss") in poll.changed and len(history) == 170
    assert history.steps.count(110) == 2 and history.values[history.steps.index(110) + 1] == 0.1
    assert tracker.fetch([(run_id, "loss")]).points == {}  # read whole again: nothing new
    # `curve` draws the points of both lives of the run.
    result = hyperdesk("curve", "resumed", "--width", "80", uri=mlflow_server.uri)
    assert result.returncode == 0 and "loss: 170 points" in result.stdout


def test_curve_finds_a_run_name_with_a_quote(mlflow_server, train) -> None:
    train(mlflow_server.uri, "quotes", "bob's-run", steps=12, end="FINISHED")
    found = hyperdesk("curve", "bob's-run", "--width", "80", uri=mlflow_server.uri)
    assert found.returncode == 0, found.stderr
    assert "bob's-run (finished)" in found.stdout and "loss: 12 points" in found.stdout


def test_curve_last_must_be_above_zero(mlflow_server, runs) -> None:
    for last in ("-5", "0", "nan", "inf"):
        bad = hyperdesk("curve", "bert-sweep", "--last", last, uri=mlflow_server.uri)
        assert bad.returncode == 2 and "--last must be a number of steps above 0" in bad.stderr, bad
    minutes = hyperdesk("curve", "bert-sweep", "--x", "time", "--last", "-1", uri=mlflow_server.uri)
    assert minutes.returncode == 2 and "number of minutes" in minutes.stderr
    zoomed = hyperdesk("curve", "bert-sweep", "--last", "5", "--width", "80", uri=mlflow_server.uri)
    assert zoomed.returncode == 0 and "loss: 300 points" in zoomed.stdout


def test_curve_of_a_metric_logged_without_a_step_says_what_the_x_axis_is(mlflow_server, train) -> None:
    train(mlflow_server.uri, "stepless", "no-steps", steps=6, stepless=True, end="FINISHED")
    result = hyperdesk("curve", "no-steps", "--width", "90", "--smoothing", "0.6", uri=mlflow_server.uri)
    assert result.returncode == 0, result.stderr
    assert "logged without a step" in result.stdout and "loss: 6 points" in result.stdout
