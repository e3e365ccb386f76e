"""Pieces the describe views share (jobs, spaces, endpoints): titled sections, tables refilled only when their
rows change, and ages relative to the view's clock."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable

from app.model.jobs import human_duration


def ago(time: datetime | None, now: datetime) -> str:
    return human_duration(int((now - time).total_seconds())) if time else ""


def section(title: str, *children: Widget) -> Vertical:
    """A bordered block titled `title`, as every describe view lays out its conditions, pods and events."""
    block = Vertical(*children, classes="detail-section")
    block.border_title = title
    return block


def fill(table: DataTable, rows: Sequence[tuple[str, ...]]) -> None:
    """Replace the table's rows, only when they differ (a refill every second would lose the cursor and flicker)."""
    current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
    if current != list(rows):
        table.clear()
        table.add_rows(rows)


def event_cells(time: datetime | None, type_: str, reason: str, count: int, obj: str, message: str,
                now: datetime) -> tuple[str, ...]:
    """One row of the EVENTS table: AGE, TYPE, REASON (×count when repeated), OBJECT, MESSAGE."""
    return (ago(time, now), type_, reason + (f" ×{count}" if count > 1 else ""), obj, message)


def events_table() -> DataTable:
    return DataTable(id="detail-events", cursor_type="none", zebra_stripes=True)


def conditions_table() -> DataTable:
    return DataTable(id="detail-conditions", cursor_type="none", zebra_stripes=True)


EVENT_COLUMNS = ("AGE", "TYPE", "REASON", "OBJECT", "MESSAGE")
