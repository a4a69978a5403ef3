"""The architecture as a test: layers, one-directional imports, no circles (read from the source, AST).

Layers, top to bottom (a module may import its own layer or any layer below it, never one above):

    front doors   dashboard.app, dashboard.ui, pages   |   dashboard.cli, dashboard.commands,
                  dashboard.service, dashboard.demo     (the two doors do not import each other)
    alerting      alerts from failing checks, acknowledgement, notification delivery
    governance    policies, cards, promotion, approvals, reports
    lifecycle     registry view, jobs, retrain rules, gate, mitigation
    learning      selection, annotation queue
    monitoring    ingestion, drift, fairness, operations, quality
    access        roles, users
    audit         the hash-chained trail
    charts        plotly builders (no Streamlit)
    ground        dashboard.settings, dashboard.context, dashboard.errors, dashboard.progress
    connectors    one adapter per outside system

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import is
still a dependency, and circles hide there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (layer name, module prefixes); the list is ordered from the bottom up.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("connectors", ("connectors",)),
    ("ground", ("dashboard.settings", "dashboard.context", "dashboard.errors", "dashboard.progress")),
    ("charts", ("dashboard.charts",)),
    ("audit", ("dashboard.audit",)),
    ("access", ("dashboard.access",)),
    ("monitoring", ("dashboard.monitoring",)),
    ("learning", ("dashboard.learning",)),
    ("lifecycle", ("dashboard.lifecycle",)),
    ("governance", ("dashboard.governance",)),
    ("alerting", ("dashboard.alerting",)),
    ("front", ("dashboard.app", "dashboard.ui", "pages", "dashboard.cli", "dashboard.commands",
               "dashboard.service", "dashboard.demo")),
)
APP_DOOR = ("dashboard.app", "dashboard.ui", "pages")
CLI_DOOR = ("dashboard.cli", "dashboard.commands", "dashboard.service", "dashboard.demo")
STREAMLIT_ALLOWED = APP_DOOR
TOP_LEVEL_ALLOWED = {"__init__.py", "app.py", "cli.py", "settings.py", "context.py", "errors.py", "progress.py"}


def _matches(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> int | None:
    """Rank of the module's layer (0 = bottom), ``None`` for the bare ``dashboard`` package."""
    for rank, (_, prefixes) in enumerate(LAYERS):
        if _matches(module, prefixes):
            return rank
    return None


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module named by an import statement anywhere in ``source`` (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from pkg import name`` imports the submodule ``pkg.name`` when it is one, else ``pkg``;
            # which one is decided against the project's modules (``|`` separates the choices).
            found |= {f"{target}.{a.name}|{target}" for a in node.names}
    return found


def _resolve(name: str, known: Mapping[str, object]) -> str:
    first, _, fallback = name.partition("|")
    return first if first in known or not fallback else fallback


@dataclass(frozen=True)
class Source:
    module: str
    imports: frozenset[str]


def project_sources(root: Path = REPO) -> dict[str, Source]:
    out: dict[str, Source] = {}
    for folder in ("dashboard", "connectors", "pages"):
        files = sorted((root / folder).rglob("*.py"))
        assert files, f"no Python files under {folder}"
        for path in files:
            name = module_name(path, root)
            out[name] = Source(name, frozenset(imports_of(path.read_text(), name, path.name == "__init__.py")))
    return out


def internal_graph(sources: Mapping[str, Source]) -> dict[str, set[str]]:
    """module -> the project modules it imports (only names that are modules of the project)."""
    return {m: {r for i in s.imports if (r := _resolve(i, sources)) in sources and r != m}
            for m, s in sources.items()}


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def backwards_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Imports that go up the layer order, or from one front door into the other."""
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is None or theirs is None:
                continue
            if theirs > mine:
                bad.append(f"{module} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
            elif (_matches(module, APP_DOOR) and _matches(target, CLI_DOOR)) or (
                    _matches(module, CLI_DOOR) and _matches(target, APP_DOOR)):
                bad.append(f"{module} imports {target}: the app and the CLI are separate front doors")
    return bad


def streamlit_outside_the_app(sources: Mapping[str, Source]) -> list[str]:
    return sorted(m for m, s in sources.items()
                  if not _matches(m, STREAMLIT_ALLOWED)
                  and any(_matches(_resolve(i, sources), ("streamlit",)) for i in s.imports))


# ------------------------------------------------------------------------------------------ the rules

@pytest.fixture(scope="module")
def sources() -> dict[str, Source]:
    return project_sources()


def test_every_module_belongs_to_a_layer(sources: dict[str, Source]) -> None:
    unplaced = [m for m in sources if layer_of(m) is None and m != "dashboard"]
    assert not unplaced, f"modules outside every layer (add them to a domain package): {unplaced}"


def test_only_entries_and_shared_ground_sit_directly_in_dashboard() -> None:
    loose = sorted(p.name for p in (REPO / "dashboard").glob("*.py") if p.name not in TOP_LEVEL_ALLOWED)
    assert not loose, f"modules directly under dashboard/ belong in a domain package: {loose}"


def test_every_domain_package_says_what_it_owns_and_may_import() -> None:
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            folder = REPO / Path(*prefix.split("."))
            if not folder.is_dir() or prefix in ("connectors", "pages"):
                continue
            doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
            assert doc, f"{prefix}/__init__.py needs a docstring ({name})"
            if name not in ("front",):
                assert "May import" in doc, f"{prefix}/__init__.py should say what it may import"


def test_no_import_circles(sources: dict[str, Source]) -> None:
    assert circles(internal_graph(sources)) == []


def test_imports_go_down_the_layers(sources: dict[str, Source]) -> None:
    assert backwards_imports(internal_graph(sources)) == []


def test_connectors_import_neither_streamlit_nor_the_app(sources: dict[str, Source]) -> None:
    for module, source in sources.items():
        if _matches(module, ("connectors",)):
            bad = {r for i in source.imports if _matches(r := _resolve(i, sources), ("streamlit", "dashboard", "pages"))}
            assert not bad, f"{module} imports {bad}"


def test_only_the_app_door_imports_streamlit(sources: dict[str, Source]) -> None:
    assert streamlit_outside_the_app(sources) == []


def test_every_page_is_registered_in_navigation() -> None:
    from dashboard.ui.nav import PAGES

    registered = {p.file for p in PAGES}
    on_disk = {p.name for p in (REPO / "pages").glob("*.py") if p.name != "__init__.py"}
    assert on_disk == registered


# ----------------------------------------------------------------- the checker catches what it should

def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Source]:
    for rel, text in {**files, "connectors/__init__.py": "", "pages/__init__.py": "",
                      "dashboard/__init__.py": ""}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project_sources(tmp_path)


def test_checker_finds_a_circle_through_a_lazy_import(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "dashboard/lifecycle/__init__.py": "",
        "dashboard/lifecycle/gate.py": "def f():\n    from dashboard.lifecycle import jobs\n",
        "dashboard/lifecycle/jobs.py": "from dashboard.lifecycle.gate import f\n",
    })
    assert circles(internal_graph(src)) == [["dashboard.lifecycle.gate", "dashboard.lifecycle.jobs"]]


def test_checker_finds_a_backwards_import(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "dashboard/monitoring/__init__.py": "",
        "dashboard/monitoring/drift.py": "from . import x\nfrom ..lifecycle import jobs\n",
        "dashboard/monitoring/x.py": "",
        "dashboard/lifecycle/__init__.py": "",
        "dashboard/lifecycle/jobs.py": "import dashboard.monitoring.drift\n",
        "dashboard/ui/__init__.py": "",
        "dashboard/ui/nav.py": "from dashboard.commands import common\n",
        "dashboard/commands/__init__.py": "",
        "dashboard/commands/common.py": "",
        "connectors/registry.py": "from dashboard.settings import X\n",
        "dashboard/settings.py": "",
    })
    assert backwards_imports(internal_graph(src)) == [
        "connectors.registry (connectors) imports dashboard.settings (ground)",
        "dashboard.monitoring.drift (monitoring) imports dashboard.lifecycle.jobs (lifecycle)",
        "dashboard.ui.nav imports dashboard.commands.common: the app and the CLI are separate front doors",
    ]


def test_checker_finds_streamlit_in_a_domain(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"dashboard/governance/__init__.py": "",
                           "dashboard/governance/cards.py": "def f():\n    import streamlit as st\n",
                           "dashboard/ui/__init__.py": "import streamlit\n"})
    assert streamlit_outside_the_app(src) == ["dashboard.governance.cards"]
