"""Charts that read: time axes formatted for the window's span, percent axes with distinct ticks, one colour
per meaning across charts, windows shown as the date pickers show them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from connectors.windows import Window, parse_window
from dashboard.charts import palette
from dashboard.charts.annotation import annotator_figure, queue_figure
from dashboard.charts.axes import bucket_trace, percent_axis, time_axis
from dashboard.charts.compliance import audit_activity_figure, verdict_history_figure
from dashboard.charts.fairness import group_trend_figure, metric_over_time_figure
from dashboard.charts.operations import errors_throughput_figure, latency_figure, quality_figure
from dashboard.charts.retraining import jobs_duration_figure
from dashboard.charts.text import window_text
from dashboard.ui.format import fmt_window

DAY = Window(datetime(2026, 10, 26), datetime(2026, 10, 27))
MONTH = Window(datetime(2026, 10, 1), datetime(2026, 11, 1))


def tick_labels(axis: dict) -> list[str]:
    """The labels a percent axis shows: every tick of its range, in its format."""
    lo, hi = axis["range"]
    decimals = int(axis["tickformat"][1:-1])
    n = int((hi - lo) / axis["dtick"] + 1e-9)
    return [f"{(lo + k * axis['dtick']) * 100:.{decimals}f}%" for k in range(n + 1)]


@pytest.mark.parametrize(("window", "bucket", "dtick", "tickformat"), [
    (DAY, "hour", 2 * 3_600_000, "%H:%M"),  # hours for a day
    (DAY, "day", 2 * 3_600_000, "%H:%M"),  # one daily point: still the day's hours, not 23:59:59.9996
    (Window(datetime(2026, 10, 25), datetime(2026, 11, 1)), "day", 86_400_000, "%b %-d"),
    (MONTH, "hour", 7 * 86_400_000, "%b %-d"),  # days for a month
    (Window(datetime(2025, 11, 1), datetime(2026, 11, 1)), "day", "M1", "%b %Y"),  # months for a year
    (Window(datetime(2022, 1, 1), datetime(2026, 1, 1)), "week", "M6", "%b %Y"),
])
def test_time_axis_is_chosen_from_the_span(window: Window, bucket: str, dtick: object, tickformat: str) -> None:
    axis = time_axis(window.start, window.end, bucket)
    assert (axis["dtick"], axis["tickformat"]) == (dtick, tickformat)
    assert axis["range"][1] - axis["range"][0] >= timedelta(hours=1)


def test_time_axis_range_is_snapped_to_whole_buckets() -> None:
    axis = time_axis(datetime(2026, 10, 26, 9, 20), datetime(2026, 10, 26, 17, 5), "hour")
    assert axis["range"] == [datetime(2026, 10, 26, 9), datetime(2026, 10, 26, 18)]
    week = time_axis(datetime(2026, 10, 1), datetime(2026, 11, 1), "week")  # weeks start on Monday
    assert week["range"] == [datetime(2026, 9, 28), datetime(2026, 11, 2)]
    assert time_axis(DAY.start, DAY.end, "day")["title"]["text"] == "time (UTC), 2026/10/26"


@pytest.mark.parametrize(("values", "threshold"), [([0.0, 0.012, 0.018], 0.02), ([0.0004, 0.0011], 0.001),
                                                  ([0.366], 0.02), ([0.2, 0.9], 0.5), ([], 0.02)])
def test_percent_axis_ticks_are_distinct(values: list[float], threshold: float) -> None:
    axis = percent_axis(values, include=[threshold])
    labels = tick_labels(axis)
    assert len(labels) == len(set(labels)) >= 3, labels
    assert axis["range"][1] > max([*values, threshold])


def test_error_axis_of_a_two_percent_window_reads_in_half_percents() -> None:
    """The reported "0%, 1%, 1%, 2%, 2%": a 0.5% step needs one decimal."""
    buckets = pd.DataFrame({"bucket": pd.date_range(DAY.start, periods=24, freq="h"), "n": 100,
                            "error_rate": [0.001 * (i % 20) for i in range(24)]})
    fig = errors_throughput_figure(buckets, 0.02, window=DAY, bucket="hour")
    axis = fig.layout.yaxis2
    assert axis.tickformat == ".1%" and axis.dtick == 0.005
    assert tick_labels(axis.to_plotly_json())[:5] == ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]


def test_every_time_chart_takes_the_window_axis() -> None:
    """The one-day window with one daily bucket: every chart spans that day with hour ticks, and puts the
    bucket's point over the bucket, not on the window's edge."""
    hourly = pd.DataFrame({"bucket": [DAY.start], "n": [10], "n_error": [0], "p50_ms": [30.0], "p95_ms": [60.0],
                           "p99_ms": [80.0], "error_rate": [0.0], "estimated_accuracy": [0.8],
                           "actual_accuracy": [0.7], "label_coverage": [0.3]})
    empty = pd.DataFrame(columns=["start", "end", "buckets", "worst_p95_ms", "requests", "errors"])
    over = pd.DataFrame({"bucket": [DAY.start], "metric": ["disparate_impact"], "value": [0.9], "lower": [0.8],
                         "upper": [1.0], "n_privileged": [50], "n_unprivileged": [40], "verdict": ["pass"],
                         "undefined_reason": [None], "band_low": [0.8], "band_high": [1.25]})
    rates = pd.DataFrame({"bucket": [DAY.start], "group": ["female"], "n": [40], "selection_rate": [0.5],
                          "lower": [0.4], "upper": [0.6]})
    figures = [latency_figure(hourly, 200.0, empty, window=DAY, bucket="day"),
               errors_throughput_figure(hourly, 0.02, window=DAY, bucket="day"),
               quality_figure(hourly, 0.7, window=DAY, bucket="day"),
               metric_over_time_figure(over, "disparate_impact", window=DAY, bucket="day"),
               group_trend_figure(rates, window=DAY, bucket="day"),
               audit_activity_figure(pd.DataFrame({"ts": [datetime(2026, 10, 26, 9)], "action": ["promote"]}))]
    for fig in figures:
        axis = fig.layout.xaxis
        assert [pd.Timestamp(x) for x in axis.range] == [pd.Timestamp(DAY.start), pd.Timestamp(DAY.end)]
        assert axis.tickformat == "%H:%M" and axis.dtick == 2 * 3_600_000
        assert all(t.xperiodalignment == "middle" and t.xperiod == 86_400_000 for t in fig.data
                   if t.x is not None and len(t.x) and t.x[0] is not None)


def test_evaluation_history_axis_snaps_to_hours() -> None:
    history = pd.DataFrame({"policy": ["latency"], "verdict": ["pass"], "value": [1.0], "threshold": ["200"],
                            "data_version": ["v"], "evaluated_at": [datetime(2026, 10, 26, 9, 30)]})
    axis = verdict_history_figure(history).layout.xaxis
    assert [pd.Timestamp(x) for x in axis.range] == [pd.Timestamp("2026-10-26 09:00"), pd.Timestamp("2026-10-26 10:00")]


def test_bars_span_their_bucket() -> None:
    assert bucket_trace("hour", bar=True) == {"xperiod": 3_600_000, "xperiodalignment": "middle",
                                              "width": 0.9 * 3_600_000}
    assert bucket_trace("week")["xperiod0"] == "2000-01-03"  # a Monday, as DuckDB's weeks


def test_one_colour_per_meaning_across_charts() -> None:
    """"labelled" is the same green in the queue chart and the annotator chart beside it (it was green in
    one and red in the other); job and verdict states use the same good/bad colours."""
    queue = queue_figure({"sent": 3, "labelled": 5, "skipped": 1})
    annotators = annotator_figure(pd.DataFrame({"annotator": ["ann"], "labelled": [5], "skipped": [1]}))
    colour = {t.name.split(" (")[0]: t.marker.color for t in queue.data}
    assert colour["labelled"] == palette.GOOD and colour["skipped"] == palette.CAUTION
    assert {t.name: t.marker.color for t in annotators.data} == {"labelled": palette.GOOD, "skipped": palette.CAUTION}
    jobs = jobs_duration_figure(pd.DataFrame({"id": ["a", "b"], "state": ["succeeded", "failed"],
                                              "duration_s": [3.0, 4.0]}))
    assert {t.name: t.marker.color for t in jobs.data} == {"succeeded": palette.GOOD, "failed": palette.BAD}
    assert palette.VERDICT["pass"] == palette.GOOD and palette.VERDICT["fail"] == palette.BAD
    assert not {palette.GOOD, palette.BAD} & set(palette.CATEGORICAL)


def test_windows_read_as_the_pickers_show_them() -> None:
    """A picked range 10/25-10/31 is stored as [10-25, 11-01): captions show the last day, as the picker."""
    week = Window(datetime(2026, 10, 25), datetime(2026, 11, 1))
    assert fmt_window(week) == "2026/10/25 – 2026/10/31"
    assert fmt_window(Window(datetime(2026, 10, 26, 9), datetime(2026, 10, 26, 10))) == \
        "2026/10/26 09:00 UTC – 2026/10/26 10:00 UTC"
    typed = "2026-10-25..2026-10-31"
    assert window_text(parse_window(typed)) == typed  # parses back to the same window
    assert parse_window(window_text(parse_window("2026-10-26T09:00..2026-10-26T10:00"))) == \
        parse_window("2026-10-26T09:00..2026-10-26T10:00")
