"""The connect dialog: a space's tunnel — where it listens, over which route, its state — and what to do with it:
open the browser, copy the URL (OSC 52), VS Code, or, on a login node, the `ssh -N -L` line to run on the laptop
(copyable, and the URL as an OSC 8 link). Plain data in: it polls `load() -> ConnectView`."""

from __future__ import annotations

from typing import Callable

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from app.tunnels.placement import SHARED_NODE_WARNING
from app.tunnels.session import ConnectView

REFRESH_SECONDS = 0.5
STATE_STYLES = {"open": "green", "connecting": "yellow", "reconnecting": "yellow", "failed": "red", "error": "red",
                "closed": "dim"}


def link(url: str) -> Text:
    """The URL as an OSC 8 hyperlink (Textual's driver writes it where the terminal supports it)."""
    return Text(url, style=Style(link=url, underline=True))


def _folded(text: Text) -> Text:
    """Long URLs (a WorkspaceConnection's may carry a token) wrap rather than end in an ellipsis."""
    text.overflow = "fold"
    return text


def connect_table(view: ConnectView) -> Table:
    table = _Fields(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column("field", style="bold", no_wrap=True, width=10)
    table.add_column("value")
    table.add_row("Target", f"{view.target}  (pod {view.pod})")
    table.add_row("Route", view.route)
    state = Text(view.state, style=STATE_STYLES.get(view.state, ""))
    if view.local:
        state.append(f"  listening on {view.local}", style="")
    table.add_row("State", state)
    if view.url:
        table.add_row("URL", link(view.url))
    if view.note:
        table.add_row("Note", Text(view.note, style="yellow"))
    if view.error:
        table.add_row("Error", Text(view.error, style="red"))
    if view.fingerprint:
        table.add_row("Host key", Text(f"{view.fingerprint} — press a to trust it (only if it matches the one its "
                                       "owner publishes)", style="bold yellow"))
    if view.login_node:
        table.add_row("Placement", "login node (SSH session): the port is on this node")
        table.add_row("Shared", Text(SHARED_NODE_WARNING, style="yellow"))
        if view.laptop_command:
            table.add_row("On laptop", Text(view.laptop_command, style="bold"))
            table.add_row("", Text("c copies this line; then open the URL on the laptop", style="dim"))
    else:
        table.add_row("Placement", "this machine")
    if view.vscode:
        table.add_row("VS Code", view.vscode)
    if view.web_ui:
        table.add_row("Web UI", Text(view.web_ui, style="red") if view.web_ui_error
                      else _folded(link(view.web_ui)) if view.web_ui.startswith(("http://", "https://"))
                      else Text(view.web_ui, style="yellow"))
    return table


class _Fields(Table):
    def add_row(self, *cells: object, **kwargs: object) -> None:  # type: ignore[override]
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)  # type: ignore[arg-type]


class ConnectScreen(ModalScreen[None]):
    """esc closes the dialog; the tunnel stays open (the Tunnels view, ctrl+t, lists it)."""

    DEFAULT_CSS = """
    ConnectScreen { align: center middle; }
    #connect-box { width: 100; max-width: 95%; height: auto; border: round $primary; padding: 0 1;
                   background: $panel; }
    #connect-keys { color: $text-muted; margin-top: 1; }
    #connect-via { margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", id="connect.back"),
        Binding("o", "browser", "Open browser", id="connect.browser"),
        Binding("c", "copy", "Copy", id="connect.copy"),
        Binding("v", "vscode", "VS Code", id="connect.vscode"),
        Binding("r", "route", "Route", id="connect.route"),
        Binding("a", "accept_key", "Accept host key", id="connect.accept_key"),
        Binding("x", "close_tunnel", "Close tunnel", id="connect.close_tunnel"),
        Binding("t", "tunnels", "Tunnels", id="connect.tunnels"),
        Binding("w", "web_ui", "Web UI", id="connect.web_ui"),
    ]
    AUTO_FOCUS = "#connect-box"

    def __init__(self, title: str, load: Callable[[], ConnectView], actions: object | None = None) -> None:
        super().__init__()
        self._title = title
        self._load = load
        self._actions = actions
        """The app's glue (connect_browser, connect_vscode...); None in a snapshot."""
        self.view: ConnectView = load()

    def compose(self) -> ComposeResult:
        with Vertical(id="connect-box") as box:
            box.can_focus = True
            box.border_title = self._title
            box.border_subtitle = "esc closes the dialog, the tunnel stays"
            yield Static(connect_table(self.view), id="connect-body")
            yield Input(value=self.view.via, placeholder="SSH host ([user@]host[:port] or ~/.ssh/config Host); "
                        "empty: the API server's port-forward", id="connect-via")
            yield Static(self._keys(), id="connect-keys")

    def _keys(self) -> str:
        keys = "o browser · c copy · v VS Code · r route (enter applies) · x close tunnel · t tunnels · w web UI · esc back"
        return keys + (" · a accept host key" if self.view.fingerprint else "")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self.refresh_view)

    def refresh_view(self) -> None:
        view = self._load()
        if view != self.view:
            self.view = view
            self.query_one("#connect-body", Static).update(connect_table(view))
            self.query_one("#connect-keys", Static).update(self._keys())

    def _call(self, name: str, *args: object) -> None:
        method = getattr(self._actions, name, None)
        if method is not None:
            method(*args)

    def action_close(self) -> None:
        if self.focused is self.query_one("#connect-via"):
            self.query_one("#connect-box").focus()
        else:
            self.dismiss(None)

    def action_browser(self) -> None:
        self._call("connect_browser", self.view)

    def action_copy(self) -> None:
        text = self.view.laptop_command if self.view.login_node and self.view.laptop_command else self.view.url
        if text:
            self.app.copy_to_clipboard(text)  # OSC 52, through the app's driver
            self.notify(f"copied: {text}")

    def action_vscode(self) -> None:
        self._call("connect_vscode", self.view)

    def action_web_ui(self) -> None:
        self._call("connect_web_ui")

    def action_route(self) -> None:
        self.query_one("#connect-via", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#connect-box").focus()
        self._call("connect_reroute", event.value.strip())

    def action_accept_key(self) -> None:
        if self.view.fingerprint:
            self._call("connect_accept_key", self.view.fingerprint)

    def action_close_tunnel(self) -> None:
        self._call("connect_close")

    def action_tunnels(self) -> None:
        self.dismiss(None)
        self._call("open_tunnels")
