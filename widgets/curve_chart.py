"""A line chart of metric curves (plotext braille), re-drawn at the widget's size whenever it changes.

It takes plain data, a `ChartSpec` (`app.tracking.chart`): lines of x and y lists with where their non-finite values
are; the drawing (down-sampling to the pixel width included) is `render_chart`'s.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from app.tracking.chart import ChartSpec, render_chart


class CurveChart(Widget):
    """Shows a `ChartSpec`; `show(spec)` replaces it. Rendering happens on paint, at the current size."""

    DEFAULT_CSS = """
    CurveChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, spec: ChartSpec | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec or ChartSpec()
        self._cache: tuple[int, tuple[int, int], Text] | None = None
        self._version = 0

    def show(self, spec: ChartSpec) -> None:
        self.spec = spec
        self._version += 1
        self.refresh()

    @property
    def buckets(self) -> int:
        return max(10, (self.size.width - 10) * 2)

    def render(self) -> Text:
        size = (self.size.width, self.size.height)
        if self._cache is not None and self._cache[0] == self._version and self._cache[1] == size:
            return self._cache[2]
        drawn = render_chart(self.spec, *size) if size[0] > 0 and size[1] > 0 else ""
        text = Text.from_ansi(drawn, no_wrap=True) if drawn else Text(self.spec.empty_text, style="dim")
        self._cache = (self._version, size, text)
        return text
