"""Snapshots of the Training pane from fixed plain data: the runs list, a single curve, and two runs overlaid.

The pane against a real MLflow server is covered by tests/test_training_pane.py; these pin what it looks like.
Look at the SVGs in snapshots/test_snapshots_training/ after `pytest --snapshot-update`.
"""

from __future__ import annotations

import math
import random

from textual.app import App, ComposeResult

from app.screens.training import TrainingPane
from app.tracking.client import RunInfo, Tracker, Tracking
from app.tracking.curves import History
from app.tracking.links import JobRef
from tests.test_tui_navigation import wait_for
from themes import BUILTIN, STYLESHEET

NOW = 1_795_000_000.0  # seconds: the pane's clock, fixed
START = int(NOW * 1000) - 3_600_000
SIZE = (150, 48)


def curve(key: str, steps: int, floor: float, scale: float, seed: int, gaps: tuple[int, ...] = ()) -> History:
    rng = random.Random(seed)
    history = History(key)
    history.extend((s, START + s * 2000, math.nan if s in gaps else
                    floor + scale * math.exp(-s / (steps / 4)) * (1 + rng.gauss(0, 0.04))) for s in range(steps))
    return history


def run(run_id: str, name: str, status: str, steps: int, seed: int, **extra) -> tuple[RunInfo, dict[str, History]]:
    histories = {"loss": curve("loss", steps, 0.4, 2.2, seed, extra.pop("gaps", ())),
                 "eval_loss": curve("eval_loss", steps, 0.45, 2.2, seed + 100)}
    info = RunInfo(run_id=run_id, name=name, experiment_id="1", experiment="hyperpod-ns-nlp", status=status,
                   start_time=START + seed * 60_000, end_time=None if status == "RUNNING" else START + 3_000_000,
                   metrics={k: h.last_value for k, h in histories.items()},
                   steps={k: h.last_step for k, h in histories.items()},
                   params={"learning_rate": "0.0002", "model": "mistral-7b", "max_steps": str(steps)},
                   tags={"hyperdesk.job": f"hyperpod-ns-nlp/{name}"}, **extra)
    return info, histories


RUNS = [
    run("a" * 32, "mistral-7b-sft", "RUNNING", 900, 1, gaps=(400, 401, 402)),
    run("b" * 32, "mistral-7b-sft-lr3e4", "FINISHED", 1200, 2),
    run("c" * 32, "bert-ner-sweep", "FAILED", 300, 3),
]
JOBS = {"a" * 32: JobRef("pytorchjobs/hyperpod-ns-nlp/mistral-7b-sft", "hyperpod-ns-nlp", "mistral-7b-sft", "Running")}


class TrainingApp(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self, charted: list[str]) -> None:
        super().__init__()
        self.register_theme(BUILTIN["hyperdesk-dark"])
        self.theme = "hyperdesk-dark"
        self.charted = charted

    def compose(self) -> ComposeResult:
        yield TrainingPane()

    def on_mount(self) -> None:
        pane = self.query_one(TrainingPane)
        pane.now = lambda: NOW
        tracker = Tracker(Tracking("http://127.0.0.1:5000"))  # never asked: the data below is all there is
        for info, histories in RUNS:
            tracker.runs[info.run_id] = info
            for key, history in histories.items():
                tracker.histories[(info.run_id, key)] = history
        pane.links = dict(JOBS)
        pane.set_tracker(tracker)
        if self.charted:
            pane.chart_runs(self.charted)


async def _settle(pilot, lines: int = 0) -> None:
    """Wait until the table holds the runs and the chart its lines (and the chart has a size), then one more frame."""
    pane = pilot.app.query_one(TrainingPane)
    chart = pane.query_one("#training-charts")
    await wait_for(pilot, lambda: pane.table.row_count == len(RUNS) and len(chart.spec.lines) >= lines
                   and chart.size.width > 0)
    await pilot.pause()


def test_runs_list(snap_compare) -> None:
    assert snap_compare(TrainingApp([]), run_before=_settle, terminal_size=SIZE)


def test_single_curve_with_gaps(snap_compare) -> None:
    async def single(pilot) -> None:
        pane = pilot.app.query_one(TrainingPane)
        pane.metrics = ["loss"]
        pane.chart_runs(["a" * 32])
        await _settle(pilot, lines=2)

    assert snap_compare(TrainingApp([]), run_before=single, terminal_size=SIZE)


def test_overlay_with_legend(snap_compare) -> None:
    async def overlay(pilot) -> None:
        pane = pilot.app.query_one(TrainingPane)
        pane.metrics = ["loss"]
        pane.chart_runs(["a" * 32, "b" * 32])
        await _settle(pilot, lines=2)

    assert snap_compare(TrainingApp([]), run_before=overlay, terminal_size=SIZE)
