"""A DataTable fed with plain rows, diffed by key: the `/` filter, sorting by a column and marked rows, all local."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from app.model.filters import row_matches

MARK = "●"


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[str | Text, ...]
    sort: tuple[Any, ...] | None = None
    """Values to sort each column by (a duration in seconds where the cell says `2h`); the cells when None."""

    def sort_value(self, column: int) -> Any:
        value = self.sort[column] if self.sort is not None else str(self.cells[column])
        return (value is None, value if value is not None else 0)


class ResourceTable(DataTable):
    """Rows come in whole (`set_rows`); the table applies only the difference, so the cursor and scroll stay
    where the user left them while data changes underneath. The first column shows a mark for marked rows."""

    def __init__(self, columns: Sequence[str], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._column_labels = tuple(columns)
        self._rows: dict[str, Row] = {}
        self.filter_text = ""
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.marked: set[str] = set()

    def on_mount(self) -> None:
        self.add_column(" ", key="_mark", width=1)
        for label in self._column_labels:
            self.add_column(label, key=label)

    @property
    def total_rows(self) -> int:
        return len(self._rows)

    @property
    def column_labels(self) -> tuple[str, ...]:
        return self._column_labels

    def set_rows(self, rows: Sequence[Row]) -> None:
        self._rows = {row.key: row for row in rows}
        self.marked &= set(self._rows)
        self._apply()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._apply()

    def sort_by(self, label: str) -> None:
        """Sort by the column with this header; the same column again reverses the order."""
        column = self._column_labels.index(label)
        self.sort_reverse = not self.sort_reverse if self.sort_column == column else False
        self.sort_column = column
        self._apply()

    def toggle_mark(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.marked.symmetric_difference_update({key})
            self._apply()
            self.action_cursor_down()

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.ordered_rows[self.cursor_row].key.value

    def selection(self) -> list[str]:
        """The rows an action applies to: the marked ones, else the one under the cursor."""
        if self.marked:
            return [key for key in self._rows if key in self.marked]
        key = self.cursor_key
        return [key] if key is not None else []

    def _visible(self) -> list[Row]:
        rows = [r for r in self._rows.values() if row_matches(r.cells, self.filter_text)]
        if self.sort_column is not None:
            rows.sort(key=lambda r: r.sort_value(self.sort_column), reverse=self.sort_reverse)
        return rows

    def _cells(self, row: Row) -> tuple[str | Text, ...]:
        return (Text(MARK, style="bold") if row.key in self.marked else "", *row.cells)

    def _apply(self) -> None:
        wanted = {row.key: row for row in self._visible()}
        labels = ("_mark", *self._column_labels)
        with self.app.batch_update():
            for key in [k.value for k in list(self.rows) if k.value not in wanted]:
                self.remove_row(key)
            for key, row in wanted.items():
                cells = self._cells(row)
                if key in self.rows:
                    for label, value in zip(labels, cells):
                        if self.get_cell(key, label) != value:
                            # A grown cell widens its column; asking Textual for that on every update would
                            # re-measure the whole column each time a cell narrows (quadratic on big tables).
                            self.update_cell(key, label, value, update_width=self._wider(label, value))
                else:
                    self.add_row(*cells, key=key)
            if [row.key.value for row in self.ordered_rows] != list(wanted):
                self._reorder(list(wanted.values()))

    def _wider(self, label: str, value: str | Text) -> bool:
        width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
        column = self.columns.get(label)  # type: ignore[call-overload]
        return column is not None and width > column.content_width

    def _reorder(self, rows: list[Row]) -> None:
        """Rows in the order given (new rows were appended at the end), the cursor staying on its row and the view
        where the user scrolled it (`clear()` scrolls to the top left)."""
        current = self.cursor_key
        x, y = self.scroll_x, self.scroll_y
        self.clear()
        for row in rows:
            self.add_row(*self._cells(row), key=row.key)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False, scroll=False)
        # once the new rows are measured (the virtual size is computed when idle), as move_cursor itself waits
        self.call_after_refresh(self._restore_scroll, x, y)

    def _restore_scroll(self, x: float, y: float) -> None:
        self.scroll_to(x, y, animate=False, immediate=True)
        if self.row_count:
            self.move_cursor(row=self.cursor_row, animate=False)  # scrolls only as far as the cursor needs
