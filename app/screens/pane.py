"""The base of the five panes: a titled table of plain rows plus a line that explains an empty table.

Each pane lives in its own module (spaces, jobs, gpus, training, endpoints); `app.screens.panes` lists them in tab
order. A pane reads the stores it names in `kinds` through `rows()`; panes whose data does not come from the watch
stores (GPU metrics, MLflow) fill their table themselves.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

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

    def shown(self) -> bool:
        """Visible and not covered by a modal screen (help, a picker, YAML): what a poll loop runs only while."""
        from textual.dom import NoScreen

        try:
            return bool(self.display) and self.screen is self.app.screen
        except NoScreen:
            return False

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
