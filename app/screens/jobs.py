"""The Jobs pane: the training queue with Kueue task governance."""

from __future__ import annotations

from typing import Mapping

from rich.text import Text

from textual.binding import Binding

from app.model.jobs import STATES, human_duration, job_rows, utcnow
from app.screens.pane import Pane, sort_bindings
from widgets.resource_table import ResourceTable, Row


class JobsPane(Pane):
    pane_id = "jobs"
    title = "Jobs"
    key = "2"
    columns = ("NAME", "TEAM", "KIND", "QUEUE", "PRIORITY", "STATE", "POS", "GPUS", "NODES×PROCS", "RESTARTS",
               "AGE", "RUN TIME", "WHY")
    purpose = "The training queue with Kueue task governance."
    kinds = ("hyperpodpytorchjobs", "pytorchjobs", "jobs", "jobsets", "workloads", "localqueues", "clusterqueues",
             "workloadpriorityclasses", "pods", "events")
    BINDINGS = [
        Binding("d", "detail", "Describe", id="jobs.detail"),
        Binding("y", "yaml", "YAML", id="jobs.yaml"),
        Binding("l", "logs", "Logs", id="jobs.logs"),
        Binding("g", "quotas", "Quotas", id="jobs.quotas"),
        Binding("n", "new", "New job", id="jobs.new"),
        Binding("ctrl+d", "cancel", "Cancel", id="jobs.cancel"),
        Binding("z", "suspend", "Suspend/resume", id="jobs.suspend"),
        Binding("p", "priority", "Priority", show=False, id="jobs.priority"),
        Binding("e", "edit", "Edit", show=False, id="jobs.edit"),
        Binding("t", "training", "Training curves", show=False, id="jobs.training"),
        *sort_bindings({"N": "NAME", "T": "TEAM", "K": "KIND", "Q": "QUEUE", "P": "PRIORITY", "S": "STATE",
                        "O": "POS", "G": "GPUS", "R": "RESTARTS", "A": "AGE", "U": "RUN TIME"}, "jobs"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.positions: Mapping[str, int] = {}
        """Workload -> position in its ClusterQueue, from the visibility API (the app polls it while shown)."""

    def rows(self, stores: Mapping[str, Mapping[str, dict]]) -> list[Row]:
        now = utcnow()
        return [
            Row(job.key, (
                job.name, job.team, job.kind, job.queue or "", job.priority or "", _state(job.state),
                "" if job.position is None else str(job.position), job.gpu_text, f"{job.nodes}×{job.procs}",
                str(job.restarts), human_duration(job.age_seconds(now)), human_duration(job.run_seconds(now)),
                job.hint,
            ), sort=(
                job.name, job.team, job.kind, job.queue, job.priority, STATES.index(job.state), job.position,
                job.gpus + sum(job.mig.values()), job.nodes * job.procs, job.restarts,
                -(job.age_seconds(now) or 0), job.run_seconds(now), job.hint,
            ))
            for job in job_rows(stores, self.positions)
        ]

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.open_job_detail(key)  # type: ignore[attr-defined]

    def action_yaml(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.open_job_yaml(key)  # type: ignore[attr-defined]

    def action_logs(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.open_job_logs(key)  # type: ignore[attr-defined]

    def action_new(self) -> None:
        self.app.new_job()  # type: ignore[attr-defined]

    def action_quotas(self) -> None:
        self.app.open_quotas()  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        self.app.cancel_jobs(self.table.selection())  # type: ignore[attr-defined]

    def action_suspend(self) -> None:
        self.app.toggle_suspend_jobs(self.table.selection())  # type: ignore[attr-defined]

    def action_priority(self) -> None:
        self.app.change_job_priority(self.table.selection())  # type: ignore[attr-defined]

    def action_training(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.open_job_training(key)  # type: ignore[attr-defined]

    def action_edit(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.edit_job(key)  # type: ignore[attr-defined]


STATE_STYLES = {"Running": "green", "Succeeded": "dim", "Failed": "red", "Preempted": "yellow", "Queued": "cyan",
                "Suspended": "dim", "Admitted": "blue"}


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))
