"""Loss curves at scale: down-sample and draw 10^3, 10^5 and 10^6 points as the Training pane does.

    .venv/bin/python benchmarks/curves.py [--width 150] [--height 30] [--repeat 5]

For each size, one process, best of `--repeat`:
- down-sample + draw one curve: `render_chart` (min/max per pixel column from the block envelope, then plotext's braille
  renderer) at the chart's size — what a redraw (resize, zoom, cursor move, a new point) costs; target < 50 ms at 10^6;
- the peer: plotext drawing every point itself, the same chart without down-sampling (10^6 once: it is slow);
- raw + smoothed: the single-run view, the raw curve in grey under its smoothed one (two curves);
- one-off costs, paid once per history and then only for new points: appending the points (`History.extend`,
  which also keeps the block envelope) and TensorBoard-style smoothing (`Ema.feed`; the pane smooths a history of
  more than 50,000 points in a thread the first time);
- the awkward cases after the table: a log-scale y axis at 10^6, and 200,000 points with every other one NaN (a
  line per finite run used to mean one draw call each: 18.7 s), each against the plain 10^6 chart.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.tracking.chart import ChartLine, ChartSpec, render_chart  # noqa: E402
from app.tracking.curves import Ema, History  # noqa: E402


def points(n: int, seed: int = 0) -> list[tuple[int, int, float]]:
    rng = random.Random(seed)
    return [(s, 1_700_000_000_000 + s * 500, 0.3 + 2.5 * math.exp(-5 * s / n) * (1 + rng.gauss(0, 0.05)))
            for s in range(n)]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def raw_plotext(history: History, width: int, height: int) -> None:
    import plotext as plt

    plt.clf()
    plt.limitsize(False, False)
    plt.plotsize(width, height)
    plt.theme("clear")
    plt.plot(history.steps, history.values, marker="braille", label="loss")
    plt.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=150)
    parser.add_argument("--height", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    render_chart(ChartSpec(lines=[ChartLine("warm", [0, 1], [1.0, 2.0])]), args.width, args.height)  # imports

    print(f"chart {args.width}x{args.height} cells, best of {args.repeat}")
    print(f"{'points':>9}  {'downsample+draw':>15}  {'plotext, all points':>19}  {'ratio':>6}  "
          f"{'raw+smoothed':>12}  {'append':>8}  {'smooth':>8}")
    results = {}
    for n in (10**3, 10**5, 10**6):
        data = points(n)
        started = time.perf_counter()
        history = History("loss")
        history.extend(data)
        append = time.perf_counter() - started
        started = time.perf_counter()
        ema = Ema(0.6)
        ema.feed(history.steps, history.values, history.bad_at)
        smoothing = time.perf_counter() - started
        spec = ChartSpec(title="loss", lines=[ChartLine("loss", history.steps, history.values, history.bad_at,
                                                        history.envelope)])
        ours = best(lambda: render_chart(spec, args.width, args.height), args.repeat)
        both = ChartSpec(title="loss", lines=[
            ChartLine("loss", history.steps, history.values, history.bad_at, history.envelope, faint=True),
            ChartLine("loss (smoothed)", history.steps, ema.values, history.bad_at, ema.envelope)])
        smoothed = best(lambda: render_chart(both, args.width, args.height), args.repeat)
        peer = best(lambda: raw_plotext(history, args.width, args.height), 1 if n >= 10**6 else args.repeat)
        results[n] = ours
        print(f"{n:>9,}  {ours * 1000:>12.1f} ms  {peer * 1000:>16.1f} ms  {peer / ours:>5.0f}x  "
              f"{smoothed * 1000:>9.1f} ms  {append * 1000:>5.0f} ms  {smoothing * 1000:>5.0f} ms")
    print(f"10^6 points cost {results[10**6] / results[10**3]:.2f}x what 10^3 points do "
          f"(target: under 50 ms at 10^6: {'met' if results[10**6] < 0.05 else 'NOT met'})")

    history = History("loss")
    history.extend(points(10**6))
    log_spec = ChartSpec(title="loss", log_y=True, lines=[ChartLine("loss", history.steps, history.values,
                                                                    history.bad_at, history.envelope)])
    log_time = best(lambda: render_chart(log_spec, args.width, args.height), args.repeat)
    gappy = History("loss")
    gappy.extend((s, t, math.nan if s % 2 else v) for s, t, v in points(2 * 10**5))
    gappy_spec = ChartSpec(title="loss", lines=[ChartLine("loss", gappy.steps, gappy.values, gappy.bad_at,
                                                          gappy.envelope)])
    gappy_time = best(lambda: render_chart(gappy_spec, args.width, args.height), args.repeat)
    plain = results[10**6]
    print(f"log y at 10^6: {log_time * 1000:.1f} ms ({log_time / plain:.1f}x the linear chart); "
          f"200,000 points every other one NaN: {gappy_time * 1000:.1f} ms ({gappy_time / plain:.1f}x)")


if __name__ == "__main__":
    main()
