"""A DataTable fed with plain rows, diffed by key, with the `/` filter applied locally."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.widgets import DataTable

from app.model.filters import row_matches


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[str | Text, ...]


class ResourceTable(DataTable):
    """Rows come in whole (`set_rows`); the table applies only the difference, so the cursor and scroll stay
    where the user left them while data changes underneath."""

    def __init__(self, columns: Sequence[str], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._column_labels = tuple(columns)
        self._rows: dict[str, Row] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        for label in self._column_labels:
            self.add_column(label, key=label)

    @property
    def total_rows(self) -> int:
        return len(self._rows)

    def set_rows(self, rows: Sequence[Row]) -> None:
        self._rows = {row.key: row for row in rows}
        self._apply()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._apply()

    def _apply(self) -> None:
        wanted = {k: r for k, r in self._rows.items() if row_matches(r.cells, self.filter_text)}
        with self.app.batch_update():
            for key in [k.value for k in list(self.rows) if k.value not in wanted]:
                self.remove_row(key)
            for key, row in wanted.items():
                if key in self.rows:
                    for label, value in zip(self._column_labels, row.cells):
                        if self.get_cell(key, label) != value:
                            self.update_cell(key, label, value)
                else:
                    self.add_row(*row.cells, key=key)
            if [row.key.value for row in self.ordered_rows] != list(wanted):
                self._reorder(list(wanted.values()))

    def _reorder(self, rows: list[Row]) -> None:
        """Rows in the order given (new rows were appended at the end), the cursor staying on its row."""
        current = self.ordered_rows[self.cursor_row].key.value if self.row_count else None
        self.clear()
        for row in rows:
            self.add_row(*row.cells, key=row.key)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)
