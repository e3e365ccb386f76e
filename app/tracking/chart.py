"""A chart of metric curves as text: plain data in, plotext's braille rendering out (no Textual).

The Training pane's chart widget and `hyperdesk curve` both draw through `render_chart`. Each line is down-sampled
to two points per braille pixel column (`downsample`), so a million-point history costs what a thousand-point one
does; gaps (NaN, inf) break a line, never join across; a vertical cursor marks the x the pane reads values at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from app.tracking.curves import Envelope, Segment, downsample, window

COLORS = ("cyan", "magenta", "green", "orange", "blue", "red", "yellow", "white")


@dataclass
class ChartLine:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    bad_at: Sequence[int] = ()
    envelope: Envelope | None = None
    color: str = ""
    faint: bool = False
    """Drawn in grey without a legend entry (the raw curve under its smoothed one)."""


@dataclass
class ChartSpec:
    title: str = ""
    lines: list[ChartLine] = field(default_factory=list)
    x_label: str = "step"
    log_y: bool = False
    last: float | None = None
    """Show only the last `last` units of x."""
    cursor: float | None = None
    empty_text: str = "no data"


def render_chart(spec: ChartSpec, width: int, height: int) -> str:
    """The chart as text with ANSI colours (plotext's own renderer), `width` x `height` cells."""
    import plotext as plt

    plt.clf()
    plt.limitsize(False, False)  # the size asked for, not clamped to the terminal plotext runs in
    plt.plotsize(max(20, width), max(5, height))
    plt.theme("clear")
    plt.title(spec.title)
    plt.xlabel(spec.x_label)
    if spec.log_y:
        plt.yscale("log")
    plotted = 0
    x_range: list[float] = []
    buckets = max(10, (width - 10) * 2)  # two braille pixels per cell, less the y labels
    for index, line in enumerate(spec.lines):
        lo, hi = window(line.xs, spec.last)
        parts: list[Segment] = downsample(line.xs, line.ys, line.bad_at, buckets, lo, hi, log_y=spec.log_y,
                                          envelope=line.envelope)
        color = "gray" if line.faint else (line.color or COLORS[index % len(COLORS)])
        labelled = line.faint
        for xs, ys in parts:
            if not xs:
                continue
            x_range += [xs[0], xs[-1]]
            plt.plot(list(xs), list(ys), marker="braille", color=color,
                     **({} if labelled else {"label": line.label}))
            labelled = True
            plotted += 1
    if not plotted:
        plt.clf()
        return ""
    if spec.cursor is not None and x_range and min(x_range) <= spec.cursor <= max(x_range):
        plt.vline(spec.cursor, "red")
    return plt.build()
