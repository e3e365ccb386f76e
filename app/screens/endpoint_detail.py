"""The detail view of one endpoint: state and why, the deployment status, conditions, pods with node and GPU, recent
events, the autoscaling spec, and live request figures from the pods' Prometheus metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from app.model.endpoints import FAILED_STATES, EndpointDetail
from app.model.jobs import human_duration, utcnow
from app.screens.detail import EVENT_COLUMNS, ago, conditions_table, event_cells, events_table, fill, section

REFRESH_SECONDS = 1.0
METRICS_SECONDS = 3.0


class EndpointDetailScreen(Screen[None]):
    """Plain data in: `load()` gives the endpoint's current EndpointDetail (None once it is gone); `metrics()`, when
    given, one line of live request figures (run in a worker every METRICS_SECONDS)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="endpoint_detail.back"),
        Binding("i", "invoke", "Invoke", id="endpoint_detail.invoke"),
        Binding("s", "scale", "Scale", id="endpoint_detail.scale"),
        Binding("l", "logs", "Logs", id="endpoint_detail.logs"),
        Binding("y", "yaml", "YAML", id="endpoint_detail.yaml"),
    ]

    def __init__(self, load: Callable[[], EndpointDetail | None],
                 metrics: Callable[[], Awaitable[str]] | None = None, now: Callable[[], datetime] = utcnow) -> None:
        super().__init__()
        self._load = load
        self._metrics = metrics
        self._now = now
        self.metrics_line = "reading the pods' metrics…" if metrics else "no metrics source"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-summary")
            yield section("Requests (Prometheus metrics of the pods)", Static(self.metrics_line, id="endpoint-metrics"))
            yield section("Conditions", conditions_table())
            yield section("Pods", DataTable(id="detail-pods", cursor_type="row"))
            yield section("Autoscaling", Static(id="endpoint-autoscaling"))
            yield section("Events", events_table())
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-conditions", DataTable).add_columns("AGE", "TYPE", "STATUS", "REASON", "MESSAGE")
        self.query_one("#detail-pods", DataTable).add_columns("POD", "NODE", "PHASE", "RESTARTS", "GPUS")
        self.query_one("#detail-events", DataTable).add_columns(*EVENT_COLUMNS)
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)
        if self._metrics is not None:
            self.poll_metrics()

    @work(exclusive=True, group="endpoint-metrics", exit_on_error=False)
    async def poll_metrics(self) -> None:
        """Self-rescheduling: one read at a time, never overlapping; a failure is a line, not a crash."""
        import asyncio

        assert self._metrics is not None
        while True:
            try:
                self.metrics_line = await self._metrics()
            except Exception as exc:  # noqa: BLE001 - shown, never raised
                self.metrics_line = f"cannot read metrics: {exc}"
            self.query_one("#endpoint-metrics", Static).update(self.metrics_line)
            await asyncio.sleep(METRICS_SECONDS)

    def show(self) -> None:
        detail = self._load()
        summary = self.query_one("#detail-summary", Static)
        if detail is None:
            summary.update(Text("This endpoint no longer exists.", style="bold"))
            return
        now = self._now()
        row = detail.row
        failed = row.state in FAILED_STATES
        text = Text.assemble(
            (f"{row.kind} ", "dim"), (row.name, "bold"), (f"  {row.namespace}\n", "dim"),
            ("State ", "dim"), (row.state, "bold red" if failed else "bold"),
            (f"   replicas {row.ready_text} ready   instance {row.instance_type or '—'}"
             f"   age {human_duration(row.age_seconds(now))}\n",),
            ("Model ", "dim"), (row.model or "—",), ("   URL ", "dim"), (row.url or "—",),
            ("\nService ", "dim"), (f"{row.service}:{row.service_port}",),
        )
        if detail.deployment:
            text.append("\nDeployment ", style="dim")
            text.append(detail.deployment)
        if detail.sagemaker:
            text.append("\nSageMaker endpoint ", style="dim")
            text.append(detail.sagemaker)
        if row.reason:
            text.append(f"\nWhy: {row.reason}", style="bold red" if failed else "bold yellow")
        for line in detail.stuck:
            text.append(f"\nPod {line}", style="yellow")
        summary.update(text)
        self.query_one("#endpoint-autoscaling", Static).update(
            "\n".join(f"{k}: {v}" for k, v in detail.autoscaling) or "no autoscaling spec: replicas are fixed")
        fill(self.query_one("#detail-conditions", DataTable),
             [(ago(c.time, now), c.type, c.status, c.reason, c.message) for c in detail.conditions])
        fill(self.query_one("#detail-pods", DataTable),
             [(p.name, p.node, p.phase, str(p.restarts), p.gpus) for p in detail.pods])
        fill(self.query_one("#detail-events", DataTable), [
            event_cells(e.time, e.type, e.reason, e.count, e.object, e.message, now) for e in detail.events])

    def _act(self, name: str) -> None:
        from app.screens import endpoint_actions

        detail = self._load()
        if detail is not None:
            getattr(endpoint_actions, name)(self.app, detail.row.key)

    def action_invoke(self) -> None:
        self._act("open_invoke")

    def action_scale(self) -> None:
        self._act("scale")

    def action_logs(self) -> None:
        self._act("open_logs")

    def action_yaml(self) -> None:
        self._act("open_yaml")
