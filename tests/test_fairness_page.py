"""Fairness page (AppTest over a real DuckDB file) and its figure builders."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from connectors.windows import parse_window
from dashboard.charts.fairness import (
    group_rates_figure,
    intersection_heatmap,
    metric_over_time_figure,
)
from dashboard.context import Context
from dashboard.monitoring.fairness import compute_fairness, fairness_over_time
from dashboard.settings import Settings
from tests.fixtures.fairness import scenario

REPO = Path(__file__).resolve().parents[1]


def plain(markdown: str) -> str:
    """Markdown source without the backslash escapes text from data gets (what the reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)
WINDOW = parse_window("2026-01-01..2026-01-31")


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def loaded(store: LogStore, schema: LogSchema, write_file: Callable[[pd.DataFrame, str], Path]) -> pd.DataFrame:
    df = scenario()
    store.ingest([write_file(df.drop(columns=["label"]), "logs.parquet")], schema)
    store.add_labels(schema, df.loc[df["label"].notna(), ["prediction_id", "label"]], source="ground_truth")
    return df


def run_page(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> AppTest:
    monkeypatch.setenv("VIGIL_CONFIG", str(REPO / "dashboard/demo/vigil.toml"))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    return AppTest.from_file(str(REPO / "pages/3_fairness.py"), default_timeout=60).run()


def metric_rows(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def test_page_shows_the_gap_for_the_unfair_version_only(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                                        loaded: pd.DataFrame) -> None:
    at = run_page(monkeypatch, settings)
    assert not at.exception and not at.error
    assert at.title[0].value == "Fairness"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Predictions (status ok)"] == f"{len(loaded):,}"
    assert labels["Labelled rows"] == f"{int(loaded['label'].notna().sum()):,}"
    version = next(s for s in at.selectbox if s.label == "Model version")
    at = version.set_value("1").run()
    fair = metric_rows(at).set_index("metric")
    assert fair.loc["Disparate impact (selection rate ratio)", "verdict"] == "pass"
    version = next(s for s in at.selectbox if s.label == "Model version")
    at = version.set_value("2").run()
    assert not at.exception and not at.error
    unfair = metric_rows(at).set_index("metric")
    assert unfair.loc["Disparate impact (selection rate ratio)", "verdict"] == "FAIL"
    assert unfair.loc["Statistical parity difference", "rows used"] == "all rows"
    assert unfair.loc["Equal opportunity difference (TPR)", "rows used"] == "labelled rows"
    assert {m.label: m.value for m in at.metric}["Lowest selection rate"] == "female"
    assert not unfair["value"].str.contains("nan").any()
    text = plain(" ".join(md.value for md in at.markdown))
    assert "Worst-off group: **sex=female × age=" in text
    assert len(at.get("plotly_chart")) == 4  # rates per group, metric over time, group trend, heatmap


def test_page_privileged_selection_flips_the_comparison(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                                        loaded: pd.DataFrame) -> None:
    at = run_page(monkeypatch, settings)
    version = next(s for s in at.selectbox if s.label == "Model version")
    at = version.set_value("2").run()
    at = at.multiselect[0].set_value(["female"]).run()
    assert not at.exception and not at.error
    table = metric_rows(at).set_index("metric")
    assert table.loc["Disparate impact (selection rate ratio)", "verdict"] == "FAIL"
    assert float(str(table.loc["Disparate impact (selection rate ratio)", "value"])) > 1.25
    assert any("Privileged: female" in c.value for c in at.caption)


def test_page_without_logs_says_what_to_do(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    at = run_page(monkeypatch, settings)
    assert not at.exception
    assert any("No prediction logs" in i.value for i in at.info)


def test_figures_mark_small_and_undefined(ctx: Context, loaded: pd.DataFrame) -> None:
    report = compute_fairness(ctx, "credit-risk", WINDOW, version="2")
    inter = report.intersections[0]
    fig = intersection_heatmap(inter.groups, "sex", "age", worst=inter.worst_group)
    texts = [t for row in fig.data[0].text for t in row]
    assert any(t.startswith("too small") for t in texts) and any("◀ worst" in t for t in texts)
    bars = group_rates_figure(report.attribute("sex").groups)
    assert len(bars.data) == 5 and "male (privileged)" in list(bars.data[0].x)
    over = fairness_over_time(ctx, "credit-risk", WINDOW, "sex", version="2")
    line = metric_over_time_figure(over, "disparate_impact")
    assert line.layout.shapes[0].y0 == 0.8 and line.layout.shapes[0].y1 == 1.25
    over.loc[over.index[0], ["value", "lower", "upper"]] = None
    over.loc[over.index[0], "undefined_reason"] = "privileged group has no rows"
    marked = metric_over_time_figure(over, over.loc[over.index[0], "metric"])
    assert any(tr.name == "undefined" for tr in marked.data)
