"""Retraining in Chromium: click Retrain, watch the job finish live, and see the candidate-vs-champion comparison.

It runs its own app server over a copy of the demo workspace, since a retrain changes the registry
(a new version, the challenger alias) that other browser tests read from the shared workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dashboard.access.users import DEMO_USERS
from dashboard.context import Context
from dashboard.lifecycle import jobs
from dashboard.settings import load_settings
from tests.fixtures.app import AppServer, app_env
from tests.test_browser import assert_no_exception, go_to, sign_in, wait_idle

pytestmark = pytest.mark.browser
JOB_TIMEOUT_MS = 600_000  # a real training run on a shared machine; nothing asserts on time


def test_click_retrain_follow_the_job_and_see_the_comparison(demo_workspace: Path, tmp_path: Path, chromium):
    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    server = AppServer(app_env(workspace), tmp_path / "app.log")
    context = chromium.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    try:
        sign_in(page, server, "scientist", DEMO_USERS["scientist"][1])
        go_to(page, "Retraining")
        assert_no_exception(page, "Retraining")
        page.get_by_text("Advanced").click()
        rows = page.get_by_label("Synthetic training rows", exact=False)
        rows.fill("2000")
        rows.press("Enter")
        page.get_by_role("button", name="Retrain").click()
        # Live: the panel shows the job queued or running, then (polling by itself) its end.
        page.get_by_text(re.compile(r"Job \w+: (queued|running)")).first.wait_for(timeout=90_000)
        # The job panel polls by itself: the state turns to succeeded without any click.
        page.get_by_text(re.compile(r"registered as challenger; gate (pass|fail)")).first.wait_for(
            timeout=JOB_TIMEOUT_MS)
        wait_idle(page)
        assert_no_exception(page, "Retraining after the job")
        assert page.get_by_text("VIGIL_RESULT", exact=False).count() >= 1  # the live log tail
        verdict = page.get_by_text(re.compile(r"v\d+ (passes|fails) the gate")).first
        verdict.wait_for(timeout=90_000)
        verdict.scroll_into_view_if_needed()
        # Plotly's bundle loads lazily: the chart appears some time after the verdict's text.
        page.locator(".js-plotly-plot").first.wait_for(timeout=90_000)  # the comparison chart
        page.locator("[data-testid='stDataFrame'], [data-testid='stTable']").first.wait_for(
            timeout=90_000)  # the comparison table
        ctx = Context(load_settings(workspace / "vigil.toml", env={}))
        done = jobs.list_jobs(ctx, "credit-risk")[0]
        assert done.state == "succeeded" and done.model_version
        assert f"v{done.model_version}" in verdict.inner_text()
        assert ctx.registry.version_by_alias("credit-risk", "challenger").version == done.model_version
        lineage = ctx.registry.lineage("credit-risk", done.model_version)
        assert any(d.context == "training" and d.digest for d in lineage.datasets)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        context.close()
        server.stop()
