"""The demo's data-quality incident on the Data quality page (AppTest and one Chromium visit), over time
from the right day on the right columns, failing its warning policies; the demo's GX evidence imported."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from connectors.windows import Window
from dashboard.access.users import DEMO_USERS
from dashboard.context import Context
from dashboard.demo.scenario import DemoScenario
from dashboard.governance import gx_results
from dashboard.governance.policy import evaluate
from dashboard.monitoring.data_quality import data_quality_over_time
from tests.conftest import REPO
from tests.fixtures.app import AppServer
from tests.test_browser import assert_no_exception, go_to, sign_in


def test_the_incident_fails_from_its_day_on_its_columns_only(demo_ctx: Context, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    over = data_quality_over_time(demo_ctx, s.model, Window(s.start, s.end), bucket="day")
    failing = over[over["status"] == "fail"]
    null_col, (new_col, category) = s.quality_null_feature, s.quality_new_category
    monitors = failing[failing["check"].isin(["missing", "unseen", "type_violations"])]
    assert set(zip(monitors["column"], monitors["check"], strict=True)) == {(null_col, "missing"), (new_col, "unseen")}
    for column, check in ((null_col, "missing"), (new_col, "unseen")):
        cells = over[(over["column"] == column) & (over["check"] == check)]
        assert set(cells.loc[cells["status"] == "fail", "bucket"]) == set(cells.loc[cells["bucket"] >= s.quality_start,
                                                                                   "bucket"])
        assert set(cells.loc[cells["bucket"] < s.quality_start, "status"]) == {"pass"}
    missing = over[(over["column"] == null_col) & (over["check"] == "missing") & (over["bucket"] >= s.quality_start)]
    assert missing["value"].between(0.18, 0.32).all()  # 25% dropped, per day of a few hundred rows

    ev = evaluate(demo_ctx, s.model)
    by = {r.name: r for r in ev.results}
    assert by[f"inputs_complete[{null_col}]"].verdict == "fail"
    assert by[f"no_unseen_categories[{new_col}]"].verdict == "fail"
    assert by[f"inputs_complete[{null_col}]"].severity == "warning"
    assert all(r.verdict == "pass" for n, r in by.items() if n.startswith("inputs_complete[") and null_col not in n)
    assert by[f"training_data_validated[{s.gx_suite}]"].verdict == "pass"  # GX ran on the training data
    runs = gx_results.runs(demo_ctx, s.model)
    assert list(runs["suite"]) == [s.gx_suite] and bool(runs.iloc[0]["success"])
    assert category not in {o.expectation_type for o in gx_results.load_run(demo_ctx, runs.iloc[0]["id"]).outcomes}


def test_the_page_shows_the_incident_examples_heatmap_and_gx_runs(demo_ctx: Context,
                                                                   demo_scenario: DemoScenario) -> None:
    at = AppTest.from_file(str(REPO / "pages" / "9_data_quality.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    fails = set(zip(table.loc[table["status"] == "fail", "column"], table.loc[table["status"] == "fail", "check"],
                    strict=True))
    assert {(demo_scenario.quality_null_feature, "missing"), (demo_scenario.quality_new_category[0], "unseen")} <= fails
    unseen = table[(table["column"] == "purpose") & (table["check"] == "unseen")].iloc[0]
    assert unseen["examples"].startswith(demo_scenario.quality_new_category[1])
    assert any("Failing" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1
    checks = at.dataframe[1].value  # the ingest checks over the whole table: an ingested table passes them
    assert set(checks["check"]) >= {"missing_columns", "duplicate_ids"} and (checks["failing"] == 0).all()
    runs = at.dataframe[2].value
    assert list(runs["suite"]) == [demo_scenario.gx_suite]
    outcomes = at.dataframe[3].value
    assert outcomes["success"].all() and len(outcomes) == 14
    at.selectbox(key="dq_column").set_value("purpose").run()
    assert set(at.dataframe[0].value["column"]) == {"purpose"}


@pytest.mark.browser
def test_a_browser_visit_shows_the_page(app_server: AppServer, chromium) -> None:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        sign_in(page, app_server, "manager", DEMO_USERS["manager"][1])
        go_to(page, "Data quality")
        assert_no_exception(page, "Data quality")
        page.get_by_text("Great Expectations runs", exact=True).wait_for(timeout=90_000)
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=90_000)
        warning = page.get_by_text("Failing:", exact=False).first.inner_text()
        assert "debt_to_income: missing" in warning and "purpose: unseen" in warning
    finally:
        context.close()
