"""Snapshots of the app shell: each pane, each theme, split view and the help screen.

Look at the SVGs in snapshots/test_snapshots_shell/ after `pytest --snapshot-update`; they are what a user sees.
"""

from __future__ import annotations

import pytest

from app.config import Settings
from app.tui import HyperdeskApp
from widgets.resource_table import ResourceTable, Row

pytestmark = pytest.mark.usefixtures("isolated_home")

SIZE = (130, 30)

JOBS = [
    Row("a/llama3-70b-sft", ("llama3-70b-sft", "team-a", "HyperPodPyTorchJob", "team-a-lq", "training-priority",
                             "Running", "", "16", "2×8", "0", "2h", "1h", "")),
    Row("b/mistral-eval", ("mistral-eval", "team-b", "Job", "team-b-lq", "experimentation-priority", "Queued", "1",
                           "1", "1×1", "0", "5m", "", "insufficient quota for nvidia.com/gpu in flavor ml.p5.48xlarge")),
]


def shell(**settings) -> HyperdeskApp:
    return HyperdeskApp(Settings(**settings), kubeconfig=None)


async def fill_jobs(pilot) -> None:
    pilot.app.pane("jobs").query_one(ResourceTable).set_rows(JOBS)
    await pilot.pause()


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"])
def test_pane(snap_compare, key: str) -> None:
    assert snap_compare(shell(), press=[key], terminal_size=SIZE)


@pytest.mark.parametrize("theme", ["hyperdesk-dark", "hyperdesk-light", "hyperdesk-ansi"])
def test_theme(snap_compare, theme: str) -> None:
    assert snap_compare(shell(theme=theme, readonly=True), run_before=fill_jobs, terminal_size=SIZE)


def test_split_view(snap_compare) -> None:
    assert snap_compare(shell(), press=["v"], run_before=fill_jobs, terminal_size=SIZE)


def test_help_screen(snap_compare) -> None:
    assert snap_compare(shell(), press=["question_mark"], terminal_size=(130, 44))


def test_command_prompt_with_completion(snap_compare) -> None:
    async def type_command(pilot) -> None:
        await pilot.press("colon", "e", "n")
        pilot.app.query_one("#prompt").cursor_blink = False
        await pilot.pause(0.2)

    assert snap_compare(shell(), run_before=type_command, terminal_size=SIZE)
