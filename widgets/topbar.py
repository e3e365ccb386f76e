"""The top bar: cluster context, namespace scope, connection health and the READ-ONLY badge."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

HEALTH_LABELS = {
    "no-config": ("○", "no cluster"),
    "connecting": ("◌", "connecting"),
    "connected": ("●", "connected"),
    "unreachable": ("✕", "unreachable"),
    "error": ("✕", "error"),
}


@dataclass(frozen=True)
class TopBarState:
    context: str | None
    namespace: str | None
    """None means all namespaces."""
    health: str
    health_detail: str = ""
    readonly: bool = False


class TopBar(Horizontal):
    """Plain data in (`TopBarState`), text out; no knowledge of where the data comes from."""

    def compose(self) -> ComposeResult:
        yield Static("hyperdesk", id="brand")
        yield Static(id="context")
        yield Static(id="scope")
        yield Static(id="health")
        yield Static("READ-ONLY", id="readonly")

    def show(self, state: TopBarState) -> None:
        self.query_one("#context", Static).update(Text.assemble(("ctx ", "dim"), state.context or "—"))
        self.query_one("#scope", Static).update(Text.assemble(("ns ", "dim"), state.namespace or "all"))
        symbol, label = HEALTH_LABELS.get(state.health, ("?", state.health))
        health = self.query_one("#health", Static)
        health.update(f"{symbol} {label}" + (f": {state.health_detail}" if state.health_detail else ""))
        health.set_classes(f"health-{state.health}")
        self.query_one("#readonly", Static).display = state.readonly
