"""Retraining page (AppTest) over a real DuckDB file, a real sqlite MLflow store and real job workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.charts.retraining import comparison_figure, jobs_duration_figure, latency_figure
from dashboard.context import Context
from dashboard.demo.train import train_model
from dashboard.lifecycle import gate, jobs
from dashboard.settings import load_settings
from tests.fixtures.access import signed_in
from tests.fixtures.retraining import TRAIN_ROWS

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages/6_retraining.py")


pytestmark = pytest.mark.usefixtures("fresh_caches")


def page(role: str = "data_scientist", name: str = "dana") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    signed_in(at, name, role)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success] \
        + [e.value for e in at.error] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_page_without_jobs_or_candidates_says_what_to_do(retrain_ws: Path):
    at = page()
    assert not at.exception
    assert [s.value for s in at.subheader][:3] == ["Retrain", "Jobs", "Candidate vs champion"]
    assert "No retraining job yet" in texts(at)
    assert "No candidate version yet" in texts(at)


def test_comparison_of_an_evaluated_candidate_and_request_promotion(retrain_ctx: Context):
    fair = train_model(retrain_ctx.settings, "credit-risk", rows=TRAIN_ROWS, seed=6, alias="challenger")
    gate.run_gate(retrain_ctx, "credit-risk", fair.model_version)
    at = page()
    assert not at.exception
    assert f"v{fair.model_version} passes the gate against v1" in texts(at)
    frames = [df.value for df in at.dataframe]
    comparison = next(f for f in frames if {"champion", "candidate", "delta"} <= set(f.columns))
    assert {"accuracy", "roc_auc", "f1", "disparate_impact_sex"} <= set(comparison["metric"])
    policies = next(f for f in frames if "policy" in f.columns)
    assert set(policies["result"]) <= {"pass", "fail", "not evaluated"} and len(policies) > 5
    assert len(at.get("plotly_chart")) >= 1
    at.text_input[0].input("fairer on age")
    next(b for b in at.button if b.label == "Request promotion").click()
    at.run()
    assert not at.exception
    tags = retrain_ctx.registry.version("credit-risk", fair.model_version).tags
    assert tags["vigil.promotion.status"] == "requested" and tags["vigil.promotion.note"] == "fairer on age"
    assert "Promotion requested by dana" in texts(at)


def test_clicking_retrain_runs_a_job_and_shows_it(retrain_ctx: Context):
    at = page()
    at.number_input[0].set_value(TRAIN_ROWS)
    next(b for b in at.button if b.label == "Retrain").click()
    at.run()
    assert not at.exception
    started = [s.value for s in at.success if "started" in s.value]
    assert started, texts(at)
    job_id = started[0].split()[1].rstrip(".")
    done = jobs.wait(retrain_ctx, job_id, timeout_s=600)
    assert done.state == "succeeded", jobs.tail_log(done)
    at = page()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "state" in df.value.columns)
    assert table.iloc[0]["id"] == job_id and table.iloc[0]["state"] == "succeeded"
    assert any("VIGIL_RESULT" in c.value for c in at.code)
    assert f"v{done.model_version}" in texts(at)  # the comparison of the new candidate


def test_a_second_retrain_while_one_runs_is_refused_on_the_page(retrain_ws: Path):
    path = retrain_ws / "vigil.toml"
    script = retrain_ws / "slow.py"
    script.write_text("import time\nprint('training', flush=True)\ntime.sleep(600)\n")
    path.write_text(path.read_text().replace('training_command = "python -m dashboard.demo.train"',
                                             f'training_command = "python {script}"'))
    at = page()
    next(b for b in at.button if b.label == "Retrain").click()
    at.run()
    assert any("started" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Retrain").click()
    at.run()
    assert any("already" in e.value for e in at.error)
    cancel = next(b for b in at.button if b.label == "Cancel")
    cancel.click()
    at.run()
    assert not at.exception
    ctx = Context(load_settings(path))
    assert [j.state for j in jobs.list_jobs(ctx)] == ["cancelled"]


def test_an_annotator_cannot_start_a_retrain(retrain_ctx: Context):
    at = page(role="annotator", name="ann")
    next(b for b in at.button if b.label == "Retrain").click()
    at.run()
    assert not at.exception
    assert any("may not retrain.start" in e.value.replace("\\", "") for e in at.error)  # markdown-escaped
    assert jobs.list_jobs(retrain_ctx) == []


def test_chart_builders_take_frames():
    import pandas as pd

    comp = pd.DataFrame({"dataset": ["holdout", "holdout", "production", "holdout"],
                         "metric": ["accuracy", "disparate_impact_sex", "accuracy", "latency_ms_per_1k"],
                         "champion": [0.8, 1.0, 0.7, 2.0], "candidate": [0.82, 0.9, 0.72, 2.5],
                         "delta": [0.02, -0.1, 0.02, 0.5]})
    fig = comparison_figure(comp)
    assert {t.name for t in fig.data} == {"champion", "candidate"} and len(fig.data) == 4
    assert list(fig.data[1].x) == ["accuracy", "DI sex"]
    assert list(latency_figure(comp).data[1].y) == [2.5]
    runs = pd.DataFrame({"id": ["a", "b"], "state": ["succeeded", "failed"], "duration_s": [10.0, 3.0]})
    assert [t.name for t in jobs_duration_figure(runs).data] == ["succeeded", "failed"]
