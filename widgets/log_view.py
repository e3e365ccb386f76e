"""A log view over a bounded line buffer, drawn with Textual's Line API: only the visible lines are rendered, so a
pod writing thousands of lines a second costs one repaint per tick, not one per line.

Plain data in: any sequence of strings (`app.cluster.logs.LogBuffer`). The owner appends to the buffer and calls
`lines_changed()`; the view repaints at most every `REFRESH_SECONDS`, follows the end while `follow` is on, wraps
long lines when `wrap` is on, and highlights the current search.
"""

from __future__ import annotations

import re
from typing import Sequence

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

REFRESH_SECONDS = 0.1


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)

    def __init__(self, lines: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines = lines
        self.search: re.Pattern[str] | None = None
        self._dirty = True
        self._rows: list[tuple[int, int]] = []
        """Visual rows as (line index, start column); rebuilt only in wrap mode."""
        self._width = 0

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self._repaint_if_needed)

    def lines_changed(self) -> None:
        self._dirty = True

    def set_search(self, pattern: str) -> None:
        self.search = re.compile(re.escape(pattern), re.IGNORECASE) if pattern else None
        self.refresh()

    def watch_wrap(self) -> None:
        self._dirty = True
        self._repaint_if_needed()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False)

    def _visual_rows(self) -> int:
        if not self.wrap:
            return len(self.lines)
        width = max(1, self.scrollable_content_region.width)
        rows: list[tuple[int, int]] = []
        for index, line in enumerate(self.lines):
            rows.extend((index, start) for start in range(0, max(len(line), 1), width))
        self._rows, self._width = rows, width
        return len(rows)

    def _repaint_if_needed(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        longest = 0 if self.wrap else max((len(line) for line in self._tail_for_width()), default=0)
        self.virtual_size = Size(longest, self._visual_rows())
        if self.follow:
            self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def _tail_for_width(self) -> Sequence[str]:
        # The widest of the last few thousand lines sets the horizontal extent: cheap and good enough.
        lines = self.lines
        return [lines[i] for i in range(max(0, len(lines) - 2000), len(lines))]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if self.wrap:
            if row >= len(self._rows):
                return Strip.blank(width)
            index, start = self._rows[row]
            text = self._styled(self.lines[index][start:start + self._width])
        else:
            if row >= len(self.lines):
                return Strip.blank(width)
            text = self._styled(self.lines[row])
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop(0 if self.wrap else scroll_x, (0 if self.wrap else scroll_x) + width)
        return strip.extend_cell_length(width)

    def _styled(self, line: str) -> Text:
        text = Text(line, no_wrap=True, end="")
        if self.search is not None:
            for match in self.search.finditer(line):
                text.stylize(Style(reverse=True, bold=True), match.start(), match.end())
        if line.startswith("["):
            close = line.find("] ")
            if close > 0:
                text.stylize(Style(dim=True), 0, close + 1)
        return text

    def matches(self) -> list[int]:
        """Line indices matching the current search."""
        if self.search is None:
            return []
        return [i for i, line in enumerate(self.lines) if self.search.search(line)]

    def scroll_to_line(self, index: int) -> None:
        self.follow = False
        row = index
        if self.wrap:
            row = next((r for r, (i, _) in enumerate(self._rows) if i == index), 0)
        self.scroll_to(y=max(0, row - self.scrollable_content_region.height // 2), animate=False)
