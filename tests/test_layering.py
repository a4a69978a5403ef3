"""The dependency direction pages -> dashboard -> connectors, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STREAMLIT_ALLOWED = {REPO / "dashboard" / "app.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def python_files(folder: str) -> list[Path]:
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return files


def test_connectors_import_neither_streamlit_nor_the_app():
    for path in python_files("connectors"):
        bad = imports(path) & {"streamlit", "dashboard", "pages"}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_only_app_ui_and_pages_import_streamlit():
    for path in python_files("dashboard"):
        if path in STREAMLIT_ALLOWED or (REPO / "dashboard" / "ui") in path.parents:
            continue
        assert "streamlit" not in imports(path), f"{path.relative_to(REPO)} imports streamlit"


def test_dashboard_never_imports_pages():
    for path in python_files("dashboard"):
        assert "pages" not in imports(path), f"{path.relative_to(REPO)} imports pages"


def test_every_page_is_registered_in_navigation():
    from dashboard.ui.nav import PAGES

    registered = {p.file for p in PAGES}
    on_disk = {p.name for p in (REPO / "pages").glob("*.py") if p.name != "__init__.py"}
    assert on_disk == registered
