"""Retraining to promotion in Chromium: a scientist clicks Retrain, watches the job finish live, sees the
candidate-vs-champion comparison on out-of-time rows and requests promotion; a manager sees the request
and its note and promotes the candidate without an override; the champion alias moves in MLflow.

It runs its own app server over a copy of the demo workspace, since a retrain changes the registry
(a new version, the challenger alias) that other browser tests read from the shared workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.access.users import DEMO_USERS
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.governance import promotion
from dashboard.lifecycle import jobs
from dashboard.settings import load_settings
from tests.fixtures.app import AppServer, app_env
from tests.test_browser import assert_no_exception, go_to, sign_in, wait_idle

pytestmark = pytest.mark.browser
JOB_TIMEOUT_MS = 420_000  # a real training run on a shared machine; nothing asserts on time


def _job_logs(workspace: Path, app_log: Path) -> str:
    """The job logs and the app log's tail, for a failure message that says where the job stopped."""
    parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((workspace / "jobs").glob("*.log"))]
    parts.append(f"--- app log\n{app_log.read_text(errors='replace')[-3000:]}" if app_log.exists() else "no app log")
    return "\n".join(parts)


def test_retrain_request_and_promote_without_an_override(demo_workspace: Path, tmp_path: Path, chromium):
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
        try:
            page.get_by_text(re.compile(r"registered as challenger; gate (pass|fail)")).first.wait_for(
                timeout=JOB_TIMEOUT_MS)
        except PlaywrightTimeout:
            pytest.fail("the job panel never showed the job's end:\n" + _job_logs(workspace, tmp_path / "app.log"))
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
        tags = ctx.registry.version("credit-risk", done.model_version).tags
        assert tags["vigil.trained_by"] == "scientist" and tags["vigil.data.disjoint"] == "true"
        assert "passes the gate" in verdict.inner_text(), verdict.inner_text()
        # The comparison says which rows: the out-of-time range, and that none of them was trained on.
        page.get_by_text("No evaluation row was a training row of the candidate", exact=False).wait_for()

        page.get_by_label("Note for the approver").fill("better on October's traffic")
        page.get_by_role("button", name="Request promotion").click()
        page.get_by_text(re.compile(r"Promotion requested by scientist")).first.wait_for(timeout=90_000)
        assert promotion.open_request(ctx, "credit-risk", done.model_version) is not None
        page = _as_manager_promote(chromium, server, page, context, done.model_version, tmp_path)

        assert ctx.registry.version_by_alias("credit-risk", "champion").version == done.model_version
        closed = promotion.requests(ctx, "credit-risk")[0]
        assert (closed.state, closed.decided_by, closed.version) == ("approved", "manager", done.model_version)
        tags = ctx.registry.version("credit-risk", done.model_version).tags
        assert tags["vigil.approval.override"] == "false" and tags["vigil.promotion.status"] == "approved"
        actions = set(trail.entries(ctx.store, target="credit-risk")["action"])
        assert {"retrain.start", "promotion.request", "model.promote", "card.seed"} <= actions
        assert "policy.override" not in actions
        assert trail.verify(ctx.store).ok
    except Exception:
        if not page.is_closed():
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        page.context.close()
        server.stop()


def _as_manager_promote(chromium, server: AppServer, page, context, version: str, tmp_path: Path):
    """Sign in as the manager in a new browser session; promote ``version`` with no justification."""
    context.close()
    manager = chromium.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    try:
        _promote(manager, server, version)
    except Exception:
        manager.screenshot(path=str(tmp_path / "failure-manager.png"), full_page=True)
        raise
    return manager


def _promote(manager, server: AppServer, version: str) -> None:
    sign_in(manager, server, "manager", DEMO_USERS["manager"][1])
    go_to(manager, "Compliance")
    manager.get_by_role("tab", name="Approvals").click()
    manager.get_by_text(f"Promotion of version {version} requested", exact=False).first.wait_for(timeout=90_000)
    assert manager.get_by_text("better on October's traffic", exact=False).count() >= 1  # the requester's note
    form = manager.get_by_test_id("stForm").filter(has_text="Promote a candidate")
    form.get_by_role("textbox", name="Decision note").fill("out-of-time evidence holds")
    form.get_by_role("button", name="Promote to champion").click()
    manager.get_by_text(f"Version {version} is now the champion.", exact=True).wait_for(timeout=90_000)
    assert_no_exception(manager, "Compliance after promotion")
