"""The real app in Debian's Chromium: every page renders without an exception, and the CLI can ingest
while the app is serving pages (the DuckDB file-sharing scheme)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connectors.store_owner import owner_pid
from dashboard.access.users import DEMO_USERS
from dashboard.ui.nav import PAGES
from tests.conftest import make_logs
from tests.fixtures.access import token_for
from tests.fixtures.app import AppServer, app_env
from tests.test_app_log import DEPRECATION

pytestmark = pytest.mark.browser


def wait_idle(page, timeout_ms: int = 90_000) -> None:
    """Wait until Streamlit has finished running the page script."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => { const s = document.querySelector('[data-testid=\"stApp\"]');"
        " return s && s.getAttribute('data-test-script-state') !== 'running'"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]'); }", timeout=timeout_ms)


def assert_no_exception(page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where}: {exceptions.first.inner_text()}"
    assert "Traceback" not in page.content(), f"{where} shows a traceback"


def sign_in(page, server: AppServer, name: str, password: str, url_path: str = "") -> None:
    """Open ``url_path`` (a fresh browser session starts signed out) and sign in with the form."""
    page.goto(f"{server.url}/{url_path}")
    page.get_by_role("textbox", name="Username").fill(name, timeout=90_000)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("stSidebarNav").wait_for(timeout=90_000)
    wait_idle(page)


def go_to(page, title: str) -> None:
    """Navigate as a user does: click the page in the sidebar (keeps the signed-in session)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=False).first.wait_for(timeout=90_000)
    wait_idle(page)


def sidebar_titles(page) -> list[str]:
    # Each link's text is the icon's ligature name, then the title.
    return [t.strip().splitlines()[-1] for t in page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()]


def test_every_page_renders_without_an_exception(app_server: AppServer, chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        sign_in(page, app_server, "admin", DEMO_USERS["admin"][1])
        for spec in PAGES:
            go_to(page, spec.title)
            assert_no_exception(page, spec.title)
    finally:
        context.close()
    time.sleep(1)  # the server may write its last lines after the page has settled
    log = app_server.log.read_text(encoding="utf-8", errors="replace")
    deprecated = [line for line in log.splitlines() if DEPRECATION.search(line)]
    assert not deprecated, "the app logs deprecation warnings:\n" + "\n".join(deprecated[:20])


@pytest.mark.parametrize("url_path,title", [("retraining", "Retraining"), ("compliance", "Compliance"),
                                            ("drift", "Drift")])
def test_an_annotator_cannot_reach_other_pages_even_by_url(app_server: AppServer, chromium, url_path, title):
    context = chromium.new_context()
    page = context.new_page()
    try:
        sign_in(page, app_server, "annotator", DEMO_USERS["annotator"][1], url_path=url_path)
        page.get_by_text(f"{title} is not available to the annotator role", exact=False).first.wait_for(
            timeout=60_000)  # said, not a silent landing elsewhere
        assert title not in " ".join(sidebar_titles(page))
        assert page.get_by_role("heading", name=title, exact=True).count() == 0
        assert set(sidebar_titles(page)) == {p.title for p in PAGES if "annotator" in p.roles}
    finally:
        context.close()


def test_a_wrong_password_is_refused(app_server: AppServer, chromium):
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.get_by_role("textbox", name="Username").fill("manager", timeout=90_000)
        page.get_by_role("textbox", name="Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("stAlert").first.wait_for(timeout=60_000)
        assert page.get_by_test_id("stSidebarNav").count() == 0
        assert_no_exception(page, "sign-in")
    finally:
        context.close()


def overview_predictions(page) -> int:
    metric = page.locator('[data-testid="stMetric"]', has_text="Predictions").first
    value = metric.locator('[data-testid="stMetricValue"]').inner_text()
    return int(re.sub(r"[^0-9]", "", value))


def test_cli_ingests_while_the_app_serves_pages(demo_workspace: Path, tmp_path: Path, chromium):
    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    server = AppServer(app_env(workspace), tmp_path / "app.log")
    context = chromium.new_context()
    page = context.new_page()
    try:
        sign_in(page, server, "admin", DEMO_USERS["admin"][1])
        before = overview_predictions(page)
        # The app's server owns the store, so the CLI's ingest runs inside it instead of waiting for the file.
        assert owner_pid(workspace / "vigil.duckdb") == server.proc.pid
        new_logs = make_logs(3000, seed=11, start="2026-10-20", id_prefix="concurrent-")
        path = tmp_path / "new.parquet"
        new_logs.to_parquet(path, index=False)
        cmd = [str(Path(sys.executable).parent / "vigil"), "ingest", "--model", "credit-risk", str(path)]
        token = token_for(workspace / "users.toml", "ops", "data_scientist")
        result: dict[str, subprocess.CompletedProcess[str]] = {}
        worker = threading.Thread(target=lambda: result.setdefault(
            "r", subprocess.run(cmd, env=app_env(workspace, VIGIL_TOKEN=token), capture_output=True, text=True,
                                timeout=300)))
        worker.start()
        while worker.is_alive():  # keep the app busy reading the same file meanwhile
            go_to(page, "Models")
            go_to(page, "Overview")
            assert_no_exception(page, "Overview during ingest")
        worker.join()
        assert result["r"].returncode == 0, result["r"].stderr
        assert "3,000 rows" in result["r"].stdout
        go_to(page, "Models")
        go_to(page, "Overview")
        assert overview_predictions(page) == before + 3000
    finally:
        context.close()
        server.stop()
