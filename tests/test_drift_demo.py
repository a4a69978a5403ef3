"""Drift on the demo workspace (training reference from MLflow), the CLI, the page and the Evidently report."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from connectors.windows import Window
from dashboard.access.roles import Actor
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.demo.scenario import DemoScenario
from dashboard.errors import PermissionDenied
from dashboard.monitoring.drift import compute_drift, drift_over_time
from dashboard.monitoring.evidently_report import ARTIFACT_DIR, build_report, store_report
from dashboard.settings import settings_from_mapping

REPO = Path(__file__).resolve().parents[1]


def after_drift(s: DemoScenario) -> Window:
    return Window(s.drift_start, s.end)


def test_demo_drift_shows_on_the_right_features(demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    result = compute_drift(demo_ctx, s.model, after_drift(s), "training")
    by = {c.column: c for c in result.columns}
    assert "training data of version" in result.reference_label
    assert by["income"].drifted and by["income"].method == "wasserstein"
    assert by["purpose"].drifted and by["purpose"].method == "jensenshannon"
    before = compute_drift(demo_ctx, s.model, Window(s.day_start(2), s.drift_start), "training")
    assert not {c.column: c for c in before.columns}["income"].drifted


def test_demo_drift_starts_on_the_drift_day(demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    over = drift_over_time(demo_ctx, s.model, Window(s.start, s.end), bucket="day", reference="training")
    income = over[over["column"] == "income"].set_index("bucket")
    drifted_days = sorted(income.index[income["drifted"]])
    assert drifted_days, "income never drifted"
    assert drifted_days[0] == pd.Timestamp(s.drift_start)
    assert all(income.loc[pd.Timestamp(s.day_start(d)), "drifted"] for d in range(s.drift_day, s.days + 1))


def test_cli_prints_the_same_numbers(demo_ctx: Context, demo_scenario: DemoScenario,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    s = demo_scenario
    cur = after_drift(s)
    text = f"{cur.start:%Y-%m-%d}..{(cur.end - timedelta(days=1)):%Y-%m-%d}"
    code = run_cli(cli, ["drift", "--model", s.model, "--reference", "training", "--current", text, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    expected = {c.column: c.score for c in compute_drift(demo_ctx, s.model, cur, "training").columns}
    assert {c["column"]: c["score"] for c in data["columns"]} == pytest.approx(expected)
    assert data["columns"][0]["drifted"]
    code = run_cli(cli, ["drift", "--model", s.model, "--current", text])
    table = capsys.readouterr().out
    assert code == 0 and "income" in table and "DRIFT" in table and "Wasserstein" in table
    code = run_cli(cli, ["drift", "--model", s.model, "--current", "2020-01-01..2020-01-02"])
    err = capsys.readouterr().err
    assert code == 2 and "has no logged predictions" in err


def test_page_shows_the_drift(demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    at = AppTest.from_file(str(REPO / "pages/2_drift.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    drifted = set(table.loc[table["drifted"], "column"])
    assert {"income", "purpose"} <= drifted  # default current window: the last 7 days, after the drift
    assert table.iloc[0]["drifted"]
    assert len(at.get("plotly_chart")) >= 4  # distribution, heatmap, share over time, multivariate
    captions = " ".join(c.value for c in at.caption)
    assert f"first alert {demo_scenario.drift_start:%Y-%m-%d} 00:00 UTC" in captions  # multivariate panel
    at.button(key="drift_build_report").click().run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Computed by Evidently on a" in captions


def test_evidently_report_is_sampled_and_stated(demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    steps: list[str] = []
    report = build_report(demo_ctx, s.model, after_drift(s), "training", max_rows=1500, progress=steps.append)
    assert report.sampled and report.sample_current == 1500 and report.sample_reference == 1500
    assert "1500 of" in report.sample_note and report.file_name.endswith("_sampled.html")
    assert "<html" in report.html.lower() and "income" in report.html
    assert len(steps) == 3


def test_store_report_needs_permission_and_lands_on_the_version_run(tmp_path: Path) -> None:
    """A fresh sqlite MLflow store with one registered version (the shared demo store stays untouched)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("drift-test", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(exp)
    client.create_registered_model("m")
    mv = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    raw = {"vigil": {"data_dir": str(tmp_path / "data"), "mlflow_tracking_uri": uri},
           "models": {"m": {"features": {"x": "numerical"}, "classes": ["a", "b"], "favourable": "a"}}}
    ctx = Context(settings_from_mapping(raw, env={}, base_dir=tmp_path))
    from dashboard.monitoring.evidently_report import EvidentlyReport

    report = EvidentlyReport(html="<html>r</html>", file_name="r.html", n_reference=1, n_current=1,
                             sample_reference=1, sample_current=1, reference_label="a", current_label="b")
    with pytest.raises(PermissionDenied):
        store_report(ctx, Actor("ann", "annotator"), "m", str(mv.version), report)
    path = store_report(ctx, Actor("dana", "data_scientist"), "m", str(mv.version), report)
    assert path == f"{ARTIFACT_DIR}/r.html"
    assert ctx.registry.list_artifacts(run.info.run_id, ARTIFACT_DIR) == [path]


def test_label_drift_counts_the_joined_labels_while_other_columns_skip_the_join(
        demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    from connectors.queries import reference as refq

    s = demo_scenario
    cur = after_drift(s)
    by = {c.column: c for c in compute_drift(demo_ctx, s.model, cur, "training").columns}
    schema = demo_ctx.schema(s.model)
    with demo_ctx.connect(s.model) as con:
        joined = con.execute(f"SELECT count(l.label), count(*) FROM {schema.table} t LEFT JOIN current_labels l "
                             "ON l.model_name = ? AND l.prediction_id = t.prediction_id WHERE t.ts >= ? AND t.ts < ?",
                             [s.model, cur.start, cur.end]).fetchone()
    assert joined is not None and 0 < joined[0] < joined[1]
    assert by["label"].n_current == joined[0] and by["age"].n_current == joined[1]
    src = refq.window_source(schema, cur.start, cur.end, ("age", "label"), bucket="day")
    narrow = src.narrow(["age"])
    assert "current_labels" in src.sql and "current_labels" not in narrow.sql and "bucket" in narrow.sql
    assert narrow.columns == ("age",) and narrow.params == (cur.start, cur.end)
    assert src.narrow(["label", "not-a-column"]).columns == ("label",)
    one = refq.window_source(schema, cur.start, cur.end, ("age", "label"), rows=refq.RowFilter("t.purpose = ?",
                                                                                                 ("business",)))
    kept = one.narrow(["age"])  # a segment stays a segment when fewer columns are read
    assert "t.purpose = ?" in kept.sql and kept.params == (cur.start, cur.end, "business")
