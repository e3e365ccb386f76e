"""Metric histories as plain lists, and what a chart needs from them: a window, smoothing and down-sampling.

Pure functions and plain data, no MLflow and no Textual: the pane, the CLI and the benchmark share them.

- `History` keeps one metric of one run in step order, with its non-finite values (NaN, ±inf) remembered by index:
  they are drawn as gaps and counted, never plotted as numbers.
- `smooth` is TensorBoard's debiased exponential moving average, weighted by the distance between points on the x
  axis, so that irregularly logged points (or wall-clock time) smooth as evenly as regular steps.
- `downsample` keeps, per bucket of points, the minimum and the maximum in their original order (a min/max
  envelope): spikes and the shape survive, and a chart never draws more than about two points per pixel column.
  It works on whole slices with the C-level `min`/`max`/`list.index`, so a million points cost a few tens of
  milliseconds, not a Python loop over every point.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Sequence


SQL_INF = 1.7976931348623157e308
"""MLflow's SQL stores cannot hold infinities and write ±inf as ±(largest float); read back, they are ±inf again."""


def finite(value: float) -> bool:
    return math.isfinite(value)


@dataclass
class History:
    """One metric of one run: parallel lists in step order, plus where the non-finite values are."""

    key: str
    steps: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    """Milliseconds since the epoch, as MLflow logs them."""
    values: list[float] = field(default_factory=list)
    bad_at: list[int] = field(default_factory=list)
    """Indices of NaN and ±inf values, ascending."""
    minutes: list[float] = field(default_factory=list)
    """Wall time of each point in minutes since the first one (the x values of the time axis)."""
    envelope: "Envelope" = field(default_factory=lambda: Envelope())
    newest: int | None = None
    """The latest timestamp (ms) held."""
    revision: int = 0
    """Goes up when points are inserted before the last one (a resumed run) or the step axis changes meaning: a
    smoothed curve fed before must be rebuilt."""

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None

    @property
    def gaps(self) -> int:
        return len(self.bad_at)

    @property
    def last_value(self) -> float | None:
        """The latest finite value."""
        for value in reversed(self.values):
            if math.isfinite(value):
                return value
        return None

    @property
    def last_point(self) -> tuple[int, int] | None:
        """(step, timestamp ms) of the last point held."""
        return (self.steps[-1], self.times[-1]) if self.steps else None

    def extend(self, points: Iterable[tuple[int, int, float]]) -> int:
        """Add (step, timestamp ms, value) points not held yet; returns how many were new.

        Points come in any order (MLflow orders a history by time); they are kept sorted by (step, timestamp), and a
        (step, timestamp) already held is not added twice, so a full history fetched again only adds what is new.
        Points are told apart by step and time: a metric logged without a step (all at step 0) keeps every point, and
        a run resumed from a checkpoint (step 1000 logged again after step 1500, at a later time) has its new points
        merged in where their steps belong (the whole history is rebuilt then, and `revision` goes up)."""
        last = self.last_point
        fresh = sorted(points)
        early: list[tuple[int, int, float]] = []
        if last is not None and fresh:
            cut = bisect_right(fresh, last, key=lambda p: (p[0], p[1]))
            early, fresh = self.unseen(fresh[:cut]), fresh[cut:]
        was_stepless = self.stepless
        added = len(early)
        if early:
            self._merge(early)
        isfinite = math.isfinite
        steps, times, values, bad_at, minutes = self.steps, self.times, self.values, self.bad_at, self.minutes
        t0 = times[0] if times else (min(p[1] for p in fresh) if fresh else 0)
        previous = self.last_point
        newest = self.newest
        for step, ts, value in fresh:
            if (step, ts) == previous:
                continue  # the same point twice (one step logged twice at the same instant): keep the first
            previous = (step, ts)
            value = _stored(value)
            if not isfinite(value):
                bad_at.append(len(values))
            steps.append(int(step))
            times.append(int(ts))
            minutes.append((int(ts) - t0) / 60000)
            values.append(value)
            if newest is None or ts > newest:
                newest = int(ts)
            added += 1
        self.newest = newest
        if self.stepless != was_stepless:
            self.revision += 1  # the step axis changes meaning (point index <-> step): curves fed before are wrong
        self.envelope.update(values, bad_at)
        return added

    def unseen(self, points: Iterable[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
        """The points whose (step, timestamp) is not held (each once), sorted; a binary search per point."""
        steps, times = self.steps, self.times
        out: list[tuple[int, int, float]] = []
        previous = None
        for point in sorted(points):
            step, ts = point[0], point[1]
            if (step, ts) == previous:
                continue
            previous = (step, ts)
            lo = bisect_left(steps, step)
            hi = bisect_right(steps, step, lo)
            i = bisect_left(times, ts, lo, hi)  # times are sorted within one step
            if i < hi and times[i] == ts:
                continue
            out.append(point)
        return out

    def _merge(self, early: list[tuple[int, int, float]]) -> None:
        """Merge points that belong before the last one held (distinct from the held ones) and rebuild the lists."""
        t0 = self.times[0] if self.times else min(p[1] for p in early)
        merged = sorted([*zip(self.steps, self.times, self.values),
                         *((int(s), int(t), _stored(v)) for s, t, v in early)], key=lambda p: (p[0], p[1]))
        self.steps[:] = [p[0] for p in merged]
        self.times[:] = [p[1] for p in merged]
        self.values[:] = [p[2] for p in merged]
        self.minutes[:] = [(t - t0) / 60000 for t in self.times]
        isfinite = math.isfinite
        self.bad_at[:] = [i for i, v in enumerate(self.values) if not isfinite(v)]
        self.newest = max(self.times)
        self.envelope = Envelope()
        self.revision += 1

    @property
    def stepless(self) -> bool:
        """Every point at the same step (a metric logged without one): the step axis is the point's index."""
        return len(self.steps) > 1 and self.steps[0] == self.steps[-1]

    def xs(self, axis: str) -> Sequence[float]:
        """The x values: steps, or minutes since the first point (`axis="time"`). A metric logged without a step
        (every point at one step) is placed by point index on the step axis (`x_label` says so)."""
        if axis == "time":
            return self.minutes
        return range(len(self.steps)) if self.stepless else self.steps

    def x_label(self, axis: str) -> str:
        if axis == "time":
            return "wall time (min)"
        return f"point # (logged without a step: all at step {self.steps[0]})" if self.stepless else "step"


def _stored(value: float) -> float:
    value = float(value)
    if value >= SQL_INF or value <= -SQL_INF:
        return math.copysign(math.inf, value)  # how MLflow's SQL stores keep ±inf
    return value


BLOCK = 256


class Envelope:
    """The minimum and maximum of every complete block of BLOCK values, kept up to date as values are appended:
    the extremes of a long range come from a few block summaries instead of a scan of every value."""

    def __init__(self) -> None:
        self.low: list[float] = []
        self.low_at: list[int] = []
        self.high: list[float] = []
        self.high_at: list[int] = []

    def update(self, ys: Sequence[float], bad_at: Sequence[int]) -> None:
        start = len(self.low) * BLOCK
        while start + BLOCK <= len(ys):
            chunk = ys[start:start + BLOCK]
            if bisect_left(bad_at, start) != bisect_left(bad_at, start + BLOCK):
                chunk = [y if math.isfinite(y) else math.nan for y in chunk]
                good = [y for y in chunk if y == y]
                if not good:  # never read: segments never span a non-finite value
                    self.low.append(math.inf), self.low_at.append(start)
                    self.high.append(-math.inf), self.high_at.append(start)
                    start += BLOCK
                    continue
                low, high = min(good), max(good)
            else:
                low, high = min(chunk), max(chunk)
            self.low.append(low)
            self.low_at.append(start + chunk.index(low))
            self.high.append(high)
            self.high_at.append(start + chunk.index(high))
            start += BLOCK

    def extremes(self, ys: Sequence[float], start: int, end: int) -> tuple[int, int]:
        """Indices of the minimum and maximum of ys[start:end] (all finite)."""
        first, last = -(-start // BLOCK), end // BLOCK
        last = min(last, len(self.low))
        if last - first < 2:
            chunk = ys[start:end]
            return start + chunk.index(min(chunk)), start + chunk.index(max(chunk))
        lows = self.low[first:last]
        highs = self.high[first:last]
        low = min(lows)
        high = max(highs)
        i_low = self.low_at[first + lows.index(low)]
        i_high = self.high_at[first + highs.index(high)]
        for a, b in ((start, first * BLOCK), (last * BLOCK, end)):
            if b > a:
                low, i_low, high, i_high = _widened(ys, a, b, low, i_low, high, i_high)
        return i_low, i_high



def _widened(ys: Sequence[float], a: int, b: int, low: float, i_low: int, high: float,
             i_high: int) -> tuple[float, int, float, int]:
    """(low, its index, high, its index) once `ys[a:b]` is taken in: the first index of a new extreme wins."""
    chunk = ys[a:b]
    m, M = min(chunk), max(chunk)
    if m < low:
        low, i_low = m, a + chunk.index(m)
    if M > high:
        high, i_high = M, a + chunk.index(M)
    return low, i_low, high, i_high

def nice_unit(spacing: float) -> float:
    """The "nice" number (1, 2 or 5 times a power of ten) nearest to `spacing` on a log scale: the EMA's spacing
    unit. Evenly spaced steps (1, 10, 50...) keep exactly their own spacing; the unit moves only when the mean spacing
    crosses into another nice number, so smoothing does not depend on how many points existed at the first feed."""
    if not spacing > 0 or not math.isfinite(spacing):
        return 1.0
    exponent = math.floor(math.log10(spacing))
    candidates = [base * 10.0 ** exponent for base in (1, 2, 5, 10)]
    return min(candidates, key=lambda c: abs(math.log(c / spacing)))


class Ema:
    """TensorBoard's debiased EMA, each point's decay scaled by its distance from the previous one, fed
    incrementally (a followed run smooths only its new points).

    With evenly spaced points this is exactly TensorBoard's smoothing (decay `weight` per point, divided by
    `1 - weight**n` so the start is not pulled towards zero). A point twice as far from its predecessor decays the
    past twice as much (`weight**2`). Non-finite values stay gaps and do not disturb the average. The spacing unit
    is `nice_unit` of the mean spacing of all the points fed so far; when it changes the average is rebuilt, so
    feeding a series piece by piece gives exactly what feeding it whole does."""

    def __init__(self, weight: float) -> None:
        self.weight = min(max(weight, 0.0), 0.999)
        self._reset()

    def _reset(self) -> None:
        self.values: list[float] = []
        self.envelope = Envelope()
        self._acc = self._norm = 0.0
        self._prev_x: float | None = None
        self._unit: float | None = None

    @staticmethod
    def unit_for(xs: Sequence[float], count: int) -> float:
        """The spacing unit for the first `count` points of xs."""
        return nice_unit((xs[count - 1] - xs[0]) / (count - 1)) if count > 1 else 1.0

    def must_rebuild(self, xs: Sequence[float], ys: Sequence[float]) -> bool:
        """True when the next `feed` would start again from the first point (the spacing unit changed, or the series
        is shorter than what was fed): a long series is better rebuilt off the event loop."""
        if not self.values:
            return False
        count = min(len(xs), len(ys))
        if len(self.values) > count:
            return True
        return count > len(self.values) and self._unit is not None and self.unit_for(xs, count) != self._unit

    def feed(self, xs: Sequence[float], ys: Sequence[float], bad_at: Sequence[int] = ()) -> list[float]:
        """Smooth the points of (xs, ys) past those already fed; returns all smoothed values so far."""
        count = min(len(xs), len(ys))
        if len(self.values) > count:
            self._reset()
        start = len(self.values)
        if start >= count:
            return self.values
        weight = self.weight
        unit = self.unit_for(xs, count)
        if self._unit is not None and unit != self._unit:
            self._reset()
            start = 0
        self._unit = unit
        acc, norm, prev_x = self._acc, self._norm, self._prev_x
        append = self.values.append
        isfinite = math.isfinite
        for i in range(start, count):
            y = ys[i]
            if weight == 0 or not isfinite(y):
                append(y)
                continue
            x = xs[i]
            if prev_x is None:
                decay = weight
            else:
                dx = x - prev_x
                # points at the same x (a step logged twice) each count as one unit, never as no distance: a
                # decay of 1 would freeze the average on its first value
                decay = weight if dx == unit else weight ** (dx / unit) if dx > 0 else weight
            prev_x = x
            acc = acc * decay + (1 - decay) * y
            norm = norm * decay + (1 - decay)
            append(acc / norm if norm else y)
        self._acc, self._norm, self._prev_x = acc, norm, prev_x
        self.envelope.update(self.values, bad_at)
        return self.values


def smooth(xs: Sequence[float], ys: Sequence[float], weight: float) -> list[float]:
    """The smoothed values of a whole series (see `Ema`)."""
    bad = [i for i, y in enumerate(ys) if not math.isfinite(y)]
    return list(Ema(weight).feed(xs, ys, bad))


def window(xs: Sequence[float], last: float | None) -> tuple[int, int]:
    """The index range of the points within the last `last` units of x (all of them for None)."""
    if last is None or not xs:
        return 0, len(xs)
    return bisect_left(xs, xs[-1] - last), len(xs)


Segment = tuple[list[float], list[float]]


def segments(lo: int, hi: int, bad_at: Sequence[int]) -> list[tuple[int, int]]:
    """Split [lo, hi) at the non-finite indices: the runs of finite points between gaps."""
    out: list[tuple[int, int]] = []
    start = lo
    for index in bad_at[bisect_left(bad_at, lo):bisect_right(bad_at, hi - 1)]:
        if index > start:
            out.append((start, index))
        start = index + 1
    if hi > start:
        out.append((start, hi))
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], bad_at: Sequence[int], buckets: int,
               lo: int = 0, hi: int | None = None, log_y: bool = False,
               envelope: Envelope | None = None) -> list[Segment]:
    """The points of [lo, hi) to draw on a chart `buckets` pixels wide: per bucket its minimum and maximum, in order.

    Returns the finite runs between gaps as separate segments (a line never bridges a NaN). With `log_y`, values
    at or below zero are gaps too (a log axis cannot place them). Where there are more runs than pixel columns
    (gaps every few points), gaps narrower than a column are merged into the runs around them: they could not be
    seen, and a line per run would cost a draw call each."""
    count = min(len(xs), len(ys))  # the two lists may be read while one is being appended to
    hi = count if hi is None else min(hi, count)
    lo = min(lo, hi)
    buckets = max(1, buckets)
    bad_at = bad_at[:bisect_left(bad_at, hi)]
    spans = segments(lo, hi, bad_at)
    use_envelope = envelope is not None
    if log_y:
        finite_spans = spans
        spans = [piece for a, b in spans for piece in _positive_runs(ys, a, b)]
        use_envelope = use_envelope and spans == finite_spans  # no value at or below zero: the same extremes
    if len(spans) > buckets:
        return _merged(xs, ys, spans, buckets, lo, hi)
    total = sum(b - a for a, b in spans) or 1
    out: list[Segment] = []
    for a, b in spans:
        n = b - a
        share = max(1, round(buckets * n / total))
        if n <= 2 * share:
            out.append((list(xs[a:b]), list(ys[a:b])))
            continue
        sx: list[float] = []
        sy: list[float] = []
        size = n / share
        for k in range(share):
            start = a + int(k * size)
            end = a + int((k + 1) * size) if k < share - 1 else b
            if use_envelope:
                i_low, i_high = envelope.extremes(ys, start, end)  # type: ignore[union-attr]
            else:
                chunk = ys[start:end]
                i_low, i_high = start + chunk.index(min(chunk)), start + chunk.index(max(chunk))
            for i in ((i_low, i_high) if i_low < i_high else (i_high, i_low) if i_high < i_low else (i_low,)):
                sx.append(xs[i])
                sy.append(ys[i])
        out.append((sx, sy))
    return out


def _positive_runs(ys: Sequence[float], a: int, b: int) -> list[tuple[int, int]]:
    """[a, b) (all finite) split at the values at or below zero; one C-level `min` when there are none."""
    if b <= a or min(ys[a:b]) > 0:
        return [(a, b)] if b > a else []
    out = []
    start = a
    for i in range(a, b):
        if ys[i] <= 0:
            if i > start:
                out.append((start, i))
            start = i + 1
    if b > start:
        out.append((start, b))
    return out


def _merged(xs: Sequence[float], ys: Sequence[float], spans: list[tuple[int, int]], buckets: int,
            lo: int, hi: int) -> list[Segment]:
    """Many short runs: per pixel column, the minimum and maximum of the runs' points in it; a column without any
    point (a gap wider than a column) breaks the line."""
    size = max(1.0, (hi - lo) / buckets)
    out: list[Segment] = []
    sx: list[float] = []
    sy: list[float] = []
    span = 0
    for k in range(buckets):
        start, end = lo + int(k * size), (lo + int((k + 1) * size) if k < buckets - 1 else hi)
        if start >= hi:
            break
        i_low = i_high = -1
        low, high = math.inf, -math.inf
        while span < len(spans) and spans[span][1] <= start:
            span += 1
        j = span
        while j < len(spans) and spans[j][0] < end:
            a, b = max(spans[j][0], start), min(spans[j][1], end)
            if b > a:
                low, i_low, high, i_high = _widened(ys, a, b, low, i_low, high, i_high)
            j += 1
        if i_low < 0:
            if sx:
                out.append((sx, sy))
                sx, sy = [], []
            continue
        for i in ((i_low, i_high) if i_low < i_high else (i_high, i_low) if i_high < i_low else (i_low,)):
            sx.append(xs[i])
            sy.append(ys[i])
    if sx:
        out.append((sx, sy))
    return out


def nearest(xs: Sequence[float], x: float) -> int | None:
    """The index of the point whose x is closest to `x` (for the chart's cursor)."""
    if not xs:
        return None
    i = bisect_left(xs, x)
    if i == 0:
        return 0
    if i == len(xs):
        return len(xs) - 1
    return i if xs[i] - x < x - xs[i - 1] else i - 1


def csv_rows(series: Sequence[tuple[str, str, History]], start: Sequence[int] | None = None,
             smoothed: Sequence[Sequence[float] | None] | None = None) -> list[list[str]]:
    """(run name, run id, history) -> CSV rows: run, run_id, metric, step, timestamp_ms, value (NaN/inf as text),
    and `smoothed` where smoothed values are given. `start[i]`: the first point of series i to write (the zoom)."""
    with_smoothed = smoothed is not None and any(s is not None for s in smoothed)
    rows = [["run", "run_id", "metric", "step", "timestamp_ms", "value"] + (["smoothed"] if with_smoothed else [])]

    def text(value: float) -> str:
        return repr(value) if finite(value) else str(value)

    for index, (name, run_id, history) in enumerate(series):
        first = start[index] if start is not None else 0
        curve = smoothed[index] if smoothed is not None else None
        for i in range(first, len(history)):
            row = [name, run_id, history.key, str(history.steps[i]), str(history.times[i]), text(history.values[i])]
            if with_smoothed:
                row.append(text(curve[i]) if curve is not None and i < len(curve) else "")
            rows.append(row)
    return rows
