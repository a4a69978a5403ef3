"""The real app in Chromium against a Spark-backed model (logs read in place from Parquet by a local Spark):
Drift, Fairness and Operations render and show the numbers the DuckDB engine gives on the same data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.windows import parse_window
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.fairness import compute_fairness
from dashboard.monitoring.operations import compute_operations
from tests.fixtures.access import PASSWORD, ensure_user
from tests.fixtures.app import AppServer, app_env
from tests.fixtures.spark import Twins
from tests.test_browser import assert_no_exception, wait_idle
from tests.test_spark_cli import write_config

pytestmark = pytest.mark.browser
#: Spark's first jobs in a fresh app process (JVM start, Parquet listing) take a while on 2 cores.
SLOW_MS = 300_000


@pytest.fixture(scope="module")
def spark_app(twins: Twins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    workspace = tmp_path_factory.mktemp("spark-app")
    lake = Path(twins.duck.settings.data_dir).parent / "lake"  # build_twins writes the lake beside DuckDB's data
    write_config(workspace / "vigil.toml", workspace / "data", "spark", lake)
    ensure_user(workspace / "data" / "users.toml", "ana", "data_scientist")
    server = AppServer(app_env(workspace), workspace / "streamlit.log")
    try:
        yield server
    finally:
        server.stop()


def _sign_in_on_drift(page, server: AppServer, name: str) -> None:
    """Sign in on the Drift page (the first page a session opens computes; Drift is one this test visits),
    waiting as long as Spark's first jobs take."""
    page.goto(f"{server.url}/drift")
    page.get_by_role("textbox", name="Username").fill(name, timeout=SLOW_MS)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("stSidebarNav").wait_for(timeout=SLOW_MS)
    wait_idle(page, SLOW_MS)


def _visit(page, title: str) -> str:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=False).first.wait_for(timeout=SLOW_MS)
    wait_idle(page, SLOW_MS)
    assert_no_exception(page, title)
    text: str = page.locator('[data-testid="stMain"]').inner_text()
    return text


def test_drift_fairness_and_operations_on_a_spark_model(spark_app: AppServer, chromium, twins: Twins) -> None:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        _sign_in_on_drift(page, spark_app, "ana")
        drift = _visit(page, "Drift")
        fairness = _visit(page, "Fairness")
        operations = _visit(page, "Operations")
    finally:
        context.close()
    # What each page shows by default equals the DuckDB engine's result on the same rows.
    whole = parse_window("2026-03-01..2026-03-06")  # the pages' default windows hold every day of these logs
    reference = parse_window("2026-03-01..2026-03-02")  # the configured reference: no MLflow model is needed
    d = compute_drift(twins.duck, "m", whole, reference)
    assert f"Reference: window {reference.label}" in drift
    assert f"Drifted columns\n\n{d.n_drifted} / {d.n_judged}" in drift
    assert f"Reference rows\n\n{d.n_reference:,}" in drift and f"Current rows\n\n{d.n_current:,}" in drift
    f = compute_fairness(twins.duck, "m", whole)
    sex = f.attribute("sex")
    assert f"Predictions (status ok)\n\n{f.n_rows:,}" in fairness and f"Labelled rows\n\n{f.n_labelled:,}" in fairness
    assert f"Lowest selection rate\n\n{sex.worst_group}" in fairness
    assert f"Privileged: m ({sex.n_privileged} rows); unprivileged: f ({sex.n_unprivileged} rows)" in fairness
    ops = compute_operations(twins.duck, "m", whole, bucket="hour")
    assert f"Predictions\n\n{ops.requests:,}" in operations
    for name, value in (("p50", ops.latency_p50_ms), ("p95", ops.latency_p95_ms), ("p99", ops.latency_p99_ms)):
        assert value is not None and f"{name} latency\n\n{value:,.0f} ms" in operations, name
    log = spark_app.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
