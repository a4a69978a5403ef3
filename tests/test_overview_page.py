"""Overview page (AppTest) over a real DuckDB file and a real (sqlite) MLflow store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.governance.overview import model_health

REPO = Path(__file__).resolve().parents[1]


def plain(markdown: str) -> str:
    """Markdown source without the backslash escapes values from data get (what the reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def run_page(monkeypatch, settings) -> AppTest:
    monkeypatch.setenv("VIGIL_CONFIG", str(REPO / "dashboard/demo/vigil.toml"))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(str(REPO / "pages/1_overview.py"), default_timeout=60)
    return at.run()


def test_overview_shows_real_numbers_from_the_store(monkeypatch, settings, store, schema, logs_factory,
                                                     write_file):
    df = logs_factory(400)
    df.loc[:19, "status"] = "error"
    store.ingest([write_file(df, "logs.parquet")], schema)
    at = run_page(monkeypatch, settings)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions"] == "400"
    assert metrics["Error rate"] == "5.00%"
    assert at.subheader[0].value == "credit-risk"
    text = plain(" ".join(md.value for md in at.markdown))
    assert "is not a registered model in MLflow" in text
    assert "error rate 5.00% above 2.00%" in text


def test_overview_with_no_logs_says_so(monkeypatch, settings):
    at = run_page(monkeypatch, settings)
    assert not at.exception
    assert any("no prediction logs ingested yet" in md.value for md in at.markdown)


def test_overview_reports_a_registry_outage_without_failing(monkeypatch, settings, store, schema,
                                                           logs_factory, write_file):
    store.ingest([write_file(logs_factory(50), "logs.parquet")], schema)
    monkeypatch.setenv("VIGIL_MLFLOW_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("VIGIL_MLFLOW_TIMEOUT", "2")
    at = run_page(monkeypatch, settings)
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Predictions"] == "50"
    assert any("Registry unavailable" in w.value and "VIGIL_MLFLOW_URI" in plain(w.value) for w in at.warning)


def test_model_health_flags_latency(ctx, store, schema, logs_factory, write_file):
    df = logs_factory(100)
    df["latency_ms"] = 500.0
    store.ingest([write_file(df, "slow.parquet")], schema)
    health = model_health(ctx, "credit-risk")
    assert health.latency_p95_ms == pytest.approx(500.0)
    assert any("latency p95 500 ms above 200 ms" in r for r in health.attention)


def test_overview_judges_each_serving_version_against_its_policies(demo_workspace: Path, tmp_path: Path,
                                                                    monkeypatch):
    """The demo's challenger (v2) serves traffic with a fairness gap: the card needs attention and says
    which version fails which blocking policy, while the champion (v1) passes."""
    import shutil

    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    for key in [k for k in os.environ if k.startswith("VIGIL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VIGIL_CONFIG", str(workspace / "vigil.toml"))
    at = AppTest.from_file(str(REPO / "pages/1_overview.py"), default_timeout=180).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Needs attention"]
    text = " ".join(md.value for md in at.markdown)
    assert "**v2 (challenger)** fails disparate_impact[sex]" in text
    assert "**v1 (champion)** passes every blocking policy" in text
    assert "warning(s): feature_drift[income]" in text
    # The verdicts joined the scorecard's history, as the Compliance page's would.
    from dashboard.context import Context
    from dashboard.governance.policy import evaluation_history
    from dashboard.settings import load_settings

    history = evaluation_history(Context(load_settings(workspace / "vigil.toml", env={})), "credit-risk", "2")
    mine = history[(history["trigger"] == "overview") & (history["policy"] == "disparate_impact[sex]")]
    assert set(mine["verdict"]) == {"fail"}  # (the shared workspace may hold other pages' verdicts too)
