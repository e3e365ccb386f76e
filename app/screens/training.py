"""The Training pane: MLflow runs and their curves, next to the jobs that produce them.

The runs table lists every run of the tracking server (status, start, duration, latest values of the charted
metrics, params, the linked job). `enter` charts the run under the cursor, or the marked runs overlaid. The chart
follows live: while the pane is visible a self-rescheduling worker polls the server in a daemon thread (one poll in
flight at a time; a poll asked for meanwhile runs once it ends), and only points past the last one held are fetched.
The points are added to the histories on the event loop, where the charts read them. A failing or slow server
leaves the last data on screen with a line that says so, and the pane recovers on a later poll.
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from app.screens.pane import Pane, sort_bindings
from app.tracking.client import SYSTEM_PREFIX, RunInfo, Tracker, Tracking, TrackingError, params_summary
from app.tracking.curves import Ema, History, csv_rows, nearest, window
from app.tracking.links import JobRef, link_runs, runs_of_job
from app.tracking.chart import COLORS, ChartLine, ChartSpec
from widgets.curve_chart import CurveChart
from widgets.resource_table import ResourceTable, Row

SMOOTHING = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99)
ZOOMS = (None, 10000, 1000, 100)
DEFAULT_METRICS = ("loss", "eval_loss")
SMOOTH_IN_THREAD = 50_000
"""A history longer than this is smoothed in a thread the first time (then only its new points, on the loop)."""
JOB_STORES = ("hyperpodpytorchjobs", "pytorchjobs", "jobs", "jobsets", "workloads")
STATUS_STYLES = {"RUNNING": "green", "FINISHED": "dim", "FAILED": "red", "KILLED": "yellow", "SCHEDULED": "cyan"}


class TrainingPane(Pane):
    pane_id = "training"
    title = "Training"
    key = "4"
    columns = ("RUN", "EXPERIMENT", "STATUS", "JOB", "STARTED", "DURATION", "STEP", "METRICS", "PARAMS")
    purpose = "Live loss curves from MLflow, next to the job that produces them."
    kinds = JOB_STORES
    BINDINGS = [
        Binding("enter", "chart", "Chart", show=False, id="training.chart"),
        Binding("m", "pick_metric", "Metric", id="training.metric"),
        Binding("a", "add_metric", "Add metric", show=False, id="training.add_metric"),
        Binding("x", "toggle_axis", "Step/time", id="training.axis"),
        Binding("o", "toggle_log", "Log scale", id="training.log"),
        Binding("plus,equals_sign", "smooth(1)", "Smooth more", id="training.smooth_more"),
        Binding("minus", "smooth(-1)", "Smooth less", show=False, id="training.smooth_less"),
        Binding("z", "zoom", "Zoom last N", id="training.zoom"),
        Binding("comma", "cursor(-1)", "Cursor left", show=False, id="training.cursor_left"),
        Binding("full_stop", "cursor(1)", "Cursor right", show=False, id="training.cursor_right"),
        Binding("c", "clear_cursor", "Hide cursor", show=False, id="training.cursor_hide"),
        Binding("j", "job", "Job", id="training.job"),
        Binding("ctrl+e", "pick_experiment", "Experiment", show=False, id="training.experiment"),
        Binding("ctrl+s", "export", "Export CSV", id="training.export"),
        Binding("r", "refresh", "Refresh", show=False, id="training.refresh"),
        *sort_bindings({"N": "RUN", "E": "EXPERIMENT", "S": "STATUS", "J": "JOB", "A": "STARTED", "U": "DURATION"},
                      "training"),
    ]

    DEFAULT_CSS = """
    TrainingPane #training-table { height: 2fr; min-height: 5; }
    TrainingPane #training-state { height: auto; color: $text-muted; }
    TrainingPane #training-readout { height: auto; }
    TrainingPane #training-charts { height: 3fr; min-height: 10; }
    TrainingPane #training-system { height: 1fr; display: none; }
    TrainingPane #training-system.shown { display: block; }
    TrainingPane #training-system CurveChart { width: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.tracker: Tracker | None = None
        self.uri_source = ""
        self.state = "starting"
        """starting, no-uri, connecting, live, unreachable, slow, error"""
        self.state_detail = ""
        self.failing_since: float | None = None
        self.updated_at: float | None = None
        self.runs: list[RunInfo] = []
        self.experiment: str | None = None
        """The experiment (name) whose runs are listed; None: every experiment."""
        self.charted: list[str] = []
        """Run ids on the chart."""
        self.metrics: list[str] = []
        """Metrics on the chart; empty: the defaults the runs have."""
        self.axis = "step"
        self.log_y = False
        self.smoothing = 2
        self.zoom = 0
        self.cursor: float | None = None
        self.links: dict[str, JobRef] = {}
        self.now: Callable[[], float] = time.time
        self.job_tag: str | None = None
        self._smoothed: dict[tuple[str, str, str, float, int], Ema] = {}
        """(run id, metric, axis, weight, history revision) -> its smoothed curve."""
        self._smoothing: set[tuple[str, str, str, float, int]] = set()
        """Smoothed curves being computed in a thread."""
        self._pending_job: tuple[str, str] | None = None
        self._pending_polls = 0
        self.poll_seconds = 5.0
        self._polling = False
        self._poll_again = False
        self.polls = 0
        """Polls started (a refresh asked for during one is run once after it, not at once)."""
        self._resolved_scope: tuple[int, str | None] | None = None
        """(engine identity, namespace) the tracking URI was looked up on the cluster for; None: not from the cluster."""
        self._following = False
        """True once the follow worker runs (a pane given its data directly, as in snapshots, never polls)."""

    def compose(self) -> ComposeResult:
        yield ResourceTable(self.columns, id="training-table")
        yield Static(self.purpose, classes="empty")
        yield Static("", id="training-state")
        yield Static("", id="training-readout")
        yield CurveChart(ChartSpec(empty_text="enter charts the run under the cursor (space marks runs to overlay)"),
                         id="training-charts")
        with Horizontal(id="training-system"):
            yield CurveChart(id="training-system-gpu")
            yield CurveChart(id="training-system-cpu")

    def on_mount(self) -> None:
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            self.job_tag = settings.mlflow.job_tag
            self.poll_seconds = settings.mlflow.poll_seconds
        if settings is not None:
            self.follow()
        self._show_state()

    # ------------------------------------------------------------------------------------------------ data

    def set_tracker(self, tracker: Tracker, source: str = "") -> None:
        self.tracker = tracker
        self.uri_source = source
        self.runs = list(tracker.runs.values())
        self.refresh_view()

    @work(exclusive=True, group="training-follow", exit_on_error=False)
    async def follow(self) -> None:
        """Self-rescheduling: once the pane is first shown, resolve the tracking URI (backing off while it cannot be
        found, again after a context or namespace change where the cluster gave it), then poll while the pane is
        visible. An error in one round is shown in the state line; the loop goes on."""
        app: Any = self.app
        settings = app.settings.mlflow
        self._following = True
        backoff = self.poll_seconds
        while True:
            try:
                if self.tracker is not None and self._resolved_scope is not None \
                        and self._resolved_scope != self._scope():
                    self.tracker, self.runs, self.charted = None, [], []  # another cluster or namespace
                    self._smoothed.clear()
                    self.refresh_view()
                while not self._shown():  # nothing is asked before the pane is first shown
                    await asyncio.sleep(0.25)
                if self.tracker is None:
                    if not await self._resolve(settings):
                        tried, waited = self._scope(), 0.0
                        while waited < backoff and self._scope() == tried:  # a :ctx or :ns asks again at once
                            await asyncio.sleep(0.25)
                            waited += 0.25
                        backoff = self.poll_seconds if self._scope() != tried else min(60.0, backoff * 2)
                        continue
                    backoff = self.poll_seconds
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in one round must not end the follow loop: show it
                self._fail("error", f"Training pane: {type(exc).__name__}: {exc}")
            await self._until_next_poll()

    def _shown(self) -> bool:
        app: Any = self.app
        if not hasattr(app, "active_pane"):
            return bool(self.display)  # a bare app holding only this pane
        return bool(self.display) and self.pane_id in (app.active_pane, getattr(app, "split_pane", None))

    def _scope(self) -> tuple[int, str | None]:
        return id(getattr(self.app, "engine", None)), getattr(self.app, "namespace", None)

    async def _until_next_poll(self) -> None:
        """Wait `poll_seconds` of the pane being shown (visible, no modal screen over it); a pane that is shown again
        polls at once."""
        waited = 0.0
        was_shown = self.shown()
        while waited < self.poll_seconds or not self.shown():
            await asyncio.sleep(0.25)
            shown = self.shown()
            if shown:
                if not was_shown:
                    return
                waited += 0.25
            was_shown = shown

    def on_show(self) -> None:
        """Shown: say at once when there is no URI to ask (the follow loop notices the pane within a quarter second)."""
        settings = getattr(self.app, "settings", None)
        if settings is not None and self.tracker is None and self.state == "starting":
            self._no_local_uri(settings.mlflow)

    def _no_local_uri(self, settings: Any) -> bool:
        """True (and the state says so) when neither the config, the environment nor a cluster can give a URI now."""
        from app.tracking.uri import local_uri, missing_uri_message

        if local_uri(settings.tracking_uri).uri is not None or getattr(self.app, "engine", None) is not None:
            return False
        waiting = " Waiting for the cluster to ask it." if getattr(self.app, "kubeconfig", None) else ""
        self._set_state("no-uri", missing_uri_message() + waiting)
        return True

    async def _resolve(self, settings: Any) -> bool:
        from app.cluster.connection import ApiError
        from app.tracking.uri import cluster_uri, local_uri, missing_uri_message

        resolved = local_uri(settings.tracking_uri)
        scope = None
        if resolved.uri is None:
            engine = getattr(self.app, "engine", None)
            if engine is None:
                self._no_local_uri(settings)
                return False
            scope = self._scope()
            try:
                resolved = await cluster_uri(engine.connection, getattr(self.app, "namespace", None),
                                             settings.configmap, settings.annotation)
            except ApiError as exc:  # the cluster could not be asked (status 0): not the same as "not published"
                self._set_state("no-uri", f"No MLflow tracking URI yet: the cluster could not be asked where it is "
                                          f"({exc}). Retrying.")
                return False
            if resolved.uri is None:
                self._set_state("no-uri", missing_uri_message(resolved.source))
                return False
        try:
            tracking = Tracking(resolved.uri, timeout=settings.timeout_seconds)
        except TrackingError as exc:
            self._set_state("error", str(exc))
            return False
        self.tracker = Tracker(tracking)
        self._resolved_scope = scope
        self.uri_source = resolved.source
        self._set_state("connecting", "")
        return True

    async def poll_once(self) -> None:
        """One poll, or, while one is in flight, ask it to run once more when it ends (polls never pile up)."""
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        try:
            while True:
                self._poll_again = False
                await self._poll()
                if not self._poll_again:
                    break
        finally:
            self._polling = False

    async def _poll(self) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        self.polls += 1
        wanted = [(run_id, key) for run_id in self.charted for key in self._wanted_keys(run_id)]
        try:
            poll = await in_daemon_thread(tracker.fetch, wanted, self.experiment)
        except TrackingError as exc:
            self._fail(exc.kind if exc.kind in ("unreachable", "slow") else "error", str(exc))
            self._after_poll()
            return
        except Exception as exc:  # noqa: BLE001 - a client bug must not end the worker: show it, retry
            self._fail("error", f"{type(exc).__name__}: {exc}")
            self._after_poll()
            return
        if tracker is not self.tracker:
            return  # the scope changed while it ran
        tracker.apply(poll)
        self._prune(tracker)
        self.failing_since = None
        self.updated_at = self.now()
        self.runs = poll.runs
        self._set_state("live", "")
        self.refresh_view(charts=bool(poll.changed) or not self.charted)
        self._after_poll()

    def _after_poll(self) -> None:
        if self._pending_job is not None:
            self._pending_polls += 1
            self._open_pending_job()

    def _fail(self, state: str, detail: str) -> None:
        if self.failing_since is None:
            self.failing_since = self.now()
        self._set_state(state, detail)

    def _prune(self, tracker: Tracker) -> None:
        """Keep only the histories and smoothed curves of what is charted (a long session charts many runs)."""
        keep = {(run_id, key) for run_id in self.charted for key in self._wanted_keys(run_id)}
        tracker.prune(keep)
        for cache_key in [k for k in self._smoothed if (k[0], k[1]) not in keep]:
            del self._smoothed[cache_key]

    def _wanted_keys(self, run_id: str) -> list[str]:
        run = self.tracker.runs.get(run_id) if self.tracker else None
        keys = self.chart_metrics()
        # system charts show the first charted run only, and only while the pane is shown
        if run is not None and self.charted and run_id == self.charted[0] and self.display:
            keys += [k for k in run.metric_keys if k.startswith(SYSTEM_PREFIX)]
        return keys

    def chart_metrics(self) -> list[str]:
        if self.metrics:
            return list(self.metrics)
        present = {k for run in self._charted_runs() for k in run.metrics}
        if not present:
            return ["loss"]
        training = sorted(k for k in present if not k.startswith(SYSTEM_PREFIX))
        return [k for k in DEFAULT_METRICS if k in present] or training[:1]

    def _charted_runs(self) -> list[RunInfo]:
        runs = self.tracker.runs if self.tracker else {}
        return [runs[r] for r in self.charted if r in runs]

    # ------------------------------------------------------------------------------------------------ view

    def rows(self, stores: Mapping[str, Mapping[str, dict]]) -> list[Row]:
        from app.model.jobs import job_rows

        jobs = [JobRef(j.key, j.namespace, j.name, j.state) for j in job_rows(stores)] if stores else []
        self.links = link_runs(self.runs, jobs, self.job_tag, getattr(self.app, "namespace", None))
        return self._rows()

    def _rows(self) -> list[Row]:
        now_ms = int(self.now() * 1000)
        keys = self.chart_metrics()
        rows = []
        for run in self.runs:
            job = self.links.get(run.run_id)
            duration = run.duration_seconds(now_ms)
            step = max(run.steps.values(), default=None)
            values = " ".join(f"{k}={_number(run.metrics[k])}" for k in keys if k in run.metrics)
            rows.append(Row(run.run_id, (
                run.name, run.experiment, Text(run.status, style=STATUS_STYLES.get(run.status, "")),
                f"{job.name} ({job.state})" if job else "", _clock(run.start_time), _duration(duration),
                "" if step is None else str(step), values, params_summary(run.params, 28),
            ), sort=(run.name, run.experiment, run.status, job.text if job else "", -(run.start_time or 0), duration,
                     step, values, "")))
        return rows

    def refresh_view(self, charts: bool = True) -> None:
        stores = self._job_stores()
        self.table.set_rows(self.rows(stores) if stores else self._rows())
        if charts:
            self.draw_charts()
        self._show_state()

    def _job_stores(self) -> dict[str, dict]:
        engine = getattr(self.app, "engine", None)
        if engine is None:
            return {}
        return {k: engine.stores[k].snapshot() for k in JOB_STORES if k in engine.stores}

    def _set_state(self, state: str, detail: str) -> None:
        self.state, self.state_detail = state, detail
        self._show_state()

    def _show_state(self) -> None:
        from app.tracking.uri import redact

        uri = redact(self.tracker.tracking.uri) if self.tracker else ""
        source = f" (from {self.uri_source})" if self.uri_source else ""
        if self.state in ("unreachable", "slow", "error"):
            since = f" (since {time.strftime('%H:%M:%S', time.localtime(self.failing_since))})" \
                if self.failing_since else ""
            kept = " Showing the last data;" if self.runs else ""
            line = Text(f"{self.state_detail}{since}.{kept} retrying every {self.poll_seconds:g} s.",
                        style="bold red" if self.state != "slow" else "bold yellow")
        elif self.state == "no-uri":
            line = Text(self.state_detail, style="yellow")
        elif self.state == "connecting":
            line = Text(f"MLflow {uri}{source}: loading runs…")
        elif self.state == "live":
            updated = time.strftime("%H:%M:%S", time.localtime(self.updated_at)) if self.updated_at else ""
            scope = f" of experiment {self.experiment}" if self.experiment else ""
            line = Text(f"MLflow {uri}{source}: {len(self.runs)} runs{scope}, updated {updated}")
        else:
            line = Text("")
        self.query_one("#training-state", Static).update(line)

    def draw_charts(self) -> None:
        runs = self._charted_runs()
        chart = self.query_one("#training-charts", CurveChart)
        if not runs or self.tracker is None:
            chart.show(ChartSpec(empty_text="enter charts the run under the cursor (space marks runs to overlay)"))
            self.query_one("#training-readout", Static).update("")
            self.query_one("#training-system").set_class(False, "shown")
            return
        metrics = self.chart_metrics()
        lines = self._lines(runs, metrics)
        weight = SMOOTHING[self.smoothing]
        unit = "min" if self.axis == "time" else "steps"
        last = ZOOMS[self.zoom]
        title = " · ".join(metrics) + (f" · smoothing {weight:g}" if weight else "") + \
            (f" · last {last} {unit}" if last else "") + (" · log" if self.log_y else "")
        missing = [f"{run.name}: no {k}" for run in runs for k in metrics if k not in run.metrics]
        if not metrics:
            missing = ["no training metrics yet (only system metrics)"]
        chart.show(ChartSpec(title=title, lines=lines, x_label=self._x_label(runs, metrics),
                             log_y=self.log_y, last=last, cursor=self.cursor,
                             empty_text="; ".join(missing) or "no points yet"))
        self._draw_system(runs)
        self._show_readout(runs, metrics, missing)

    def _x_label(self, runs: list[RunInfo], metrics: list[str]) -> str:
        """What the x axis is: steps, wall time, or, where the charted metrics were all logged without a step, the
        point's index (said so: an axis of one step would stack every point at x=0)."""
        histories = [h for run in runs for key in metrics
                     if self.tracker and (h := self.tracker.history(run.run_id, key)) is not None and h.steps]
        if self.axis != "time" and histories and all(h.stepless for h in histories):
            return histories[0].x_label(self.axis)
        return "wall time (min)" if self.axis == "time" else "step"

    def _lines(self, runs: list[RunInfo], metrics: list[str]) -> list[ChartLine]:
        weight = SMOOTHING[self.smoothing]
        lines: list[ChartLine] = []
        single = len(runs) == 1  # one run: its raw curves stay visible, grey, under the smoothed ones
        color = 0
        for run in runs:
            for key in metrics:
                history = self.tracker.history(run.run_id, key) if self.tracker else None
                if history is None or not history.steps:
                    continue
                xs = history.xs(self.axis)
                label = key if len(runs) == 1 else (run.name if len(metrics) == 1 else f"{run.name} {key}")
                if history.gaps:
                    label += f" ({history.gaps} gap{'s' if history.gaps > 1 else ''})"
                ema = self._ema(run.run_id, key, history, weight) if weight else None
                if ema is not None:
                    if single:
                        lines.append(ChartLine(key, xs, history.values, history.bad_at, history.envelope, faint=True))
                    lines.append(ChartLine(label, xs, ema.values, history.bad_at, ema.envelope,
                                           color=COLORS[color % len(COLORS)]))
                elif weight:  # being smoothed in a thread: the raw curve meanwhile
                    lines.append(ChartLine(f"{label} (smoothing…)", xs, history.values, history.bad_at,
                                           history.envelope, color=COLORS[color % len(COLORS)]))
                else:
                    lines.append(ChartLine(label, xs, history.values, history.bad_at, history.envelope,
                                           color=COLORS[color % len(COLORS)]))
                color += 1
        return lines

    def _ema(self, run_id: str, key: str, history: History, weight: float) -> Ema | None:
        """The smoothed curve, fed the points it has not seen. A long history not smoothed yet is smoothed in a thread
        (a million points take about half a second): None until then, and the chart is drawn again when it is done.
        Only the current axis and weight of a curve are kept. A long curve that must be smoothed again from its first
        point (its spacing unit changed as the run went on) is rebuilt in a thread too, the old curve drawn meanwhile;
        a history rewritten in the middle (a resumed run: `revision`) is a new curve."""
        cache_key = (run_id, key, self.axis, weight, history.revision)
        ema = self._smoothed.get(cache_key)
        xs = history.xs(self.axis)
        if ema is None:
            for stale in [k for k in self._smoothed if k[:2] == (run_id, key)]:
                del self._smoothed[stale]
            if len(history) > SMOOTH_IN_THREAD:
                self._start_smoothing(cache_key, history)
                return None
            ema = self._smoothed[cache_key] = Ema(weight)
        elif len(history) > SMOOTH_IN_THREAD and ema.must_rebuild(xs, history.values):
            self._start_smoothing(cache_key, history)
            return ema  # as it was, until the thread is done
        ema.feed(xs, history.values, history.bad_at)
        return ema

    def _start_smoothing(self, cache_key: tuple[str, str, str, float, int], history: History) -> None:
        if cache_key not in self._smoothing:
            self._smoothing.add(cache_key)
            self.run_worker(self._smooth_in_thread(cache_key, history), group="training-smooth", exit_on_error=False)

    async def _smooth_in_thread(self, cache_key: tuple[str, str, str, float, int], history: History) -> None:
        count = len(history)
        xs = list(history.xs(cache_key[2])[:count])
        ys = history.values[:count]
        bad = [i for i in history.bad_at if i < count]
        ema = Ema(cache_key[3])
        try:
            await in_daemon_thread(ema.feed, xs, ys, bad)
        finally:
            self._smoothing.discard(cache_key)
        if (cache_key[2], cache_key[3], cache_key[4]) == (self.axis, SMOOTHING[self.smoothing], history.revision) \
                and cache_key[0] in self.charted:
            self._smoothed[cache_key] = ema
            self.draw_charts()

    def _draw_system(self, runs: list[RunInfo]) -> None:
        box = self.query_one("#training-system")
        run = runs[0]
        keys = [k for k in run.metric_keys if k.startswith(SYSTEM_PREFIX)]
        groups = {"gpu": [k for k in keys if k.startswith(f"{SYSTEM_PREFIX}gpu")],
                  "cpu": [k for k in keys if not k.startswith(f"{SYSTEM_PREFIX}gpu")]}
        box.set_class(bool(keys), "shown")
        for name, group in groups.items():
            lines = []
            for index, key in enumerate(group):
                history = self.tracker.history(run.run_id, key) if self.tracker else None
                if history is not None and history.steps:
                    lines.append(ChartLine(key.removeprefix(SYSTEM_PREFIX), history.xs(self.axis), history.values,
                                           history.bad_at, history.envelope, color=COLORS[index % len(COLORS)]))
            widget = self.query_one(f"#training-system-{name}", CurveChart)
            widget.display = bool(group)
            widget.show(ChartSpec(title=f"{run.name} system {name}", lines=lines, last=ZOOMS[self.zoom],
                                  x_label="wall time (min)" if self.axis == "time" else "step",
                                  empty_text=f"system {name}: no points yet"))

    def _show_readout(self, runs: list[RunInfo], metrics: list[str], missing: list[str]) -> None:
        text = Text()
        if self.cursor is not None:
            text.append(f"{'t' if self.axis == 'time' else 'step'} ≈ {_number(self.cursor)}: ", style="bold")
            for run in runs:
                for key in metrics:
                    history = self.tracker.history(run.run_id, key) if self.tracker else None
                    if history is None:
                        continue
                    i = nearest(history.xs(self.axis), self.cursor)
                    if i is None:
                        continue
                    where = f"step {history.steps[i]}"
                    label = key if len(runs) == 1 else f"{run.name} {key}"
                    text.append(f"{label}={_number(history.values[i])} ({where})  ")
        else:
            gaps = [(run.name, key, h.gaps) for run in runs for key in metrics
                    if (h := self.tracker.history(run.run_id, key) if self.tracker else None) and h.gaps]
            for name, key, count in gaps:
                text.append(f"{name} {key}: {count} NaN/inf value{'s' if count > 1 else ''} drawn as gaps  ",
                            style="yellow")
        if missing:
            text.append("; ".join(missing), style="yellow")
        self.query_one("#training-readout", Static).update(text)

    # ------------------------------------------------------------------------------------------------ actions

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_chart()

    def action_chart(self) -> None:
        selection = self.table.selection()
        if not selection:
            return
        self.chart_runs(selection)

    def chart_runs(self, run_ids: list[str]) -> None:
        self.charted = list(run_ids)
        self._pending_job = None  # a user's choice wins over a run still awaited for the Jobs pane's `t`
        self.cursor = None
        self.draw_charts()
        self.poll_now()

    def poll_now(self) -> None:
        if self.tracker is not None and self._following:
            self.run_worker(self.poll_once, group="training-poll-now", exit_on_error=False)

    def action_pick_metric(self, add: bool = False) -> None:
        from app.screens.dialogs import ChoiceScreen

        runs = self._charted_runs() or ([self.tracker.runs[k] for k in self.table.selection()
                                         if self.tracker and k in self.tracker.runs])
        keys = sorted({k for run in runs for k in run.metrics})
        if not keys:
            self.app.notify("no metrics: chart a run first (enter)", severity="warning")
            return

        def chosen(key: str | None) -> None:
            if key is None:
                return
            current = self.chart_metrics()
            self.metrics = (current + [key] if key not in current else current) if add else [key]
            self.refresh_view()
            self.chart_runs(self.charted)

        title = "Add a metric" if add else "Chart which metric"
        self.app.push_screen(ChoiceScreen(title, [(k, k) for k in keys]), chosen)

    def action_pick_experiment(self) -> None:
        """List the runs of one experiment (or of all)."""
        from app.screens.dialogs import ChoiceScreen

        known = sorted(set(self.tracker.tracking.known_experiments.values())) if self.tracker else []
        if not known:
            self.app.notify("no experiments known yet (MLflow has not answered)", severity="warning")
            return

        def chosen(name: str | None) -> None:
            if name is None:
                return
            self.experiment = None if name == "*" else name
            self.charted = [r for r in self.charted if self.experiment is None
                            or (self.tracker and self.tracker.runs.get(r)
                                and self.tracker.runs[r].experiment == self.experiment)]
            self.runs = [r for r in self.runs if self.experiment is None or r.experiment == self.experiment]
            self.refresh_view()
            self.poll_now()

        self.app.push_screen(ChoiceScreen("List the runs of", [("*", "every experiment")] + [(n, n) for n in known]),
                             chosen)

    def action_add_metric(self) -> None:
        self.action_pick_metric(add=True)

    def action_toggle_axis(self) -> None:
        self.axis = "time" if self.axis == "step" else "step"
        self.cursor = None
        self.draw_charts()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.draw_charts()

    def action_smooth(self, delta: int) -> None:
        self.smoothing = min(len(SMOOTHING) - 1, max(0, self.smoothing + delta))
        self.draw_charts()

    def action_zoom(self) -> None:
        self.zoom = (self.zoom + 1) % len(ZOOMS)
        self.draw_charts()

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by one pixel column of the chart (half a cell), or put it on the last point."""
        xs_all = [self.tracker.history(r.run_id, k).xs(self.axis) for r in self._charted_runs()
                  for k in self.chart_metrics() if self.tracker and self.tracker.history(r.run_id, k)]
        xs_all = [xs for xs in xs_all if xs]
        if not xs_all:
            return
        hi = max(xs[-1] for xs in xs_all)
        lo = min(xs[window(xs, ZOOMS[self.zoom])[0]] for xs in xs_all)
        if self.cursor is None:
            self.cursor = hi
        else:
            pixels = self.query_one("#training-charts", CurveChart).buckets
            self.cursor = min(hi, max(lo, self.cursor + delta * (hi - lo) / max(1, pixels)))
        self.draw_charts()

    def action_clear_cursor(self) -> None:
        self.cursor = None
        self.draw_charts()

    def action_job(self) -> None:
        key = self.table.cursor_key
        job = self.links.get(key) if key else None
        if job is None:
            self.app.notify("no job in the cluster for this run (run name = job name, or the "
                            f"{self.job_tag or 'hyperdesk.job'} tag)", severity="warning")
            return
        self.app.show_job(job.key)  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self.poll_now()

    def action_export(self) -> None:
        """Save what the chart shows: the charted metrics of the charted runs, within the zoom, with the smoothed
        values beside the raw ones when smoothing is on. Only copies of the zoomed points are taken here; the rows
        are built and written in a thread (a million points take seconds), and a notice says when it is saved."""
        runs = self._charted_runs()
        weight = SMOOTHING[self.smoothing]
        parts: list[ExportPart] = []
        for run in runs:
            for key in self.chart_metrics():
                history = self.tracker.history(run.run_id, key) if self.tracker else None
                if history is None or not history.steps:
                    continue
                first = window(history.xs(self.axis), ZOOMS[self.zoom])[0]
                ema = self._ema(run.run_id, key, history, weight) if weight else None
                parts.append(ExportPart.of(run.name, run.run_id, history, first, self.axis, weight,
                                           ema.values if ema is not None else None))
        if not parts:
            self.app.notify("nothing charted to export", severity="warning")
            return
        stem = f"{runs[0].name}{'-and-more' if len(runs) > 1 else ''}-{'-'.join(self.chart_metrics())}"
        self.run_worker(self._export(parts, stem), group="training-export", exit_on_error=False)

    async def _export(self, parts: list["ExportPart"], stem: str) -> None:
        count = sum(len(part.history) for part in parts)
        if count > SMOOTH_IN_THREAD:
            self.app.notify(f"saving {count} points…")
        try:
            path = await in_daemon_thread(write_export, parts, Path.home() / "hyperdesk-curves", stem)
        except OSError as exc:
            self.app.notify(f"could not save the CSV: {exc.strerror or exc}"
                            f"{f' ({exc.filename})' if exc.filename else ''}", severity="error")
            return
        self.app.notify(f"saved {count} points to {path}")

    def show_job_runs(self, namespace: str, name: str) -> None:
        """The reverse link: chart the runs of this job (from the Jobs pane's `t`)."""
        self._pending_job = (namespace, name)
        self._pending_polls = 0
        if self.state != "live":
            self.app.notify(f"waiting for MLflow… (the runs of {namespace}/{name} are charted once it answers)")
        self._open_pending_job()

    def _open_pending_job(self) -> None:
        if self._pending_job is None:
            return
        namespace, name = self._pending_job
        stores = self._job_stores()
        from app.model.jobs import job_rows

        jobs = [JobRef(j.key, j.namespace, j.name, j.state) for j in job_rows(stores)] if stores else []
        found = runs_of_job(self.runs, JobRef("", namespace, name), jobs, self.job_tag,
                            getattr(self.app, "namespace", None))
        if not found:
            if self.state == "live":
                self.app.notify(f"no MLflow run for job {namespace}/{name} (run name = job name, or the "
                                f"{self.job_tag or 'hyperdesk.job'} tag)", severity="warning")
                self._pending_job = None
            elif self._pending_polls >= 1:  # one poll failed: give up rather than hijack the chart later
                self.app.notify(f"MLflow is not answering: the runs of job {namespace}/{name} were not charted "
                                f"({self.state_detail or self.state})", severity="warning")
                self._pending_job = None
            return
        self._pending_job = None
        run = found[0]
        if run.run_id in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(run.run_id), animate=False)
        self.chart_runs([run.run_id])


async def in_daemon_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in its own daemon thread: a call that hangs on a dead server never holds a slot of the loop's default
    pool (other workers' `to_thread`) and never keeps the app from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def runner() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            ok, result = False, exc
        else:
            ok = True
        try:
            loop.call_soon_threadsafe(settle, ok, result)
        except RuntimeError:
            pass  # the loop is gone (the app quit)

    threading.Thread(target=runner, name="hyperdesk-mlflow", daemon=True).start()
    return await future


@dataclass
class ExportPart:
    """One curve to export, copied on the event loop (list slices, C speed): the zoomed points, and the smoothed
    values where they are ready, else what the thread needs to smooth them (`full_xs`, `full`)."""

    name: str
    run_id: str
    history: History
    """A copy of the zoomed points only."""
    smoothed: list[float] | None
    weight: float
    first: int
    full_xs: list[float] | None = None
    full: History | None = None

    @classmethod
    def of(cls, name: str, run_id: str, history: History, first: int, axis: str, weight: float,
           smoothed: list[float] | None) -> "ExportPart":
        count = len(history)
        zoomed = History(history.key, history.steps[first:count], history.times[first:count],
                         history.values[first:count])
        part = cls(name, run_id, zoomed, list(smoothed[first:count]) if smoothed is not None else None, weight,
                   first)
        if weight and smoothed is None:  # being smoothed in a thread: smooth a copy in the export's own
            part.full_xs = list(history.xs(axis)[:count])
            part.full = History(history.key, values=history.values[:count],
                                bad_at=[i for i in history.bad_at if i < count])
        return part


def write_export(parts: list[ExportPart], directory: Path, stem: str) -> Path:
    """Blocking (a thread): smooth what was not smoothed yet, build the rows, write the file."""
    for part in parts:
        if part.full is not None and part.full_xs is not None:
            ema = Ema(part.weight)
            ema.feed(part.full_xs, part.full.values, part.full.bad_at)
            part.smoothed = ema.values[part.first:]
    series = [(part.name, part.run_id, part.history) for part in parts]
    smoothed = [part.smoothed for part in parts] if any(part.weight for part in parts) else None
    return export_csv(series, directory, stem, None, smoothed)


def export_csv(series: list[tuple[str, str, History]], directory: Path, stem: str,
               start: list[int] | None = None, smoothed: list[Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[:120]
    path = directory / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(csv_rows(series, start, smoothed))
    return path


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def _clock(ms: int | None) -> str:
    return time.strftime("%m-%d %H:%M", time.gmtime(ms / 1000)) if ms else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
