"""Operations page (AppTest) over the demo workspace: the injected latency spike and error burst show where
they were injected; plus the chart builders and the page's bad-input messages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.windows import Window
from dashboard.charts.operations import (
    errors_throughput_figure,
    label_delay_figure,
    latency_figure,
    quality_figure,
    reliability_figure,
    version_latency_figure,
)
from dashboard.context import load_context
from dashboard.demo.scenario import DemoScenario
from dashboard.monitoring.operations import compute_operations
from dashboard.monitoring.quality import compute_quality

REPO = Path(__file__).resolve().parents[1]


def plain(markdown: str) -> str:
    """Markdown source without the backslash escapes text from data gets (what the reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)
PAGE = str(REPO / "pages/4_operations.py")


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    for key in ("VIGIL_CONFIG", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI"):
        monkeypatch.delenv(key, raising=False)


def demo_window(sc: DemoScenario) -> Window:
    return Window(sc.start, sc.end)


def test_demo_spike_and_burst_are_found_where_injected(demo_workspace: Path, demo_scenario: DemoScenario):
    ctx = load_context(str(demo_workspace / "vigil.toml"))
    ops = compute_operations(ctx, "credit-risk", demo_window(demo_scenario), bucket="hour")
    lo, hi = demo_scenario.latency_spike
    b = ops.slo.breaches
    assert list(zip(b["start"], b["end"], strict=True)) == [(lo, hi)]
    burst_lo, burst_hi = demo_scenario.error_burst
    worst = ops.buckets.iloc[int(ops.buckets["n_error"].to_numpy().argmax())]
    assert burst_lo <= worst["bucket"] < burst_hi  # the most errors of any hour
    assert worst["error_rate"] > 0.2 > 10 * ops.error_rate
    assert set(ops.versions["version"]) == {"1", "2"}
    q = compute_quality(ctx, "credit-risk", demo_window(demo_scenario))
    assert q.actual.accuracy is not None and q.estimated_accuracy is not None
    assert 0 < q.label_coverage < 1


def breach_tables(at: AppTest) -> dict[str, pd.DataFrame]:
    """The page's breach tables by objective (told apart by their worst-value column)."""
    tables = [df.value for df in at.dataframe if "from (UTC)" in df.value.columns]
    return {("latency" if "worst p95 (ms)" in t.columns else "errors"): t for t in tables}


def ranges(table: pd.DataFrame) -> list[tuple[object, object]]:
    return list(zip(table["from (UTC)"], table["to (UTC)"], strict=True))


def figure(at: AppTest, title_part: str) -> dict:
    """The plotly figure (as JSON) whose subplot titles or axis titles mention ``title_part``."""
    import json

    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if title_part in json.dumps(spec.get("layout", {})):
            return spec
    raise AssertionError(f"no chart mentions {title_part!r}")


def test_demo_error_burst_is_an_error_slo_breach(demo_workspace: Path, demo_scenario: DemoScenario):
    """2026-10-26 09:00-10:00: the burst hour breaches the error objective; per day, the whole day does
    (and no other day of the month); the latency SLO stays met that day."""
    ctx = load_context(str(demo_workspace / "vigil.toml"))
    burst_lo, burst_hi = demo_scenario.error_burst
    daily = compute_operations(ctx, "credit-risk", demo_window(demo_scenario), bucket="day").error_slo
    day = burst_lo.replace(hour=0)
    assert list(zip(daily.breaches["start"], daily.breaches["end"], strict=True)) == [(day, day + timedelta(days=1))]
    assert daily.breaches.iloc[0]["worst_error_rate"] > daily.threshold == 0.02
    burst_day = Window(day, day + timedelta(days=1))
    hourly = compute_operations(ctx, "credit-risk", burst_day, bucket="hour")
    assert hourly.slo.met is True and hourly.error_slo.met is False
    worst = hourly.error_slo.breaches.sort_values("worst_error_rate").iloc[-1]
    assert (worst["start"], worst["end"]) == (burst_lo, burst_hi) and worst["worst_error_rate"] > 0.2


def test_page_shows_the_error_burst_like_a_latency_breach(monkeypatch, demo_workspace: Path,
                                                          demo_scenario: DemoScenario):
    monkeypatch.setenv("VIGIL_CONFIG", str(demo_workspace / "vigil.toml"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    burst_lo, burst_hi = demo_scenario.error_burst
    day = burst_lo.date()
    at.date_input(key="ops_window").set_value((day, day)).run()
    assert not at.exception
    assert any(c.value.startswith(f"Window {day:%Y/%m/%d} – {day:%Y/%m/%d} (UTC days)") for c in at.caption)
    assert any(s.value.startswith("Latency SLO met: every hour had p95 ≤ 200 ms") for s in at.success)
    assert any(e.value.startswith("Error-rate SLO breached in ") and "error rate ≤ 2.00%" in e.value
               for e in at.error)
    assert (burst_lo, burst_hi) in ranges(breach_tables(at)["errors"])
    spec = figure(at, "throughput")
    rects = [(pd.Timestamp(s["x0"]), pd.Timestamp(s["x1"])) for s in spec["layout"]["shapes"] if s["type"] == "rect"]
    assert (pd.Timestamp(burst_lo), pd.Timestamp(burst_hi)) in rects  # shaded where the table says
    assert any(s["type"] == "line" and s["y0"] == 0.02 for s in spec["layout"]["shapes"])  # the threshold line
    assert [pd.Timestamp(x) for x in spec["layout"]["xaxis"]["range"]] == [pd.Timestamp(day),
                                                                          pd.Timestamp(day) + pd.Timedelta(days=1)]
    at.radio(key="ops_bucket").set_value("day").run()
    assert not at.exception
    assert ranges(breach_tables(at)["errors"]) == [(pd.Timestamp(day), pd.Timestamp(day) + pd.Timedelta(days=1))]


def test_page_shows_breach_list_charts_and_quality(monkeypatch, demo_workspace: Path, demo_scenario):
    monkeypatch.setenv("VIGIL_CONFIG", str(demo_workspace / "vigil.toml"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert any(e.value.startswith("Latency SLO breached in 3 of") for e in at.error)
    assert ranges(breach_tables(at)["latency"]) == [demo_scenario.latency_spike]
    versions = [df.value for df in at.dataframe if "version" in df.value.columns]
    assert list(versions[0]["version"]) == ["v1", "v2"]
    assert any("CBPE" in i.value and "concept drift" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions"] == f"{demo_scenario.rows:,}"
    assert metrics["Realised accuracy"] != "n/a"
    assert metrics["ROC AUC (est.)"] != "n/a"  # CBPE with bands, and the segment ranking
    assert any(h.value == "Estimated performance (CBPE)" for h in at.subheader)
    assert any(plain(md.value).startswith("accuracy ") and " points (" in plain(md.value) for md in at.markdown)
    # Narrow to the day of the error burst, daily buckets: one bucket, still the burst's errors.
    day = demo_scenario.error_burst[0].date()
    at.date_input(key="ops_window").set_value((day, day)).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Predictions"] != f"{demo_scenario.rows:,}"
    at.radio(key="ops_bucket").set_value("day").run()
    assert not at.exception
    assert any("Latency SLO (p95 ≤ 200 ms): no breach in this window" in md.value for md in at.markdown)


def test_page_without_logs_says_how_to_ingest(monkeypatch, settings):
    monkeypatch.setenv("VIGIL_CONFIG", str(REPO / "dashboard/demo/vigil.toml"))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("vigil ingest --model credit-risk" in i.value for i in at.info)


def test_page_with_null_latencies_and_no_labels_explains(monkeypatch, settings, store, schema, logs_factory,
                                                         write_file):
    df = logs_factory(120)
    df["latency_ms"] = float("nan")
    store.ingest([write_file(df, "nolat.parquet")], schema)
    monkeypatch.setenv("VIGIL_CONFIG", str(REPO / "dashboard/demo/vigil.toml"))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("none of the 120 predictions has a latency_ms value" in plain(w.value) for w in at.warning)
    assert any(i.value.startswith("Latency SLO: no hour") and "no SLO verdict" in i.value for i in at.info)
    assert any("ground-truth label" in plain(i.value) for i in at.info)


def test_chart_builders_draw_the_slo_and_breaches():
    buckets = pd.DataFrame({"bucket": pd.date_range("2026-01-01", periods=4, freq="h"), "n": [10, 12, 0, 9],
                            "p50_ms": [20, 300, None, 25], "p95_ms": [40, 400, None, 50],
                            "p99_ms": [60, 500, None, 70], "error_rate": [0.0, 0.5, None, 0.1]})
    breaches = pd.DataFrame({"start": [pd.Timestamp("2026-01-01 01:00")], "end": [pd.Timestamp("2026-01-01 02:00")],
                             "buckets": [1], "worst_p95_ms": [400.0], "requests": [12]})
    fig = latency_figure(buckets, 200.0, breaches)
    shapes = fig.layout.shapes
    assert any(s.type == "rect" and pd.Timestamp(s.x0) == breaches["start"][0] for s in shapes)
    assert any(s.type == "line" and s.y0 == 200.0 for s in shapes)
    assert [t.name for t in fig.data][:3] == ["p50", "p95", "p99"]
    fig2 = errors_throughput_figure(buckets.assign(error_breach=[False, True, False, True]), 0.02,
                                    breaches.rename(columns={"worst_p95_ms": "worst_error_rate"}))
    assert list(fig2.data[0].y) == [10, 12, 0, 9]
    rects = [s for s in fig2.layout.shapes if s.type == "rect"]
    assert len(rects) == 2 and all(pd.Timestamp(r.x0) == breaches["start"][0] for r in rects)  # both panels
    assert any(s.type == "line" and s.y0 == 0.02 for s in fig2.layout.shapes)
    marked = next(t for t in fig2.data if t.name == "error rate above objective")
    assert list(marked.y) == [0.5, 0.1]
    vb = buckets.assign(version="1")
    assert len(version_latency_figure(pd.concat([vb, vb.assign(version="2")]), 200.0).data) == 2
    qb = pd.DataFrame({"bucket": buckets["bucket"], "estimated_accuracy": [0.8] * 4,
                       "actual_accuracy": [0.7, None, None, 0.9], "label_coverage": [0.5, 0, 0, 0.2]})
    assert len(quality_figure(qb, 0.7).data) == 3
    rel = pd.DataFrame({"bin": [0, 9], "n": [5, 6], "mean_proba": [0.05, 0.95], "frac_positive": [0.1, 0.9]})
    assert list(reliability_figure(rel).data[1].y) == [0.1, 0.9]
    assert list(label_delay_figure(pd.DataFrame({"day": [0, 3], "n": [4, 2]})).data[0].x) == [0, 3]
