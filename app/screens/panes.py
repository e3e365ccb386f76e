"""The five panes. Each is a titled table of plain rows plus a line that explains an empty table.

Until a pane's own issue lands it shows its columns and says what will appear there; navigation, focus, filter
and split mode already work on every pane.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from rich.text import Text

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from app.model.jobs import STATES, human_duration, job_rows, utcnow
from widgets.resource_table import ResourceTable, Row


def sort_bindings(keys: dict[str, str], pane_id: str) -> list[Binding]:
    """k9s's shift+letter sorting: `N` sorts by NAME, again reverses."""
    return [
        Binding(key, f"sort({label!r})", f"Sort by {label.lower()}", show=False,
                id=f"{pane_id}.sort.{label.lower().replace(' ', '_').replace('×', 'x')}")
        for key, label in keys.items()
    ]


class Pane(Vertical):
    pane_id: ClassVar[str]
    title: ClassVar[str]
    key: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    purpose: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    """The stores (app/cluster/resources.py names) this pane reads."""

    DEFAULT_CLASSES = "pane"
    BINDINGS = [Binding("space", "mark", "Mark", show=False, id="pane.mark")]

    def __init__(self) -> None:
        super().__init__(id=self.pane_id)
        self.border_title = f"{self.key} {self.title}"

    def compose(self) -> ComposeResult:
        yield ResourceTable(self.columns, id=f"{self.pane_id}-table")
        yield Static(self.purpose, classes="empty")

    @property
    def table(self) -> ResourceTable:
        return self.query_one(ResourceTable)

    def rows(self, stores: Mapping[str, Mapping[str, dict]]) -> list[Row] | None:
        """The table's rows from this pane's stores (store name -> key -> object); None while the pane has no
        view of its own yet."""
        return None

    def show_notice(self, text: str) -> None:
        """The line under the table: why it is empty, or what the cluster state means for this pane."""
        self.query_one(".empty", Static).update(text or self.purpose)

    def action_mark(self) -> None:
        self.table.toggle_mark()

    def action_sort(self, label: str) -> None:
        self.table.sort_by(label)

    def focus(self, scroll_visible: bool = True) -> "Pane":
        self.table.focus(scroll_visible)
        return self


class SpacesPane(Pane):
    pane_id = "spaces"
    title = "Spaces"
    key = "1"
    columns = ("NAME", "DISPLAY NAME", "OWNER", "APP", "STATUS", "GPUS", "IDLE", "AGE")
    purpose = "Your JupyterLab and Code Editor spaces on the cluster — coming soon."
    kinds = ("workspaces", "workspacetemplates", "notebooks", "pods")


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

    def action_edit(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self.app.edit_job(key)  # type: ignore[attr-defined]


STATE_STYLES = {"Running": "green", "Succeeded": "dim", "Failed": "red", "Preempted": "yellow", "Queued": "cyan",
                "Suspended": "dim", "Admitted": "blue"}


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


class GpusPane(Pane):
    pane_id = "gpus"
    title = "GPUs"
    key = "3"
    columns = ("NODE", "GPU", "MODEL", "MIG", "UTIL", "MEMORY", "HOLDER")
    purpose = "Live GPU and MIG utilisation across the cluster, and who holds each GPU — coming soon."
    kinds = ("nodes", "pods")


class TrainingPane(Pane):
    pane_id = "training"
    title = "Training"
    key = "4"
    columns = ("RUN", "EXPERIMENT", "STATUS", "STEP", "LOSS", "JOB")
    purpose = "Live loss curves from MLflow, next to the job that produces them — coming soon."
    kinds = ()


class EndpointsPane(Pane):
    pane_id = "endpoints"
    title = "Endpoints"
    key = "5"
    columns = ("NAME", "NAMESPACE", "KIND", "MODEL", "STATE", "READY", "URL")
    purpose = "Inference endpoints, with invoke, load test and scale — coming soon."
    kinds = ("jumpstartmodels", "inferenceendpointconfigs", "inferenceservices", "pods")


PANE_CLASSES: tuple[type[Pane], ...] = (SpacesPane, JobsPane, GpusPane, TrainingPane, EndpointsPane)
PANE_IDS = tuple(cls.pane_id for cls in PANE_CLASSES)
