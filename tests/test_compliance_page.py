"""Compliance page (AppTest) and report export over a real DuckDB file and a real sqlite MLflow registry:
a manager promotes, an annotator cannot, HTML in card text, tags and justifications renders as text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.charts.compliance import audit_activity_figure, margin, scorecard_figure
from dashboard.context import Context
from dashboard.errors import PermissionDenied
from dashboard.governance import approvals, cards, reports
from dashboard.settings import Settings
from tests.conftest import DEMO_CONFIG, REPO, demo_config_context, make_logs
from tests.fixtures import compliance as fx
from tests.fixtures.access import signed_in
from tests.fixtures.compliance import MODEL, Registry

migrated_mlflow_db = fx.migrated_mlflow_db
registry = fx.registry

POLICIES = """
[[models.credit-risk.policies]]
name = "latency_p95_ms"
metric = "latency_p95_ms"
comparator = "<="
threshold = 500
window = "2026-01-01..2026-01-01"

[[models.credit-risk.policies]]
name = "drift_share"
metric = "drift_share"
comparator = "<"
threshold = 0.5
severity = "warning"

[[models.credit-risk.policies]]
name = "disparate_impact"
metric = "disparate_impact"
comparator = "within"
threshold = [0.8, 1.25]
severity = "warning"

[[models.credit-risk.policies]]
name = "accuracy"
metric = "accuracy"
comparator = ">="
threshold = 0.7
severity = "warning"
"""
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A config with one blocking policy (latency), sharing the data folder with the `settings` fixture."""
    return demo_config_context(settings, tmp_path, monkeypatch, POLICIES)


@pytest.fixture
def versions(registry: Registry, tmp_path: Path) -> dict[str, str]:
    out = {"fast": registry.add_version("dana"), "slow": registry.add_version("dana")}
    fast = make_logs(150, version=out["fast"])
    slow = make_logs(150, seed=1, id_prefix="s", version=out["slow"])
    slow["latency_ms"] += 2000
    path = tmp_path / "logs.parquet"
    pd.concat([fast, slow]).to_parquet(path, index=False)
    registry.ctx.store.ingest([path], registry.ctx.schema(MODEL))
    return out


def _page(user: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "8_compliance.py"), default_timeout=120)
    signed_in(at, user["name"], user["role"])
    return at


def _all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [s.value for s in at.success] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_manager_promotes_a_passing_candidate_in_the_page(registry: Registry, versions: dict[str, str]) -> None:
    at = _page({"name": "mia", "role": "manager"}).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="compliance_version").value == versions["slow"]  # newest first
    at.selectbox(key="compliance_version").set_value(versions["fast"]).run()
    assert any("Every blocking policy passes" in s.value for s in at.success)
    form_select = next(s for s in at.selectbox if s.label == "Version to promote")
    form_select.set_value(versions["fast"])
    next(b for b in at.button if b.label == "Promote to champion").click().run()
    assert not at.exception, at.exception
    assert approvals.current_champion(registry.ctx, MODEL) == versions["fast"]
    assert audit.verify(registry.ctx.store).ok
    assert "Current champion: **version " + versions["fast"] in _all_text(at)


def test_failing_candidate_shows_override_everywhere(registry: Registry, versions: dict[str, str]) -> None:
    at = _page({"name": "mia", "role": "manager"}).run()
    form_select = next(s for s in at.selectbox if s.label == "Version to promote")
    form_select.set_value(versions["slow"])
    next(b for b in at.button if b.label == "Promote to champion").click().run()
    assert any("justification" in e.value for e in at.error)
    assert approvals.current_champion(registry.ctx, MODEL) is None
    at.text_area[-1].input("Accepted: latency fix ships Friday " + XSS)
    next(b for b in at.button if b.label == "Promote to champion").click().run()
    assert approvals.current_champion(registry.ctx, MODEL) == versions["slow"]
    at = _page({"name": "mia", "role": "manager"}).run()
    assert any("promoted by override" in w.value for w in at.warning)
    assert "(promoted by override)" in str(at.selectbox(key="compliance_version").format_func(versions["slow"]))


def test_annotator_sees_no_promotion_and_cannot_promote(registry: Registry, versions: dict[str, str]) -> None:
    at = _page({"name": "ann", "role": "annotator"}).run()
    assert not at.exception
    assert not [b for b in at.button if b.label in ("Promote to champion", "Roll back to the previous champion")]
    assert any("Only managers" in i.value for i in at.info)
    with pytest.raises(PermissionDenied):
        approvals.approve(registry.ctx, Actor("ann", "annotator"), MODEL, versions["fast"])


def test_card_html_renders_as_text_and_edit_saves(registry: Registry, versions: dict[str, str]) -> None:
    cards.save_card(registry.ctx, Actor("dana", "data_scientist"), MODEL, versions["slow"], {"limitations": XSS})
    at = _page({"name": "dana", "role": "data_scientist"}).run()
    assert not at.exception
    section = "\n".join(h.value for h in at.html)  # card sections: the report's safe renderer
    assert "<script>" not in section and "<img" not in section
    assert "&lt;script&gt;alert('x')&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in section
    areas = {a.label: a for a in at.text_area}
    areas["Owners"].input("Risk analytics team")
    next(b for b in at.button if b.label == "Save card").click().run()
    assert not at.exception, at.exception
    card = cards.load_card(registry.ctx, MODEL, versions["slow"])
    assert card.revision == 2 and card.text("owners") == "Risk analytics team" and card.text("limitations") == XSS


def test_audit_tab_shows_chain_status(registry: Registry, versions: dict[str, str]) -> None:
    audit.record(registry.ctx.store, Actor("dana", "data_scientist"), "ingest", MODEL, {"rows": 1})
    at = _page({"name": "mia", "role": "manager"}).run()
    assert any("Chain intact" in s.value for s in at.success)
    with registry.ctx.store.connect() as con:
        con.execute("UPDATE audit_log SET actor = 'eve' WHERE seq = 1")
    at = _page({"name": "mia", "role": "manager"}).run()
    assert any("Chain broken" in e.value and "#1" in e.value for e in at.error)


def test_export_report_is_standalone_and_escaped(registry: Registry, versions: dict[str, str]) -> None:
    ctx = registry.ctx
    ctx.registry.set_version_tag(MODEL, versions["slow"], "note", XSS)
    cards.save_card(ctx, Actor("dana", "data_scientist"), MODEL, versions["slow"], {"intended_use": XSS})
    approvals.approve(ctx, Actor("mia", "manager"), MODEL, versions["slow"], justification="Because " + XSS)
    html = reports.build_report(ctx, Actor("mia", "manager"), MODEL, versions["slow"])
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html
    assert "Policy scorecard" in html and "latency_p95_ms" in html and "Promoted by override" in html
    assert "Audit chain verified" in html
    assert "http://" not in html.split("<body>", 1)[1].split("plotly")[0]  # no external resources before charts
    with pytest.raises(PermissionDenied):
        reports.build_report(ctx, Actor("ann", "annotator"), MODEL, versions["slow"])
    assert audit.entries(ctx.store, action="report.export").iloc[0]["actor"] == "mia"


def test_export_button_offers_a_download(registry: Registry, versions: dict[str, str]) -> None:
    at = _page({"name": "mia", "role": "manager"}).run()
    next(b for b in at.button if b.label == "Export report").click().run()
    assert not at.exception, at.exception
    assert "<!DOCTYPE html>" in at.session_state["report_html"]
    next(b for b in at.button if b.label == "Export PDF").click().run(timeout=180)
    assert not at.exception, at.exception
    assert at.session_state["report_pdf"].startswith(b"%PDF-")


def test_figures_from_frames() -> None:
    frame = pd.DataFrame({"policy": ["a", "b"], "value": [0.5, None], "threshold": ["1", "[0.8, 1.25]"],
                          "comparator": ["<=", "within"], "severity": ["blocking", "warning"], "rows": [10, 0],
                          "verdict": ["pass", "no data"]})
    fig = scorecard_figure(frame)
    assert {t.name for t in fig.data} == {"pass", "no data"}
    assert list(fig.data[0].x) == [0.5]  # (1 - 0.5) / 1: halfway inside the allowed region


def test_a_margin_far_from_its_threshold_does_not_squeeze_the_other_bars() -> None:
    frame = pd.DataFrame({"policy": ["label_coverage", "error_rate", "latency"], "value": [0.33, 0.011, 400.0],
                          "threshold": ["0.01", "0.02", "200"], "comparator": [">=", "<=", "<="],
                          "severity": ["warning", "blocking", "blocking"], "rows": [10, 10, 10],
                          "verdict": ["pass", "pass", "fail"]})
    fig = scorecard_figure(frame)
    drawn = {y: x for trace in fig.data for y, x in zip(trace.y, trace.x, strict=True)}
    assert drawn == {"label_coverage": 1.0, "error_rate": pytest.approx(0.45), "latency": -1.0}
    coverage = next(t for t in fig.data if "label_coverage" in t.y)
    assert "0.33" in str(coverage.customdata[0][0])  # the hover keeps the real value


def test_the_scorecard_chart_draws_and_labels_every_policy_whatever_its_verdict() -> None:
    """A report's chart is fitted to a page, where plotly's automatic category ticks labelled every other
    bar; and bars of verdicts without a colour ("not applicable yet") were not drawn at all."""
    verdicts = ["pass", "fail", "no data", "error: query failed", "not applicable yet"]
    policies = [f"feature_drift[column_{i}]" for i in range(30)]
    frame = pd.DataFrame({"policy": policies, "value": [0.5] * 30, "threshold": ["1"] * 30,
                          "comparator": ["<="] * 30, "severity": ["warning"] * 30, "rows": [15_886] * 30,
                          "verdict": [verdicts[i % len(verdicts)] for i in range(30)]})
    fig = scorecard_figure(frame).update_layout(height=460)
    assert sorted(y for trace in fig.data for y in trace.y) == sorted(policies)
    assert {t.name for t in fig.data} == {"pass", "fail", "no data", "error", "not applicable yet"}
    assert fig.layout.yaxis.tickmode == "array" and sorted(fig.layout.yaxis.tickvals) == sorted(policies)
    assert list(fig.layout.yaxis.ticktext) == list(fig.layout.yaxis.tickvals)
    # The names come from configs and data: shown as text, never as plotly's label markup.
    fig = scorecard_figure(frame.assign(policy=["<b>x</b>", *policies[1:]]))
    assert "&lt;b&gt;x&lt;/b&gt;" in fig.layout.yaxis.tickvals and "<b>x</b>" not in fig.layout.yaxis.tickvals


@pytest.mark.parametrize("n,height,font", [(26, reports.FIRST_PAGE_CHART_PX, 12), (45, reports.PAGE_CHART_PX, 10),
                                             (120, 120 * reports.MIN_PRINT_ROW_PX + reports.CHART_FRAME_PX, 8)])
def test_the_printed_scorecard_keeps_every_label_apart(n: int, height: int, font: int) -> None:
    """Every policy is labelled (above), so a chart fitted to a page shrinks its labels' font to the rows'
    pitch rather than overlapping them, and grows past a page only when even an 8 px font would not fit."""
    frame = pd.DataFrame({"policy": [f"p{i}" for i in range(n)], "value": [0.5] * n, "threshold": ["1"] * n,
                          "comparator": ["<="] * n, "severity": ["warning"] * n, "rows": [100] * n,
                          "verdict": ["pass"] * n})
    fig = reports.fit_to_print(scorecard_figure(frame))
    assert (fig.layout.height, fig.layout.yaxis.tickfont.size) == (height, font)
    assert n * (font + 1) <= fig.layout.height - reports.CHART_FRAME_PX
    assert fig.layout.template.layout.colorway[0] == "#636efa"  # plotly's colours, not Streamlit's placeholders


@pytest.mark.parametrize("name", ["report.docx", "report", "REPORT.TXT"])
def test_the_cli_refuses_a_file_that_is_not_a_report_format(ctx: Context, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str], name: str) -> None:
    from dashboard.cli import cli
    from dashboard.commands.common import run_cli

    folder = tmp_path / "out"
    folder.mkdir()
    code = run_cli(cli, ["report", "--model", MODEL, "-o", str(folder / name)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert all(suffix in err for suffix in (".html", ".htm", ".pdf")) and name in err
    assert list(folder.iterdir()) == []  # nothing written, not even a partial file
    assert audit.entries(ctx.store, action="report.export").empty  # refused before any report was built


def test_the_cli_refuses_a_format_that_contradicts_the_suffix(ctx: Context, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from dashboard.cli import cli
    from dashboard.commands.common import run_cli

    folder = tmp_path / "out"
    folder.mkdir()
    code = run_cli(cli, ["report", "--model", MODEL, "--format", "html", "-o", str(folder / "r.pdf")])
    assert code == 2 and "--format html does not match r.pdf" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("value,comparator,threshold,sign", [
    (0.65, "within", "[0.8, 1.25]", -1), (1.0, "within", "[0.8, 1.25]", 1), (66, "<=", "200", 1),
    (250, "<=", "200", -1), (0.74, ">=", "0.7", 1), (0.6, ">=", "0.7", -1), (1, "==", "0", -1),
    (1.5, "outside", "[0.8, 1.25]", 1),
])
def test_margin_sign_matches_the_verdict(value: float, comparator: str, threshold: str, sign: int) -> None:
    from dashboard.settings import compare

    m = margin(value, comparator, threshold)
    assert m is not None and (m > 0) == (sign > 0)
    bounds = tuple(float(x) for x in threshold.strip("[]").split(","))
    assert compare(value, comparator, bounds if len(bounds) == 2 else bounds[0]) == (sign > 0)
    entries = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01", "2026-01-02"]), "action": ["ingest", "signin"]})
    assert len(audit_activity_figure(entries).data) == 2


def test_report_prints_to_pdf_with_chromium_and_the_cli_writes_it(registry: Registry, versions: dict[str, str],
                                                                   tmp_path: Path, monkeypatch) -> None:
    import subprocess
    import sys

    from dashboard.governance.report_pdf import find_chromium

    if find_chromium() is None:
        pytest.fail("Chromium is missing: run `make browser` (apt-get install chromium)")
    ctx = registry.ctx
    pdf = reports.export_report(ctx, Actor("mia", "manager"), MODEL, versions["slow"], fmt="pdf")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    assert b"/Type /Page" in pdf or b"/Type/Page" in pdf
    # The CLI writes the whole file from the same function (format from the suffix).
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("VIGIL_")},
           "VIGIL_CONFIG": str(DEMO_CONFIG), "VIGIL_DATA_DIR": str(ctx.settings.data_dir),
           "VIGIL_MLFLOW_URI": ctx.settings.mlflow_tracking_uri, "VIGIL_ROLE": "manager"}
    out = tmp_path / "report.pdf"
    proc = subprocess.run([sys.executable, "-m", "dashboard.cli", "report", "--model", MODEL, "--version",
                           versions["slow"], "-o", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert out.read_bytes().startswith(b"%PDF-") and "wrote" in proc.stdout
    # No Chromium: one clear message naming the fix; nothing written.
    missing = tmp_path / "missing.pdf"
    proc = subprocess.run([sys.executable, "-m", "dashboard.cli", "report", "--model", MODEL, "-o", str(missing)],
                          env={**env, "VIGIL_CHROMIUM": str(tmp_path / "no-such-chromium")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "apt-get install chromium" in proc.stderr + proc.stdout
    assert not missing.exists() and not list(tmp_path.glob(".missing.pdf*"))
    # An annotator may not export, whatever the format.
    with pytest.raises(PermissionDenied):
        reports.export_report(ctx, Actor("ann", "annotator"), MODEL, versions["slow"], fmt="pdf")
