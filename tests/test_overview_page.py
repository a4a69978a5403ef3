"""Overview page (AppTest) over a real DuckDB file and a real (sqlite) MLflow store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.governance.overview import model_health
from tests.fixtures.access import signed_in

REPO = Path(__file__).resolve().parents[1]


def plain(markdown: str) -> str:
    """Markdown source without the backslash escapes values from data get (what the reader sees)."""
    return re.sub(r"\\(.)", r"\1", markdown)


pytestmark = pytest.mark.usefixtures("fresh_caches")


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
    at = signed_in(AppTest.from_file(str(REPO / "pages/1_overview.py"), default_timeout=180), "mia", "manager").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Needs attention"]
    text = plain(" ".join(md.value for md in at.markdown))
    assert "**v2 (challenger)** fails 1 blocking policy" in text
    # Why, without opening another page: the value, the threshold and the window of the failing policy.
    line = next(md.value for md in at.markdown if "disparate_impact[sex]" in plain(md.value))
    assert re.search(r"\*\*disparate_impact\[sex\]\*\*: 0\.\d+ \(needs within \[0\.8, 1\.25\]; fail\) over 2026-10-",
                     plain(line)), plain(line)
    assert "**v1 (champion)** passes every blocking policy" in text
    warnings = [e for e in at.expander if "warning(s)" in e.label]
    assert warnings and any("feature_drift[income]" in plain(md.value) for e in warnings for md in e.markdown)
    captions = " ".join(c.value for c in at.caption)
    assert "Compliance page" in captions
    assert "`vigil check --model credit-risk --version V`" in captions  # a command as code, no escapes in it


def test_an_annotators_overview_points_only_to_pages_they_can_open(demo_workspace: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    import shutil

    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    for key in [k for k in os.environ if k.startswith("VIGIL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VIGIL_CONFIG", str(workspace / "vigil.toml"))
    at = signed_in(AppTest.from_file(str(REPO / "pages/1_overview.py"), default_timeout=180), "ann", "annotator")
    at.run()
    assert not at.exception
    everything = " ".join([c.value for c in at.caption] + [md.value for md in at.markdown])
    assert "Compliance" not in everything
    # The verdicts joined the scorecard's history, as the Compliance page's would.
    from dashboard.context import Context
    from dashboard.governance.policy import evaluation_history
    from dashboard.settings import load_settings

    history = evaluation_history(Context(load_settings(workspace / "vigil.toml", env={})), "credit-risk", "2")
    mine = history[(history["trigger"] == "overview") & (history["policy"] == "disparate_impact[sex]")]
    assert set(mine["verdict"]) == {"fail"}  # (the shared workspace may hold other pages' verdicts too)


def test_label_coverage_and_error_rate_are_one_number_everywhere(monkeypatch, settings, ctx, store, schema,
                                                                 logs_factory, write_file, capsys):
    """Overview (store summary), Operations (quality report) and `vigil ops` count label coverage over the
    same rows: successful predictions; a failed request and a label sent for it count nowhere."""
    import json

    import pandas as pd

    from connectors.windows import parse_window
    from dashboard.cli import cli
    from dashboard.commands.common import run_cli
    from dashboard.monitoring.operations import compute_operations
    from dashboard.monitoring.quality import compute_quality

    df = logs_factory(100)
    df.loc[:9, "status"] = "error"
    store.ingest([write_file(df, "logs.parquet")], schema)
    labelled = pd.concat([df.iloc[10:40], df.iloc[:5]])  # 30 successful predictions and 5 failed ones
    store.add_labels(schema, pd.DataFrame({"prediction_id": labelled["prediction_id"], "label": "good"}),
                     source="ground_truth")
    window = parse_window("2026-01-01..2026-01-01")
    health = model_health(ctx, "credit-risk")
    quality = compute_quality(ctx, "credit-risk", window)
    ops = compute_operations(ctx, "credit-risk", window)
    assert health.label_coverage == quality.label_coverage == pytest.approx(30 / 90)
    assert health.error_rate == ops.error_rate == pytest.approx(0.10)
    assert health.latency_p95_ms == pytest.approx(ops.latency_p95_ms)
    assert run_cli(cli, ["--config", str(settings.config_path), "ops", "--model", "credit-risk", "--window",
                         "2026-01-01..2026-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"]["label_coverage"] == pytest.approx(30 / 90)
    at = run_page(monkeypatch, settings)
    assert {m.label: m.value for m in at.metric}["Label coverage"] == "33.33%"


def test_model_health_judges_errors_against_the_declared_policy(ctx, store, schema, logs_factory, write_file):
    """The card's "error rate above" uses the limit the Operations page uses: a declared policy wins."""
    from dataclasses import replace

    from dashboard.context import Context
    from dashboard.settings import PolicySpec

    df = logs_factory(100)
    df.loc[:9, "status"] = "error"
    store.ingest([write_file(df, "logs.parquet")], schema)

    def health_with(*policies: PolicySpec) -> list[str]:
        cfg = replace(ctx.model("credit-risk"), policies=policies)
        pctx = Context(replace(ctx.settings, models={**ctx.settings.models, "credit-risk": cfg}))
        return model_health(pctx, "credit-risk").attention

    assert not any("error rate" in r for r in health_with(PolicySpec("errors", "error_rate", "<=", 0.5)))
    assert "error rate 10.00% above 5.00% (policy errors)" in health_with(
        PolicySpec("errors", "error_rate", "<=", 0.05))
    assert "error rate 10.00% above 2.00% (thresholds.error_rate)" in health_with()
