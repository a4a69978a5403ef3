"""Sessions in Chromium, against a private copy of the demo workspace (the tests change its users file):
a reload keeps the sign-in, a removed user is signed out on the next click and cannot act, a role change
applies at once, and the lockout holds across reloads."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.access import lockout, users
from dashboard.access.roles import Actor
from dashboard.access.users import DEMO_USERS
from dashboard.context import Context
from dashboard.lifecycle import jobs
from dashboard.settings import load_settings
from tests.fixtures.app import AppServer, app_env
from tests.test_browser import assert_no_exception, go_to, sidebar_titles, sign_in, wait_idle

pytestmark = pytest.mark.browser
ADMIN = Actor("test-admin", "admin")


@pytest.fixture(scope="module")
def private(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, AppServer]]:
    workspace = tmp_path_factory.mktemp("sessions") / "ws"
    shutil.copytree(demo_workspace, workspace)
    with _ctx(workspace).store.connect() as con:  # failed sign-ins of earlier tests from this address
        con.execute("DROP TABLE IF EXISTS signin_failures")
    server = AppServer(app_env(workspace), workspace.parent / "app.log")
    try:
        yield workspace, server
    finally:
        server.stop()


def _ctx(workspace: Path) -> Context:
    return Context(load_settings(workspace / "vigil.toml", env={}))


def test_a_reload_and_a_typed_url_keep_the_sign_in(private: tuple[Path, AppServer], chromium) -> None:
    _, server = private
    context = chromium.new_context()
    page = context.new_page()
    try:
        sign_in(page, server, "manager", DEMO_USERS["manager"][1])
        page.wait_for_function("() => document.cookie.includes('vigil_session=')", timeout=60_000)
        page.reload()
        page.get_by_test_id("stSidebarNav").wait_for(timeout=90_000)
        wait_idle(page)
        assert page.get_by_role("textbox", name="Password").count() == 0
        page.goto(f"{server.url}/compliance")  # typed: a new browser session of the app
        page.get_by_role("heading", name="Compliance").first.wait_for(timeout=90_000)
        assert_no_exception(page, "Compliance by URL")
        # Signing out ends the session for good: a reload shows the sign-in form again.
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("textbox", name="Username").wait_for(timeout=60_000)
        page.reload()
        page.get_by_role("textbox", name="Username").wait_for(timeout=90_000)
        assert page.get_by_test_id("stSidebarNav").count() == 0
    finally:
        context.close()


def test_a_removed_user_is_signed_out_on_the_next_click(private: tuple[Path, AppServer], chromium) -> None:
    workspace, server = private
    ctx = _ctx(workspace)
    users.add_user(ctx.settings.users_file, ADMIN, "temp-scientist", "data_scientist", "temp-scientist-pw")
    context = chromium.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    try:
        sign_in(page, server, "temp-scientist", "temp-scientist-pw")
        go_to(page, "Retraining")
        users.remove_user(ctx.settings.users_file, ADMIN, "temp-scientist")
        before = len(jobs.list_jobs(ctx, "credit-risk", recover_dead=False))
        page.get_by_role("button", name="Retrain").click()
        page.get_by_text("no longer exists", exact=False).first.wait_for(timeout=90_000)
        page.get_by_role("textbox", name="Username").wait_for(timeout=60_000)
        assert len(jobs.list_jobs(ctx, "credit-risk", recover_dead=False)) == before  # nothing was started
        page.reload()
        page.get_by_role("textbox", name="Username").wait_for(timeout=90_000)  # the cookie is dead too
    finally:
        context.close()


def test_a_role_change_applies_on_the_next_click(private: tuple[Path, AppServer], chromium) -> None:
    workspace, server = private
    ctx = _ctx(workspace)
    users.add_user(ctx.settings.users_file, ADMIN, "temp-changing", "data_scientist", "temp-changing-pw")
    context = chromium.new_context()
    page = context.new_page()
    try:
        sign_in(page, server, "temp-changing", "temp-changing-pw")
        assert "Retraining" in sidebar_titles(page)
        users.set_role(ctx.settings.users_file, ADMIN, "temp-changing", "annotator")
        go_to(page, "Overview")
        page.get_by_text("Your role changed to annotator", exact=False).first.wait_for(timeout=60_000)
        assert "Retraining" not in sidebar_titles(page)
    finally:
        context.close()


def test_the_lockout_holds_across_reloads(private: tuple[Path, AppServer], chromium) -> None:
    workspace, server = private
    ctx = _ctx(workspace)
    users.add_user(ctx.settings.users_file, ADMIN, "temp-locked", "manager", "temp-locked-pw")
    context = chromium.new_context()
    page = context.new_page()
    try:
        for _ in range(lockout.MAX_FAILURES):
            page.goto(server.url)  # a fresh browser session each time: the count is not in the session
            page.get_by_role("textbox", name="Username").fill("temp-locked", timeout=90_000)
            page.get_by_role("textbox", name="Password").fill("wrong-guess")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Wrong user name or password").first.wait_for(timeout=60_000)
        page.reload()
        page.get_by_role("textbox", name="Username").fill("temp-locked", timeout=90_000)
        page.get_by_role("textbox", name="Password").fill("temp-locked-pw")  # the right password, too late
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Too many failed sign-ins", exact=False).first.wait_for(timeout=60_000)
        assert page.get_by_test_id("stSidebarNav").count() == 0
    finally:
        context.close()
        with ctx.store.connect() as con:  # other tests of this module sign in from the same address
            con.execute("DELETE FROM signin_failures")
