"""The app's own log stays readable: no source passes a deprecated argument (Streamlit logs one warning per
deprecated argument per rerun, about 110 in 40 minutes of use, which buried real warnings). The browser
test that opens every page (tests/test_browser.py) reads the app's log for them as well.

Streamlit's own deprecation messages never say "deprecated": they read "Please replace `use_container_width`
with `width`. ... will be removed after 2025-12-31", so :data:`DEPRECATION` looks for those words as well.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPRECATION = re.compile(r"deprecat|will be removed|please replace", re.IGNORECASE)


def test_no_source_passes_use_container_width() -> None:
    """The branches a browser visit does not reach (a button's, an error's) log it too when they run."""
    sources = [path for folder in ("pages", "dashboard") for path in sorted((REPO / folder).rglob("*.py"))]
    found = [f"{path.relative_to(REPO)}:{n}" for path in sources
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "use_container_width" in line]
    assert found == [], "use width='stretch' (or 'content') instead: " + ", ".join(found)
