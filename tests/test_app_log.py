"""The app's own log stays readable: opening every page in Chromium logs no deprecation warning (Streamlit
logs one per deprecated argument per rerun, about 110 in 40 minutes of use, which buried real warnings).

Streamlit's own deprecation messages never say "deprecated": they read "Please replace `use_container_width`
with `width`. ... will be removed after 2025-12-31", so the test looks for those words as well.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from dashboard.access.users import DEMO_USERS
from dashboard.ui.nav import PAGES
from tests.fixtures.app import AppServer
from tests.test_browser import assert_no_exception, go_to, sign_in

REPO = Path(__file__).resolve().parents[1]
DEPRECATION = re.compile(r"deprecat|will be removed|please replace", re.IGNORECASE)


def test_no_source_passes_use_container_width() -> None:
    """The branches a browser visit does not reach (a button's, an error's) log it too when they run."""
    sources = [path for folder in ("pages", "dashboard") for path in sorted((REPO / folder).rglob("*.py"))]
    found = [f"{path.relative_to(REPO)}:{n}" for path in sources
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "use_container_width" in line]
    assert found == [], "use width='stretch' (or 'content') instead: " + ", ".join(found)


@pytest.mark.browser
def test_no_page_logs_a_deprecation_warning(app_server: AppServer, chromium) -> None:
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
    assert not deprecated, "\n".join(deprecated[:20])
