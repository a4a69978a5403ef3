"""Operations page (AppTest) over the demo workspace: the injected latency spike and error burst show where
they were injected; plus the chart builders and the page's bad-input messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
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
def _fresh_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("VIGIL_CONFIG", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI"):
        monkeypatch.delenv(key, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


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


def test_page_shows_breach_list_charts_and_quality(monkeypatch, demo_workspace: Path, demo_scenario):
    monkeypatch.setenv("VIGIL_CONFIG", str(demo_workspace / "vigil.toml"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert any("SLO breached in 3 of" in e.value for e in at.error)
    breaches = [df.value for df in at.dataframe if "from (UTC)" in df.value.columns]
    assert len(breaches) == 1
    first = breaches[0].iloc[0]
    assert (first["from (UTC)"], first["to (UTC)"]) == demo_scenario.latency_spike
    versions = [df.value for df in at.dataframe if "version" in df.value.columns]
    assert list(versions[0]["version"]) == ["v1", "v2"]
    assert any("CBPE" in i.value and "concept drift" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions"] == f"{demo_scenario.rows:,}"
    assert metrics["Realised accuracy"] != "n/a"
    # Narrow to the day of the error burst, daily buckets: one bucket, still the burst's errors.
    day = demo_scenario.error_burst[0].date()
    at.date_input(key="ops_window").set_value((day, day)).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Predictions"] != f"{demo_scenario.rows:,}"
    at.radio(key="ops_bucket").set_value("day").run()
    assert not at.exception
    assert any("No breach in this window" in md.value for md in at.markdown)


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
    assert any("no SLO verdict" in i.value for i in at.info)
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
    fig2 = errors_throughput_figure(buckets, 0.02)
    assert list(fig2.data[0].y) == [10, 12, 0, 9]
    vb = buckets.assign(version="1")
    assert len(version_latency_figure(pd.concat([vb, vb.assign(version="2")]), 200.0).data) == 2
    qb = pd.DataFrame({"bucket": buckets["bucket"], "estimated_accuracy": [0.8] * 4,
                       "actual_accuracy": [0.7, None, None, 0.9], "label_coverage": [0.5, 0, 0, 0.2]})
    assert len(quality_figure(qb, 0.7).data) == 3
    rel = pd.DataFrame({"bin": [0, 9], "n": [5, 6], "mean_proba": [0.05, 0.95], "frac_positive": [0.1, 0.9]})
    assert list(reliability_figure(rel).data[1].y) == [0.1, 0.9]
    assert list(label_delay_figure(pd.DataFrame({"day": [0, 3], "n": [4, 2]})).data[0].x) == [0, 3]
