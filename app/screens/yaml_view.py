"""The read-only YAML of one object, fetched in full from the server (stores keep trimmed copies)."""

from __future__ import annotations

from typing import Awaitable, Callable

import yaml
from rich.syntax import Syntax
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static


def to_yaml(obj: dict) -> str:
    """kubectl's `-o yaml` without the noise nobody reads: managedFields go."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return yaml.safe_dump({**obj, "metadata": meta}, sort_keys=False, default_flow_style=False)


class YamlScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="yaml.back")]

    def __init__(self, title: str, fetch: Callable[[], Awaitable[dict]]) -> None:
        super().__init__()
        self._title = title
        self._fetch = fetch
        self.yaml_text = ""
        """What is shown, once fetched."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="yaml") as scroll:
            scroll.border_title = self._title
            yield Static("loading…", id="yaml-text")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        text = self.query_one("#yaml-text", Static)
        try:
            obj = await self._fetch()
        except Exception as exc:  # noqa: BLE001 - shown in the view, never a crash
            text.update(f"Cannot fetch {self._title}: {exc}")
            return
        self.yaml_text = to_yaml(obj)
        text.update(Syntax(self.yaml_text, "yaml", theme="ansi_dark", background_color="default", word_wrap=False))
