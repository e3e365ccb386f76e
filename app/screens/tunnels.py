"""The Tunnels view: every open tunnel — target, local address, route, state, bytes each way, uptime, last error.
Plain data in: it polls `load() -> list[TunnelRow]` (memory only, no network)."""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from app.model.jobs import human_duration
from app.tunnels.manager import TunnelRow, human_bytes
from widgets.resource_table import ResourceTable, Row

REFRESH_SECONDS = 1.0
COLUMNS = ("NAME", "TARGET", "LOCAL", "ROUTE", "STATE", "IN", "OUT", "UPTIME", "LAST ERROR")
STATE_STYLES = {"open": "green", "reconnecting": "yellow", "starting": "yellow", "error": "red", "closed": "dim"}


def tunnel_rows(tunnels: list[TunnelRow]) -> list[Row]:
    return [
        Row(t.name, (t.name, t.target, t.local, t.route, Text(t.state, style=STATE_STYLES.get(t.state, "")),
                     human_bytes(t.bytes_in), human_bytes(t.bytes_out), human_duration(int(t.uptime_seconds)),
                     t.last_error or t.note),
            sort=(t.name, t.target, t.local, t.route, t.state, t.bytes_in, t.bytes_out, t.uptime_seconds,
                  t.last_error))
        for t in tunnels
    ]


class TunnelsScreen(Screen[None]):
    DEFAULT_CSS = """
    #tunnels { border: round $primary; height: 1fr; }
    #tunnels-notice { color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="tunnels.back"),
        Binding("enter", "open", "Details", id="tunnels.open"),
        Binding("ctrl+d", "close_one", "Close", id="tunnels.close"),
        Binding("X", "close_all", "Close all", id="tunnels.close_all"),
    ]

    def __init__(self, load: Callable[[], list[TunnelRow]], actions: object | None = None) -> None:
        super().__init__()
        self._load = load
        self._actions = actions

    def compose(self) -> ComposeResult:
        with Vertical(id="tunnels") as box:
            box.border_title = "Tunnels"
            yield ResourceTable(COLUMNS, id="tunnels-table")
            yield Static("", id="tunnels-notice")
        yield Footer()

    @property
    def table(self) -> ResourceTable:
        return self.query_one(ResourceTable)

    def on_mount(self) -> None:
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)
        self.table.focus()

    def show(self) -> None:
        rows = self._load()
        self.table.set_rows(tunnel_rows(rows))
        self.query_one("#tunnels-notice", Static).update(
            "No tunnels open. In the Spaces pane, c connects to the space under the cursor." if not rows else
            f"{len(rows)} tunnel{'s' if len(rows) != 1 else ''}, each on 127.0.0.1 only. "
            "ctrl+d closes one, X closes all; they close with hyperdesk.")

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def _call(self, name: str, *args: object) -> None:
        method = getattr(self._actions, name, None)
        if method is not None:
            method(*args)

    def action_open(self) -> None:
        if self.table.cursor_key is not None:
            self._call("open_tunnel_dialog", self.table.cursor_key)

    def action_close_one(self) -> None:
        if self.table.cursor_key is not None:
            self._call("close_tunnels", [self.table.cursor_key])

    def action_close_all(self) -> None:
        names = [row.name for row in self._load()]
        if names:
            self._call("close_tunnels", names)
