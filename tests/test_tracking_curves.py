"""Metric histories, smoothing, down-sampling and CSV rows (app/tracking/curves.py): pure functions."""

from __future__ import annotations

import math
import random

import pytest

from app.tracking.chart import ChartLine, ChartSpec, render_chart
from app.tracking.curves import SQL_INF, Ema, History, csv_rows, downsample, nearest, segments, smooth, window


def history(values: list[float], key: str = "loss") -> History:
    h = History(key)
    h.extend((i, 1_000_000 + 500 * i, v) for i, v in enumerate(values))
    return h


def tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's scalar smoothing as its dashboard describes it: debiased EMA, one decay per point."""
    out, last, n = [], 0.0, 0
    for v in values:
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight ** n))
    return out


def test_extend_adds_only_new_steps_in_step_order() -> None:
    h = History("loss")
    assert h.extend([(2, 30, 0.8), (0, 10, 1.0), (1, 20, 0.9)]) == 3
    assert h.steps == [0, 1, 2] and h.values == [1.0, 0.9, 0.8]
    # The whole history fetched again, with two new points: only those are appended.
    assert h.extend([(0, 10, 1.0), (1, 20, 0.9), (2, 30, 0.8), (3, 40, 0.7), (4, 50, 0.6)]) == 2
    assert h.steps == [0, 1, 2, 3, 4]
    assert h.minutes[-1] == (50 - 10) / 60000


def test_nan_and_inf_are_gaps_and_counted() -> None:
    # MLflow's SQL store hands ±inf back as ±(largest float): those are infinities again.
    h = history([1.0, math.nan, 0.8, SQL_INF, 0.6, -SQL_INF, 0.5])
    assert h.gaps == 3 and h.bad_at == [1, 3, 5]
    assert h.values[3] == math.inf and h.values[5] == -math.inf
    assert h.last_value == 0.5
    parts = downsample(h.steps, h.values, h.bad_at, 100)
    assert parts == [([0], [1.0]), ([2], [0.8]), ([4], [0.6]), ([6], [0.5])]
    assert all(math.isfinite(y) for _, ys in parts for y in ys)


def test_segments_split_at_gaps_within_a_window() -> None:
    assert segments(0, 10, [3, 4, 8]) == [(0, 3), (5, 8), (9, 10)]
    assert segments(5, 8, [3, 4, 8]) == [(5, 8)]


def test_smoothing_matches_tensorboard_on_even_steps() -> None:
    values = [random.Random(3).uniform(0, 2) for _ in range(200)]
    ours = smooth(list(range(200)), values, 0.9)
    theirs = tensorboard_smoothing(values, 0.9)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-12


def test_smoothing_weights_by_distance_and_skips_gaps() -> None:
    # xs 0, 1, 3: the mean spacing 1.5 rounds to the unit 2; the last point, two away, decays the past by 0.5.
    far = smooth([0, 1, 3], [0.0, 0.0, 1.0], 0.5)
    d1, d2 = 0.5 ** (1 / 2), 0.5
    norm = (0.5 * d1 + (1 - d1)) * d2 + (1 - d2)
    assert math.isclose(far[2], (1 - d2) / norm)
    # Evenly spaced, the same values smooth less towards the new one.
    assert smooth([0, 1, 2], [0.0, 0.0, 1.0], 0.5)[2] < far[2]
    gappy = smooth([0, 1, 2, 3], [1.0, math.nan, 1.0, 1.0], 0.9)
    assert math.isnan(gappy[1]) and all(math.isclose(v, 1.0) for v in (gappy[0], gappy[2], gappy[3]))


def test_ema_fed_incrementally_equals_the_whole() -> None:
    values = [math.sin(i / 7) + i / 50 for i in range(1000)]
    ema = Ema(0.8)
    ema.feed(list(range(400)), values[:400])
    ema.feed(list(range(1000)), values)
    assert ema.values == smooth(list(range(1000)), values, 0.8)


def test_downsample_keeps_every_spike_and_the_ends() -> None:
    rng = random.Random(1)
    values = [1 + rng.random() * 0.01 for _ in range(100_000)]
    values[12_345] = 50.0  # a loss spike
    values[77_777] = -3.0
    h = history(values)
    parts = downsample(h.steps, h.values, h.bad_at, 200, envelope=h.envelope)
    (xs, ys), = parts
    assert len(xs) <= 400
    assert 50.0 in ys and -3.0 in ys
    assert xs[ys.index(50.0)] == 12_345
    assert xs == sorted(xs)
    # The block envelope gives exactly what a scan of every value gives.
    assert parts == downsample(h.steps, h.values, h.bad_at, 200)


def test_window_and_nearest() -> None:
    xs = list(range(0, 1000, 10))
    assert window(xs, None) == (0, 100)
    assert window(xs, 100) == (89, 100)  # x from 890 on
    assert nearest(xs, 444) == 44 and nearest(xs, 446) == 45 and nearest(xs, -5) == 0 and nearest(xs, 5000) == 99


def test_log_scale_treats_non_positive_values_as_gaps() -> None:
    h = history([1.0, 0.0, 0.5, -1.0, 0.25])
    assert downsample(h.steps, h.values, h.bad_at, 50, log_y=True) == [([0], [1.0]), ([2], [0.5]), ([4], [0.25])]


def test_csv_rows_keep_every_point_and_spell_out_nan() -> None:
    h = history([1.5, math.nan, 0.5])
    rows = csv_rows([("run-a", "abc", h)])
    assert rows[0] == ["run", "run_id", "metric", "step", "timestamp_ms", "value"]
    assert rows[1] == ["run-a", "abc", "loss", "0", "1000000", "1.5"]
    assert rows[2][-1] == "nan" and len(rows) == 4


def test_render_chart_draws_braille_with_a_legend() -> None:
    h = history([2.0 * math.exp(-i / 30) for i in range(300)])
    text = render_chart(ChartSpec(title="loss", lines=[ChartLine("run-a", h.steps, h.values, h.bad_at)]), 80, 20)
    plain = text.replace("\x1b", "")
    assert "run-a" in plain and "loss" in plain
    assert any("\u2800" <= ch <= "\u28ff" for ch in text)  # braille cells
    assert render_chart(ChartSpec(lines=[]), 80, 20) == ""


def test_a_password_in_the_tracking_uri_is_never_shown() -> None:
    from app.tracking.client import describe_error
    from app.tracking.uri import redact

    assert redact("https://alice:s3cret@mlflow.example.com:8443/x") == "https://***@mlflow.example.com:8443/x"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    error = describe_error(ConnectionError("Max retries exceeded with url https://alice:s3cret@mlflow.example.com "
                                           "(Connection refused)"), "https://alice:s3cret@mlflow.example.com")
    assert "s3cret" not in str(error) and error.kind == "unreachable"


def test_user_info_and_secret_query_values_are_never_shown() -> None:
    from app.tracking.client import describe_error
    from app.tracking.uri import redact

    assert redact("https://ghp_tok3n@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    assert redact("https://u:p4ss@[::1]:5000/") == "https://***@[::1]:5000/"
    assert redact("http://[fe80::1]:5000") == "http://[fe80::1]:5000"
    shown = redact("https://h.example/mlflow?sig=AbC%2Fxyz&sv=2022&access_token=t0ken")
    assert "AbC" not in shown and "t0ken" not in shown and "sv=2022" in shown
    uri = "https://alice:s3cret@h.example/?token=abcdef"
    error = describe_error(ConnectionError("Max retries exceeded with url https://alice:s3cret@h.example"
                                           "/api/2.0/mlflow/runs/search?token=abcdef (Connection refused)"), uri)
    assert "s3cret" not in str(error) and "abcdef" not in str(error) and error.kind == "unreachable"


def test_ema_fed_piece_by_piece_equals_the_whole_series() -> None:
    rng = random.Random(7)
    xs, x = [], 0
    for _ in range(3000):
        x += rng.choice((1, 1, 1, 3, 10, 40))
        xs.append(x)
    ys = [rng.random() if i % 97 else math.nan for i in range(len(xs))]
    for weight in (0.6, 0.95):
        whole = Ema(weight).feed(xs, ys)
        ema = Ema(weight)
        for end in (1, 2, 5, 50, 51, 400, 1999, 3000):  # as a followed run grows
            ema.feed(xs[:end], ys[:end])
        assert ema.values == whole
    # Evenly spaced points by 10 steps smooth exactly as TensorBoard does, per point.
    values = [rng.random() for _ in range(200)]
    assert Ema(0.6).feed(list(range(0, 2000, 10)), values) == pytest.approx(tensorboard_smoothing(values, 0.6))


def test_points_logged_without_a_step_are_kept_and_followed() -> None:
    h = History("loss")
    assert h.extend([(0, 1000, 1.0), (0, 2000, 0.9)]) == 2
    assert h.extend([(0, 1000, 1.0), (0, 2000, 0.9), (0, 3000, 0.8)]) == 1
    assert h.values == [1.0, 0.9, 0.8] and h.times == [1000, 2000, 3000]
    assert h.extend([(0, 3000, 0.8)]) == 0  # the same point twice is one point


def test_a_chart_read_while_its_lists_grow_draws_what_both_hold() -> None:
    h = history([1.0 - i / 1000 for i in range(1000)])
    ys = h.values[:600]  # the values list lagging behind the steps list
    parts = downsample(h.steps, ys, h.bad_at, 50, envelope=h.envelope)
    assert parts and all(len(xs) == len(ys_) for xs, ys_ in parts)
    assert max(x for xs, _ in parts for x in xs) <= 599
    text = render_chart(ChartSpec(lines=[ChartLine("a", h.steps, ys, h.bad_at, h.envelope)]), 80, 20)
    assert text


def test_csv_rows_follow_the_zoom_and_the_smoothing() -> None:
    h = history([1.0, 0.5, math.nan, 0.25])
    rows = csv_rows([("run-a", "abc", h)], start=[1], smoothed=[[1.0, 0.75, math.nan, 0.5]])
    assert rows[0][-1] == "smoothed" and len(rows) == 4
    assert rows[1][3:] == ["1", "1000500", "0.5", "0.75"] and rows[2][-2:] == ["nan", "nan"]


def test_an_ambiguous_job_name_links_only_in_the_apps_namespace() -> None:
    from app.tracking.client import RunInfo
    from app.tracking.links import JobRef, link_runs

    run = RunInfo("r1", "llama", "0", "exp", "RUNNING", 0, None)
    jobs = [JobRef("jobs/a/llama", "a", "llama"), JobRef("jobs/b/llama", "b", "llama")]
    assert link_runs([run], jobs, None) == {}
    assert link_runs([run], jobs, None, prefer_namespace="b") == {"r1": jobs[1]}
    assert link_runs([run], jobs[:1], None) == {"r1": jobs[0]}


def test_gaps_every_other_point_merge_per_pixel_column_but_wide_gaps_still_break() -> None:
    values = [math.nan if i % 2 else 1.0 + math.sin(i / 500) for i in range(20_000)]
    values[10_000:12_000] = [math.nan] * 2000  # a gap ten columns wide
    h = history(values)
    parts = downsample(h.steps, h.values, h.bad_at, 200, envelope=h.envelope)
    assert len(parts) == 2  # not 10,000 lines: one each side of the wide gap
    assert all(math.isfinite(y) for _, ys in parts for y in ys)
    assert parts[0][0][-1] < 10_000 < 12_000 <= parts[1][0][0]
    assert max(len(xs) for xs, _ in parts) <= 2 * 200
    # On a log axis, values at or below zero are gaps too, the rest drawn from the same extremes.
    logged = history([1.0, 2.0, -1.0, 3.0, 0.0, 4.0] * 1000)
    parts = downsample(logged.steps, logged.values, logged.bad_at, 100, log_y=True, envelope=logged.envelope)
    assert all(y > 0 for _, ys in parts for y in ys) and parts


def test_a_run_resumed_from_a_checkpoint_has_its_lower_steps_merged_in() -> None:
    h = history([1.0 - i / 3000 for i in range(1500)])
    old_newest = h.newest
    # The job restarted from its step-1000 checkpoint into the same run: steps 1000.. again, at later times.
    resumed = [(1000 + i, old_newest + 60_000 + 500 * i, 0.2 - i / 10_000) for i in range(3)]
    assert h.extend(resumed) == 3
    assert len(h) == 1503 and h.revision == 1 and h.newest == resumed[-1][1]
    at = h.steps.index(1000)
    assert h.steps[at:at + 4] == [1000, 1000, 1001, 1001] and h.values[at + 1] == 0.2
    assert h.minutes == [(t - h.times[0]) / 60000 for t in h.times]
    # Fetched again whole: nothing is added twice; a point after the last one is appended as before.
    assert h.extend([(s, t, v) for s, t, v in zip(list(h.steps), list(h.times), list(h.values))]) == 0
    assert h.extend([(1500, old_newest + 200_000, 0.1)]) == 1 and h.revision == 1
    # The extremes of a chart come from the rebuilt envelope: the resumed low value is found.
    low, _ = h.envelope.extremes(h.values, 0, len(h))
    assert h.values[low] == min(h.values)


def test_a_metric_logged_without_a_step_is_drawn_by_point_index_and_smooths() -> None:
    h = History("loss")
    h.extend([(0, 1000 * i, float(5 - i)) for i in range(5)])
    assert list(h.xs("step")) == [0, 1, 2, 3, 4] and "without a step" in h.x_label("step")
    assert h.xs("time") == h.minutes and h.x_label("time") == "wall time (min)"
    # Points at one x each count as one unit: not a flat line at the first value.
    assert smooth([0] * 5, [5, 4, 3, 2, 1], 0.6) == pytest.approx(tensorboard_smoothing([5, 4, 3, 2, 1], 0.6))
    assert smooth(h.xs("step"), h.values, 0.6) == pytest.approx(tensorboard_smoothing(h.values, 0.6))
    one = History("loss")
    one.extend([(7, 1000, 1.0)])
    assert list(one.xs("step")) == [7] and one.x_label("step") == "step"


def test_ema_says_when_it_must_start_again() -> None:
    ema = Ema(0.6)
    xs = list(range(100))
    ema.feed(xs, [1.0] * 100)
    assert not ema.must_rebuild(xs + [100, 101], [1.0] * 102)  # the same spacing: only the new points
    wide = xs + list(range(110, 1100, 10))  # the mean spacing becomes 5: another unit
    assert ema.must_rebuild(wide, [1.0] * len(wide))
    assert ema.must_rebuild(xs[:50], [1.0] * 50)
    assert not Ema(0.6).must_rebuild(wide, [1.0] * len(wide))  # nothing fed yet: nothing to start again


def test_a_run_name_with_a_quote_is_a_valid_filter_literal() -> None:
    from mlflow.utils.search_utils import SearchUtils

    from app.tracking.client import name_literal

    for name in ("plain", "bob's-run", 'say "hi"'):
        parsed = SearchUtils.parse_search_filter(f"attributes.run_name = {name_literal(name)}")
        assert parsed[0]["value"] == name
    assert name_literal("it's \"both\"") is None


def test_the_runs_of_a_job_are_those_the_runs_table_links_to_it() -> None:
    from app.tracking.client import RunInfo
    from app.tracking.links import JobRef, runs_of_job

    run = RunInfo("r1", "train", "0", "exp", "RUNNING", 0, None)
    team_a, team_b = JobRef("jobs/team-a/train", "team-a", "train"), JobRef("jobs/team-b/train", "team-b", "train")
    asked_a = JobRef("", "team-a", "train")
    assert runs_of_job([run], asked_a, [team_a, team_b], None) == []  # ambiguous: neither, as in the table
    assert runs_of_job([run], asked_a, [team_a, team_b], None, prefer_namespace="team-b") == []
    assert runs_of_job([run], JobRef("", "team-b", "train"), [team_a, team_b], None, "team-b") == [run]
    assert runs_of_job([run], asked_a, [], None) == [run]  # no cluster listing: the job asked about only
    tagged = RunInfo("r2", "train", "0", "exp", "RUNNING", 5, None, tags={"kubernetes.namespace": "team-a"})
    assert runs_of_job([run, tagged], asked_a, [team_a, team_b], None) == [tagged]
