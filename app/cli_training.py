"""Training: `hyperdesk curve` and the `get runs` kind (issue #11).

Imports only argparse at module level: `hyperdesk --version` imports this module.

    hyperdesk get runs [--experiment E] [-o table|json|yaml]
    hyperdesk curve RUN [--metric loss ...] [--follow] [--smoothing W] [--log] [--x step|time] [--last N]

The tracking URI comes from the config, `MLFLOW_TRACKING_URI`, or the cluster (ConfigMap / namespace annotation).
`curve` prints a one-shot chart (or, with `--follow`, redraws it as the run logs until it ends or ctrl+c).
Exit codes: 1 the server failed or the run/metric is not there, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """This area's subcommands; each sets `handler=fn(args, settings, kubeconfig) -> exit code`."""
    sub.choices["get"].add_argument("--experiment", default=None,
                                    help="runs: only this MLflow experiment (name or id)")
    curve = sub.add_parser("curve", parents=[common], help="draw a run's metric curves from MLflow")
    curve.add_argument("run", help="run name or run id")
    curve.add_argument("--metric", action="append", help="metric to draw (again for more; default loss)")
    curve.add_argument("--follow", "-f", action="store_true", help="redraw as new points arrive, until the run ends")
    curve.add_argument("--smoothing", type=float, default=0.0, help="EMA weight, 0 to 0.99 (as TensorBoard's)")
    curve.add_argument("--log", action="store_true", help="log-scale y axis")
    curve.add_argument("--x", choices=("step", "time"), default="step", help="x axis: step or wall time")
    curve.add_argument("--last", type=float, help="only the last N steps (minutes with --x time)")
    curve.add_argument("--width", type=int, help="chart width in columns (default: the terminal's)")
    curve.add_argument("--height", type=int, default=20, help="chart height in rows")
    curve.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --follow")
    curve.set_defaults(handler=_curve)


def _tracking(settings: Any, kubeconfig: Any, namespace: str | None = None) -> Any:
    """The Tracking client for the configured or published URI; GetError when there is none."""
    from app.get import GetError
    from app.tracking.client import Tracking, TrackingError
    from app.tracking.uri import local_uri, missing_uri_message

    resolved = local_uri(settings.mlflow.tracking_uri)
    uri = resolved.uri
    if uri is None and kubeconfig is not None:
        uri, tried, asked = _cluster_uri(settings, kubeconfig, namespace)
        if uri is None:
            # not published: a setup problem (2); the cluster could not be asked: a runtime failure (1)
            raise GetError(missing_uri_message(tried), exit_code=2 if asked else 1)
    if uri is None:
        raise GetError(missing_uri_message(), exit_code=2)
    try:
        return Tracking(uri, timeout=settings.mlflow.timeout_seconds)
    except TrackingError as exc:
        raise GetError(str(exc), exit_code=2) from None


def _cluster_uri(settings: Any, kubeconfig: Any, namespace: str | None) -> tuple[str | None, str, bool]:
    """(URI or None, where it was looked for, whether the cluster answered)."""
    import asyncio

    from app.get import GetContext, GetError, _with_cluster
    from app.tracking.uri import cluster_uri

    found: dict[str, Any] = {}

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        found["resolved"] = await cluster_uri(connection, namespace, settings.mlflow.configmap,
                                              settings.mlflow.annotation)
        return []

    try:
        asyncio.run(_with_cluster(GetContext(settings, kubeconfig, namespace), work))
    except GetError as exc:
        return None, f"the cluster could not be asked: {exc}", False
    resolved = found["resolved"]
    return resolved.uri, resolved.source, True


def _home_namespace(settings: Any, kubeconfig: Any) -> str | None:
    """The namespace whose annotation may name the tracking server: --namespace, else the context's (as `get`)."""
    if kubeconfig is None:
        return settings.namespace
    from app.cli import _namespaces

    return _namespaces(settings, kubeconfig)[0]


def _fail(message: str, code: int) -> int:
    print(f"hyperdesk: error: {message}", file=sys.stderr)
    return code


def _exit_code(exc: Any) -> int:
    return 2 if exc.kind == "bad-input" else 1


# --- get runs ----------------------------------------------------------------------------------------------------

def _runs(ctx: Any) -> list[dict[str, Any]]:
    from app.get import GetError
    from app.tracking.client import TrackingError

    tracking = _tracking(ctx.settings, ctx.kubeconfig, ctx.namespace or _home_namespace(ctx.settings, ctx.kubeconfig))
    try:
        runs = tracking.runs(ctx.options.get("experiment"))
    except TrackingError as exc:
        raise GetError(str(exc), exit_code=_exit_code(exc)) from None
    links = _job_links(ctx, runs)
    return [run.as_dict(links.get(run.run_id)) for run in runs]


def _job_links(ctx: Any, runs: list[Any]) -> dict[str, str]:
    """run id -> NAMESPACE/NAME of its job: checked against the cluster's jobs when there is a cluster; without
    one, only what a run's job tag says."""
    from app.tracking.links import JobRef, link_runs

    tag = ctx.settings.mlflow.job_tag
    if ctx.kubeconfig is None or not runs:
        return {run.run_id: "/".join(p for p in run.job_ref(tag) if p) for run in runs if tag in run.tags}
    import asyncio

    from app.get import GetError, _with_cluster

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        from app.cluster.queues import fetch_jobs

        rows = await fetch_jobs(connection, discovery, ctx.namespace)  # None with -A only
        return [{"key": r.key, "namespace": r.namespace, "name": r.name, "state": r.state} for r in rows]

    try:
        jobs = asyncio.run(_with_cluster(ctx, work))
    except GetError as exc:  # e.g. jobs forbidden here: the links the tags give, and say why the rest are missing
        print(f"warning: jobs could not be listed, runs are linked by their {tag} tag only: {exc}", file=sys.stderr)
        return {run.run_id: "/".join(p for p in run.job_ref(tag) if p) for run in runs if tag in run.tags}
    links = link_runs(runs, [JobRef(**j) for j in jobs], tag, ctx.namespace)
    return {run_id: job.text for run_id, job in links.items()}


def _run_cells(item: dict[str, Any]) -> dict[str, Any]:
    from app.tracking.client import params_summary

    shown = {k: v for k, v in item["metrics"].items() if not k.startswith("system/")}
    metrics = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in list(shown.items())[:3])
    step = max(item["steps"].values(), default=None)
    return {**item, "metrics": metrics, "step": step, "params": params_summary(item["params"], 40),
            "start_time": (item["start_time"] or "").replace("T", " ").rstrip("Z")}


def register_kinds() -> None:
    from app.get import Kind, register

    register(Kind(
        name="runs",
        aliases=("run",),
        fetch=_runs,
        columns=(("NAME", "name"), ("EXPERIMENT", "experiment"), ("STATUS", "status"), ("STARTED", "start_time"),
                 ("STEP", "step"), ("METRICS", "metrics"), ("JOB", "job"), ("RUN ID", "run_id")),
        description="MLflow runs with their latest metrics and the job each belongs to",
        display=_run_cells,
        options=("experiment",),
    ))


# --- curve -------------------------------------------------------------------------------------------------------

def _curve(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.get import GetError
    from app.tracking.client import Tracker, TrackingError

    if not 0 <= args.smoothing < 1:
        return _fail(f"--smoothing must be at least 0 and below 1, not {args.smoothing}", 2)
    if args.interval <= 0:
        return _fail(f"--interval must be above 0 seconds, not {args.interval}", 2)
    if args.last is not None and not (0 < args.last < float("inf")):
        unit = "minutes" if args.x == "time" else "steps"
        return _fail(f"--last must be a number of {unit} above 0, not {args.last}", 2)
    if args.height < 5 or (args.width is not None and args.width < 20):
        return _fail("the chart needs at least 20 columns and 5 rows", 2)
    try:
        tracking = _tracking(settings, kubeconfig, _home_namespace(settings, kubeconfig))
        run = tracking.run(args.run)
    except GetError as exc:
        return _fail(str(exc), exc.exit_code)
    except TrackingError as exc:
        return _fail(str(exc), _exit_code(exc))
    metrics = args.metric or ["loss"]
    missing = [m for m in metrics if m not in run.metrics]
    if missing and run.status != "RUNNING":
        known = ", ".join(run.metric_keys) or "none"
        return _fail(f"run {run.name} has no metric {', '.join(map(repr, missing))} (it has: {known})", 1)
    try:
        return _draw_loop(args, run, metrics, Tracker(tracking))
    except KeyboardInterrupt:  # ctrl+c ends `--follow`
        return 0


def _draw_loop(args: argparse.Namespace, run: Any, metrics: list[str], tracker: Any) -> int:
    import shutil
    import sys
    import time

    from app.tracking.client import TrackingError

    tty = sys.stdout.isatty()
    width = args.width or shutil.get_terminal_size((100, 24)).columns
    while True:
        try:
            tracker.poll([(run.run_id, m) for m in metrics], only=[run.run_id])  # this run, however old
        except TrackingError as exc:
            if not args.follow:
                return _fail(str(exc), _exit_code(exc))
            print(f"{exc} — retrying in {args.interval:g} s", file=sys.stderr, flush=True)
            time.sleep(args.interval)
            continue
        run = tracker.runs.get(run.run_id, run)
        text = _draw(run, metrics, tracker, args, width)
        if args.follow and tty:
            sys.stdout.write("\x1b[H\x1b[2J")
        sys.stdout.write(text if tty else _plain(text))
        sys.stdout.flush()
        if not args.follow or run.status not in ("RUNNING", "SCHEDULED"):
            empty = [m for m in metrics if not (h := tracker.history(run.run_id, m)) or not h.steps]
            if empty:
                return _fail(f"run {run.name} has no points of {', '.join(map(repr, empty))}", 1)
            return 0
        time.sleep(args.interval)


def _draw(run: Any, metrics: list[str], tracker: Any, args: argparse.Namespace, width: int) -> str:
    from app.tracking.chart import COLORS, ChartLine, ChartSpec, render_chart
    from app.tracking.curves import Ema

    lines = []
    summary = []
    labels = []
    for index, key in enumerate(metrics):
        history = tracker.history(run.run_id, key)
        if history is None or not history.steps:
            summary.append(f"{key}: no points")
            continue
        xs = history.xs(args.x)
        labels.append(history.x_label(args.x))
        values, envelope = history.values, history.envelope
        if args.smoothing:
            ema = Ema(args.smoothing)
            ema.feed(xs, history.values, history.bad_at)
            values, envelope = ema.values, ema.envelope
        lines.append(ChartLine(key, xs, values, history.bad_at, envelope, color=COLORS[index % len(COLORS)]))
        last = history.last_value
        gaps = f", {history.gaps} NaN/inf drawn as gaps" if history.gaps else ""
        summary.append(f"{key}: {len(history)} points, last {last:.6g} at step {history.last_step}{gaps}"
                       if last is not None else f"{key}: {len(history)} points, none finite{gaps}")
    title = f"{run.name} ({run.status.lower()})" + (f" · smoothing {args.smoothing:g}" if args.smoothing else "")
    # metrics logged without a step are drawn by point index, and the axis says so
    x_label = labels[0] if labels and len(set(labels)) == 1 else "wall time (min)" if args.x == "time" else "step"
    chart = render_chart(ChartSpec(title=title, lines=lines, log_y=args.log, last=args.last, x_label=x_label),
                         width, args.height)
    return (chart + "\n" if chart else "") + " · ".join(summary) + "\n"


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
