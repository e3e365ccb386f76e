"""Snapshots of the Jobs views from fixed plain data: the detail view and the log view.

The pane itself on the simulated cluster is covered by tests/test_jobs_pane.py; these pin the layout.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from textual.app import App, ComposeResult

from app.model.jobs import ConditionEntry, EventEntry, JobDetail, JobRow
from app.screens.job_detail import JobDetailScreen
from themes import BUILTIN, STYLESHEET
from widgets.log_view import LogView

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


ROW = JobRow(
    key="pytorchjobs/hyperpod-ns-vision/sam2-hiera-pretrain", name="sam2-hiera-pretrain",
    namespace="hyperpod-ns-vision", team="vision", kind="PyTorchJob", queue="hyperpod-ns-vision-localqueue",
    priority="training-priority", state="Preempted", position=2, gpus=24, mig={}, nodes=3, procs=8, restarts=0,
    created=ago(95), started=ago(80), finished=None,
    hint="InClusterQueue: Preempted to accommodate a workload (UID: 5b1e…, JobUID: 9c2a…) due to prioritization "
         "in the ClusterQueue",
    workload="hyperpod-ns-vision/pytorchjob-sam2-hiera-pretrain-9d12d",
    pods=(),
)
DETAIL = JobDetail(
    row=ROW,
    conditions=(
        ConditionEntry(ago(95), "Job", "Created", "True", "PyTorchJobCreated", "PyTorchJob sam2-hiera-pretrain is created."),
        ConditionEntry(ago(94), "Workload", "QuotaReserved", "True", "QuotaReserved",
                       "Quota reserved in ClusterQueue hyperpod-ns-vision-clusterqueue"),
        ConditionEntry(ago(94), "Workload", "Admitted", "True", "Admitted", "The workload is admitted"),
        ConditionEntry(ago(12), "Workload", "Evicted", "True", "Preempted",
                       "Preempted to accommodate a workload due to prioritization in the ClusterQueue"),
        ConditionEntry(ago(12), "Workload", "Preempted", "True", "InClusterQueue",
                       "Preempted to accommodate a workload due to prioritization in the ClusterQueue"),
    ),
    pods=(),
    events=(
        EventEntry(ago(12), "Normal", "Preempted", "workload/pytorchjob-sam2-hiera-pretrain-9d12d",
                   "Preempted to accommodate a workload due to prioritization in the ClusterQueue", 1),
        EventEntry(ago(11), "Normal", "Suspended", "pytorchjob/sam2-hiera-pretrain", "Job suspended by Kueue", 1),
    ),
    admission="",
)

LOG_LINES = [f"[sam2-hiera-pretrain-worker-{i % 3}] step {100 + i:>5} loss {2.5 - i * 0.01:.4f} lr 3.0e-04"
             for i in range(60)]


class ViewApp(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self) -> None:
        super().__init__()
        self.register_theme(BUILTIN["hyperdesk-dark"])
        self.theme = "hyperdesk-dark"


class DetailApp(ViewApp):
    def on_mount(self) -> None:
        self.push_screen(JobDetailScreen(lambda: DETAIL, now=lambda: NOW))


class LogApp(ViewApp):
    def compose(self) -> ComposeResult:
        yield LogView(LOG_LINES, id="logs-view")

    def on_mount(self) -> None:
        view = self.query_one(LogView)
        view.set_search("loss 2.1")
        view.follow = False


@pytest.mark.usefixtures("isolated_home")
def test_job_detail_view(snap_compare) -> None:
    assert snap_compare(DetailApp(), terminal_size=(150, 40))


@pytest.mark.usefixtures("isolated_home")
def test_log_view_with_a_search(snap_compare) -> None:
    assert snap_compare(LogApp(), terminal_size=(100, 24))


def quota_fixture():
    from decimal import Decimal as D

    from app.cluster.queues import ClusterQueueRow, LocalQueueRow, QuotaRow

    def q(cq, flavor, resource, nominal, used, borrowed=0, limit=None, lend=None):
        return QuotaRow(cq, "hyperpod-cohort", flavor, resource, D(nominal), D(used), D(used), D(borrowed),
                        None if limit is None else D(limit), None if lend is None else D(lend))

    return [
        ClusterQueueRow("hyperpod-ns-nlp-clusterqueue", "hyperpod-cohort", 1, 2, 2, False, (
            q("hyperpod-ns-nlp-clusterqueue", "ml.p5.48xlarge", "nvidia.com/gpu", 16, 20, borrowed=4, limit=8, lend=8),
            q("hyperpod-ns-nlp-clusterqueue", "ml.p5.48xlarge-mig", "nvidia.com/mig-1g.10gb", 14, 4),
        ), (LocalQueueRow("hyperpod-ns-nlp", "hyperpod-ns-nlp-localqueue", "hyperpod-ns-nlp-clusterqueue", 1, 2, 2),)),
        ClusterQueueRow("hyperpod-ns-vision-clusterqueue", "hyperpod-cohort", 0, 1, 1, False, (
            q("hyperpod-ns-vision-clusterqueue", "ml.g5.12xlarge", "nvidia.com/gpu", 8, 4, lend=4),
        ), ()),
    ]


class QuotaApp(ViewApp):
    def on_mount(self) -> None:
        from app.screens.quotas import QuotaScreen

        data = quota_fixture()
        self.push_screen(QuotaScreen(lambda: data))


@pytest.mark.usefixtures("isolated_home")
def test_quota_view(snap_compare) -> None:
    assert snap_compare(QuotaApp(), terminal_size=(130, 24))


class FormApp(ViewApp):
    def on_mount(self) -> None:
        from app.screens.job_form import JobFormScreen

        self.push_screen(JobFormScreen("ddp", namespace="hyperpod-ns-research",
                                       queues=["hyperpod-ns-research-localqueue"],
                                       priorities=["inference-priority", "training-priority"], serves_hyperpod=True))


@pytest.mark.usefixtures("isolated_home")
def test_new_job_form(snap_compare) -> None:
    async def fill(pilot) -> None:
        from textual.widgets import Input

        form = pilot.app.screen
        form.query_one("#f-name", Input).value = "llama3-8b-ddp"
        form.query_one("#f-image", Input).value = "pytorch/pytorch:2.5.1-cuda12.4"
        for widget in form.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(FormApp(), run_before=fill, terminal_size=(160, 48))
