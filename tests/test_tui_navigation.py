"""The app shell driven through its keys with Textual's Pilot: panes, split, command mode, filter, help, quit."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Tabs

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.screens.dialogs import ConfirmScreen, HelpScreen
from app.screens.panes import PANE_IDS
from app.tui import HyperdeskApp
from tests.plugins.tui import closed_port, record_notifications, wait_for, write_kubeconfig
from widgets.prompt import Prompt
from widgets.resource_table import ResourceTable, Row
from widgets.topbar import TopBar

pytestmark = pytest.mark.usefixtures("isolated_home")


def visible_panes(app: HyperdeskApp) -> list[str]:
    return [p for p in PANE_IDS if app.pane(p).display]


def topbar_text(app: HyperdeskApp) -> str:
    bar = app.query_one(TopBar)
    return " ".join(str(s.render()) for s in bar.query("Static") if s.display)


async def test_starts_on_jobs_and_number_keys_switch_panes() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        assert visible_panes(app) == ["jobs"]
        for key, pane in zip("12345", PANE_IDS):
            await pilot.press(key)
            assert visible_panes(app) == [pane]
            assert app.focused is app.pane(pane).table
            assert app.query_one(Tabs).active == pane


async def test_clicking_a_tab_switches_pane() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.click("#pane-tabs Tab#gpus")
        await pilot.pause()
        assert visible_panes(app) == ["gpus"]


async def test_split_mode_shows_two_panes_and_tab_moves_between_them() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("v")
        assert visible_panes(app) == ["jobs", "training"]
        assert app.pane("jobs").region.width == app.pane("training").region.width
        await pilot.press("tab")
        assert app.focused is app.pane("training").table
        await pilot.press("v")
        assert visible_panes(app) == ["jobs"]
        await pilot.press("colon", *"split gpus spaces", "enter")
        assert visible_panes(app) == ["spaces", "gpus"]
        assert app.pane("gpus").region.x < app.pane("spaces").region.x, "the named pane is on the left"
        await pilot.press("escape")
        assert visible_panes(app) == ["gpus"]


@pytest.mark.parametrize(
    ("command", "pane"),
    [("jobs", "jobs"), ("spaces", "spaces"), ("gpus", "gpus"), ("runs", "training"), ("endpoints", "endpoints")],
)
async def test_command_mode_goes_to_panes(command: str, pane: str) -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.press("2" if pane != "jobs" else "1")
        await pilot.press("colon", *command, "enter")
        assert visible_panes(app) == [pane]
        assert not app.query_one(Prompt).display


async def test_command_mode_completes_with_tab() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.press("colon", "e", "n")
        await pilot.pause()
        await pilot.press("tab")
        assert app.query_one(Prompt).value == "endpoints"
        await pilot.press("enter")
        assert visible_panes(app) == ["endpoints"]


async def test_namespace_command_changes_the_scope_in_the_top_bar() -> None:
    app = HyperdeskApp(Settings(namespace="default"))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        assert "ns default" in topbar_text(app)
        await pilot.press("colon", *"ns hyperpod-ns-team-a", "enter")
        assert "ns hyperpod-ns-team-a" in topbar_text(app)
        await pilot.press("colon", *"ns all", "enter")
        assert "ns all" in topbar_text(app)
        await pilot.press("colon", *"ns Not_A_Namespace", "enter")
        await pilot.pause()
        assert "ns all" in topbar_text(app)
        assert any("not a valid namespace name" in t for t in notes.messages())


async def test_context_command_switches_context(tmp_path: Path) -> None:
    port = closed_port()
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"prod": f"https://127.0.0.1:{port}", "dev": f"https://127.0.0.1:{port}"},
        current="prod",
        namespaces={"dev": "team-dev"},
    )
    app = HyperdeskApp(Settings(), kubeconfig=load_kubeconfig(str(path)))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        assert "ctx prod" in topbar_text(app)
        await pilot.press("colon", *"ctx d", "tab", "enter")
        assert "ctx dev" in topbar_text(app)
        assert "ns team-dev" in topbar_text(app)
        await pilot.press("colon", *"ctx nowhere", "enter")
        await pilot.pause()
        assert "ctx dev" in topbar_text(app)
        assert any("no context 'nowhere'" in t and "prod" in t for t in notes.messages())


async def test_submit_and_deploy_refuse_files_that_are_not_manifests(tmp_path: Path, monkeypatch) -> None:
    """`:submit FILE` and the Endpoints pane's deploy (n) read through one reader: a binary, a FIFO nobody writes
    to and /dev/zero are each one line in a toast, and the app keeps answering keys (nothing blocks its loop)."""
    import os

    from app.screens.endpoint_actions import ManifestPathScreen

    monkeypatch.chdir(tmp_path)  # short relative paths: every character is a key press
    Path("binary").write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe" * 100)
    os.mkfifo("fifo")
    refusals = {"binary": "binary is not UTF-8 text", "fifo": "cannot read fifo: not a regular file",
                "/dev/zero": "cannot read /dev/zero: not a regular file"}
    app = HyperdeskApp(Settings())
    notes = record_notifications(app)
    async with app.run_test(size=(160, 40)) as pilot:
        for path, message in refusals.items():
            await pilot.press("colon", *f"submit {path}", "enter")
            await wait_for(pilot, lambda: any(n.title == "Not submitted" for n in notes))
            assert len(notes) == 1 and notes[0].message.startswith(message) and notes[0].severity == "error", notes
            notes.clear()
        await pilot.press("5")
        for path, message in refusals.items():
            await pilot.press("n")
            assert isinstance(app.screen, ManifestPathScreen)
            await pilot.press(*path, "enter")
            await wait_for(pilot, lambda: any(n.title == "Not deployed" for n in notes))
            assert len(notes) == 1 and notes[0].message.startswith(message) and notes[0].severity == "error", notes
            notes.clear()
        await pilot.press("3")
        assert visible_panes(app) == ["gpus"]


async def test_unknown_command_says_so_and_app_keeps_running() -> None:
    app = HyperdeskApp(Settings())
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        await pilot.press("colon", *"frobnicate", "enter")
        await pilot.pause()
        assert any("unknown command :frobnicate" in t for t in notes.messages())
        await pilot.press("3")
        assert visible_panes(app) == ["gpus"]


async def test_quit_command_exits() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.press("colon", "q", "enter")
        await pilot.pause()
    assert app.return_code == 0


JOB_ROWS = [
    Row("a/llama-sft", ("llama-sft", "team-a", "HyperPodPyTorchJob")),
    Row("b/bert-eval", ("bert-eval", "team-b", "Job")),
    Row("a/llama-dpo", ("llama-dpo", "team-a", "PyTorchJob")),
]


async def test_filter_narrows_the_focused_table_and_escape_clears_it() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        table = app.pane("jobs").query_one(ResourceTable)
        table.set_rows(JOB_ROWS)
        await pilot.press("slash", *"llama")
        assert table.row_count == 2
        await pilot.press("enter")
        assert table.row_count == 2
        assert app.focused is table
        await pilot.press("slash", "ctrl+u", *"!llama", "enter")
        assert [table.get_row_at(0)[1]] == ["bert-eval"] and table.row_count == 1
        await pilot.press("escape")
        assert table.row_count == 3


async def test_a_cell_that_grows_widens_its_column_and_one_that_shrinks_is_shown_whole() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test(size=(200, 40)) as pilot:
        table = app.pane("jobs").query_one(ResourceTable)
        table.set_rows(JOB_ROWS)
        await pilot.pause()
        grown = "HyperPodPyTorchJob (waiting for 16 GPUs in team-a's quota)"
        table.set_rows([Row("a/llama-sft", ("llama-sft", "team-a", grown)), *JOB_ROWS[1:]])
        await pilot.pause()
        assert table.columns["KIND"].content_width == len(grown)  # type: ignore[index]
        assert grown in "".join(s.text for s in table.render_line(1)), "the grown cell is drawn whole"
        table.set_rows(JOB_ROWS)  # narrower again: the column may stay wide, every cell is whole
        await pilot.pause()
        assert table.get_row_at(0)[3] == "HyperPodPyTorchJob"


async def test_a_reorder_keeps_the_view_where_the_user_scrolled_it() -> None:
    """Rows sorted by STATE change order as states change: the table is rebuilt, and the view must not jump back
    to the top left (a user scrolled right to read a long column, or down a long list)."""
    def rows(states: dict[int, str]) -> list[Row]:
        return [Row(f"ns/job-{i:02}", (f"job-{i:02}", states.get(i, "Running"), "x" * 150, f"url-{i:02}"))
                for i in range(60)]

    app = HyperdeskApp(Settings())
    async with app.run_test(size=(100, 30)) as pilot:
        table = ResourceTable(["NAME", "STATE", "MESSAGE", "URL"])
        await app.screen.mount(table)
        table.set_rows(rows({}))
        table.sort_by("STATE")
        table.focus()
        await pilot.pause()
        table.move_cursor(row=40, animate=False)
        await pilot.pause()
        table.scroll_to(x=60, animate=False, immediate=True)
        await pilot.pause()
        x, y = table.scroll_x, table.scroll_y
        assert x == 60 and y > 0 and table.cursor_key == "ns/job-40"
        table.set_rows(rows({3: "Failed"}))  # job-03 sorts first now: every row above the cursor moves
        await pilot.pause()
        await pilot.pause()
        assert [r.key.value for r in table.ordered_rows][:2] == ["ns/job-03", "ns/job-00"]
        assert table.cursor_key == "ns/job-40"
        assert (table.scroll_x, table.scroll_y) == (x, y)


async def test_help_lists_every_binding_of_the_focused_pane() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = {binding_id for _, _, binding_id in app.screen._rows}
        for binding_id in ("app.pane.spaces", "app.pane.endpoints", "app.command", "app.filter", "app.split",
                           "app.help", "app.quit"):
            assert binding_id in listed
        descriptions = {description for _, description, _ in app.screen._rows}
        assert "Cursor down" in descriptions, "the table's own keys are listed too"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_switches_pane() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Training pane")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert visible_panes(app) == ["training"]


class _FakeTunnel:
    """A tunnel record; the quit dialog only needs its name and close()."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_quit_asks_first_while_tunnels_are_open() -> None:
    app = HyperdeskApp(Settings())
    tunnel = _FakeTunnel("space/notebook-1:8888")
    app.tunnels.add(tunnel)
    async with app.run_test() as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
    assert tunnel.closed
    assert len(app.tunnels) == 0


async def test_quit_without_tunnels_exits_at_once() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_readonly_shows_the_badge() -> None:
    async with HyperdeskApp(Settings(readonly=True)).run_test() as pilot:
        assert "READ-ONLY" in topbar_text(pilot.app)
    async with HyperdeskApp(Settings()).run_test() as pilot:
        assert "READ-ONLY" not in topbar_text(pilot.app)


async def test_keymap_overrides_from_settings() -> None:
    app = HyperdeskApp(Settings(keys={"app.split": "ctrl+s", "app.nonsense": "x", "app.pane.gpus": "ctrl+g"}))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        assert str(app.query_one("#pane-tabs Tab#gpus").label) == "ctrl+g GPUs"
        await pilot.press("ctrl+g")
        assert visible_panes(app) == ["gpus"]
        await pilot.press("2")
        await pilot.press("v")
        assert visible_panes(app) == ["jobs"]
        await pilot.press("ctrl+s")
        assert visible_panes(app) == ["jobs", "training"]
        await pilot.pause()
        assert any("unknown binding id 'app.nonsense'" in t for t in notes.messages())


async def test_unreachable_cluster_is_shown_and_the_app_keeps_working(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", {"prod": f"https://127.0.0.1:{closed_port()}"}, current="prod")
    app = HyperdeskApp(Settings(), kubeconfig=load_kubeconfig(str(path)))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.health.state == "unreachable")
        assert "unreachable" in topbar_text(app)
        notice = str(app.pane("jobs").query_one(".empty").render())
        assert "Cannot reach the cluster of context prod" in notice
        await pilot.press("4")
        assert visible_panes(app) == ["training"]


async def test_no_kubeconfig_says_how_to_connect() -> None:
    app = HyperdeskApp(Settings(), kubeconfig=None)
    async with app.run_test():
        notice = str(app.pane("jobs").query_one(".empty").render())
        assert "no kubeconfig found" in notice and "hyperdesk demo" in notice
        assert "no cluster" in topbar_text(app)


async def test_filter_in_split_view_narrows_the_focused_pane_and_keeps_row_order() -> None:
    app = HyperdeskApp(Settings())
    async with app.run_test(size=(160, 40)) as pilot:
        jobs = app.pane("jobs").table
        runs = app.pane("training").table
        jobs.set_rows(JOB_ROWS)
        runs.set_rows([Row("r1", ("run-a",)), Row("r2", ("run-b",)), Row("r3", ("run-c",))])
        await pilot.press("v", "tab")
        assert app.focused is runs
        await pilot.press("slash", *"run-b", "enter")
        assert runs.row_count == 1 and jobs.row_count == 3
        await pilot.press("escape")
        assert [runs.get_row_at(i)[1] for i in range(runs.row_count)] == ["run-a", "run-b", "run-c"]


async def test_ctrl_q_also_asks_while_tunnels_are_open_and_enter_means_no() -> None:
    app = HyperdeskApp(Settings())
    app.tunnels.add(_FakeTunnel("space/notebook-1:8888"))
    async with app.run_test() as pilot:
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.is_running
