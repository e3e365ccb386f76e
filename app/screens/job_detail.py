"""The detail view of one job: state and why, Kueue's admission, a conditions timeline, its pods, recent events."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from app.model.jobs import JobDetail, human_duration, utcnow
from app.screens.detail import EVENT_COLUMNS, ago, conditions_table, event_cells, events_table, fill, section

REFRESH_SECONDS = 1.0


class JobDetailScreen(Screen[None]):
    """Plain data in: `load()` returns the job's current JobDetail, or None once the job is gone."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="detail.back"),
        Binding("l", "logs", "Logs", id="detail.logs"),
        Binding("y", "yaml", "YAML", id="detail.yaml"),
    ]

    def __init__(self, load: Callable[[], JobDetail | None], now: Callable[[], datetime] = utcnow) -> None:
        super().__init__()
        self._load = load
        self._now = now

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-summary")
            yield section("Conditions", conditions_table())
            yield section("Pods", DataTable(id="detail-pods", cursor_type="row"))
            yield section("Events", events_table())
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-conditions", DataTable).add_columns("AGE", "OF", "TYPE", "STATUS", "REASON", "MESSAGE")
        self.query_one("#detail-pods", DataTable).add_columns("POD", "NODE", "PHASE", "RESTARTS", "GPUS")
        self.query_one("#detail-events", DataTable).add_columns(*EVENT_COLUMNS)
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)

    @property
    def detail(self) -> JobDetail | None:
        return self._load()

    def show(self) -> None:
        detail = self._load()
        summary = self.query_one("#detail-summary", Static)
        if detail is None:
            summary.update(Text("This job no longer exists.", style="bold"))
            return
        now = self._now()
        row = detail.row
        text = Text.assemble(
            (f"{row.kind} ", "dim"), (row.name, "bold"), (f"  {row.namespace}\n", "dim"),
            ("State ", "dim"), (row.state, "bold"),
            (f"   queue {row.queue or '—'}   priority {row.priority or '—'}   GPUs {row.gpu_text or '0'}"
             f"   {row.nodes}×{row.procs}   restarts {row.restarts}   age {human_duration(row.age_seconds(now))}",),
        )
        if row.position is not None:
            text.append(f"   position {row.position}")
        if row.hint:
            text.append(f"\nWhy: {row.hint}", style="bold yellow")
        if detail.admission:
            text.append(f"\nAdmitted to {detail.admission}", style="dim")
        summary.update(text)
        fill(self.query_one("#detail-conditions", DataTable), [
            (ago(c.time, now), c.source, c.type, c.status, c.reason, c.message) for c in detail.conditions])
        fill(self.query_one("#detail-pods", DataTable),
             [(p.name, p.node, p.phase, str(p.restarts), p.gpus) for p in detail.pods])
        fill(self.query_one("#detail-events", DataTable), [
            event_cells(e.time, e.type, e.reason, e.count, e.object, e.message, now) for e in detail.events])

    def action_logs(self) -> None:
        detail = self._load()
        if detail is not None:
            self.app.open_logs(detail.row)  # type: ignore[attr-defined]

    def action_yaml(self) -> None:
        detail = self._load()
        if detail is not None:
            self.app.open_yaml(detail.row)  # type: ignore[attr-defined]
