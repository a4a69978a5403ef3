"""No active content from data, anywhere: attacker-chosen values pushed through every rendering path.

The payloads (a script breakout, a Markdown image and a raw ``<img>`` that point at a local HTTP server
counting requests, a ``javascript:`` link, a link to another scheme, and a 10 MB value) go through real
components: Evidently's HTML report and Vigil's compliance report opened in Debian's Chromium, the PDF
printer, the Streamlit Markdown helpers in the real Streamlit front end, the pages under AppTest over a
real DuckDB file and a sqlite MLflow registry, and the CLI. Each path must fire no dialog, make no
request, keep the text visible as text, and cut a huge value for display with its length stated.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from dashboard.access.roles import Actor
from dashboard.charts import offline
from dashboard.cli import cli
from dashboard.context import Context
from dashboard.governance import approvals, cards, promotion, report_pdf, reports
from dashboard.monitoring import evidently_report
from dashboard.settings import Settings
from dashboard.ui.format import md_code, md_prose, md_text
from tests.conftest import DEMO_CONFIG, REPO, demo_config_context, make_logs
from tests.fixtures import compliance as fx
from tests.fixtures.access import signed_in
from tests.fixtures.app import CHROMIUM, free_port, wait_http
from tests.fixtures.compliance import MODEL, Registry
from tests.test_drift import CUR_WINDOW, REF_WINDOW
from tests.test_drift import ingest as ingest_drift
from tests.test_drift import make_ctx as drift_ctx

migrated_mlflow_db = fx.migrated_mlflow_db
registry = fx.registry

HUGE = "h" * (10 * 1024 * 1024)
HUGE_SHOWN = "(10,485,760 characters)"
#: No page element, no CLI output may carry more than this (the huge value is 10 MB).
MAX_SHOWN_BYTES = 200_000


def payloads(origin: str) -> dict[str, str]:
    """The attacker's values; the ones that would load something point at the counting server."""
    return {
        "script breakout": "</script><img src=x onerror=alert(1)>",
        "markdown image": f"![x]({origin}/md.png)",
        "javascript link": "[click](javascript:alert(1))",
        "other scheme link": "[share](smb://127.0.0.1/share)",
        "raw img": f'<img src="{origin}/raw.png" onerror="alert(1)">',
    }


NAMES = list(payloads("http://127.0.0.1:1"))


# ------------------------------------------------------------------------------------------- fixtures

@dataclass
class Sink:
    """A local HTTP server that counts every request it gets (any request is a failure)."""

    origin: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def sink() -> Iterator[Sink]:
    found: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Sink(f"http://127.0.0.1:{server.server_address[1]}", found)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Visit:
    dialogs: list[str]
    requests: list[str]
    console: list[str]
    text: str


def visit(chromium: Any, url: str, settle_ms: int = 2500, ready: Callable[[Any], None] | None = None) -> Visit:
    """Open ``url`` in a fresh Chromium context and record dialogs, requests, console errors and the text."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    try:
        page.goto(url)
        if ready is not None:
            ready(page)
        page.wait_for_timeout(settle_ms)
        return Visit(dialogs, requests, console, page.inner_text("body"))
    finally:
        context.close()


def rendered(markdown: str) -> str:
    """A permissive CommonMark rendering (raw HTML on) of a Streamlit Markdown string: what it could become."""
    return str(MarkdownIt("commonmark", {"html": True}).render(markdown))


def plain(markup: str) -> str:
    """The visible text of rendered HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def assert_inert(markup: str) -> None:
    """Rendered HTML with no element that loads, runs or links anywhere but http(s)."""
    assert not re.search(r"<(img|script|iframe|object|embed|link|video|audio|source)\b", markup, re.I), markup
    assert not re.search(r"<[a-z][^>]*\son\w+\s*=", markup, re.I), markup
    hrefs = re.findall(r"href=\"([^\"]*)\"", markup)
    assert all(h.startswith(("http://", "https://")) for h in hrefs), hrefs


pytestmark = pytest.mark.usefixtures("fresh_caches")


def elements(node: Any) -> Iterator[Any]:
    children = getattr(node, "children", None)
    if children:
        for child in children.values():
            yield from elements(child)
    else:
        yield node


def largest_element(at: AppTest, skip: tuple[str, ...] = ()) -> int:
    return max((e.proto.ByteSize() for e in elements(at._tree)
                if getattr(e, "proto", None) is not None and getattr(e, "type", "") not in skip), default=0)


ALERTS = ("markdown", "caption", "info", "warning", "error", "success")


def markdown_sources(at: AppTest, kinds: tuple[str, ...] = ALERTS) -> list[str]:
    """Every Markdown string of ``kinds`` a page sent to the browser (Markdown, captions, alerts)."""
    return [str(e.value) for kind in kinds for e in getattr(at, kind)]


# ----------------------------------------------------------------------------------- the helpers

@pytest.mark.parametrize("name", [*NAMES, "huge"])
def test_md_text_renders_every_payload_as_its_text(name: str) -> None:
    value = HUGE if name == "huge" else payloads("http://127.0.0.1:9")[name]
    out = rendered(md_text(value))
    assert_inert(out)
    shown = plain(out).strip()
    if name == "huge":
        assert shown == "h" * 200 + "… " + HUGE_SHOWN
    else:
        assert shown == value
        assert plain(rendered(md_prose(f"note: {value}\nsecond line"))).strip().splitlines() == [
            f"note: {value}", "second line"]


@pytest.mark.parametrize("name", [*NAMES, "backticks"])
def test_md_code_shows_every_payload_as_one_code_span(name: str) -> None:
    value = "`` x` ![i](http://127.0.0.1:9/i.png) `" if name == "backticks" else payloads("http://127.0.0.1:9")[name]
    out = rendered("Run " + md_code(value) + " now")
    assert_inert(out)
    assert out.count("<code>") == 1  # nothing in the value closed the span early
    code = html.unescape(re.search(r"<code>(.*)</code>", out, re.S).group(1))  # type: ignore[union-attr]
    assert code.strip() == " ".join(value.splitlines()).strip()  # as written, no backslash added


@pytest.mark.parametrize("name", NAMES)
def test_markdown_to_html_has_no_image_raw_html_or_foreign_link(name: str) -> None:
    value = payloads("http://127.0.0.1:9")[name]
    out = cards.markdown_to_html(f"Card text {value} and a [fine link](https://example.org/x).")
    assert_inert(out)
    assert value in plain(out)  # the payload shows as the text it was written as
    assert '<a href="https://example.org/x">fine link</a>' in out  # Markdown still renders


# ------------------------------------------------------------- the helpers in the real Streamlit front end

STREAMLIT_SCRIPT = """
import json, os
import streamlit as st
from dashboard.governance import cards
from dashboard.ui.format import md_code, md_prose, md_text

for name, value in json.loads(open(os.environ["PAYLOADS"]).read()).items():
    st.markdown(md_text(value))
    st.markdown("Run " + md_code(value))
    st.warning("Justification: " + md_prose(value))
    st.caption(md_text(value))
    st.html(cards.markdown_to_html(value))
st.markdown("all rendered")
"""


@pytest.mark.browser
def test_streamlit_shows_payloads_as_text_and_loads_nothing(chromium: Any, sink: Sink, tmp_path: Path) -> None:
    values = payloads(sink.origin)
    (tmp_path / "payloads.json").write_text(json.dumps(values))
    script = tmp_path / "show.py"
    script.write_text(STREAMLIT_SCRIPT)
    port = free_port()
    env = {**_clean_env(), "PAYLOADS": str(tmp_path / "payloads.json"), "PYTHONPATH": str(REPO)}
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 120, proc)
        seen = visit(chromium, f"http://127.0.0.1:{port}",
                     ready=lambda page: page.get_by_text("all rendered").wait_for(timeout=90_000))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert seen.dialogs == [] and sink.hits == []
    assert not [u for u in seen.requests if u.startswith(sink.origin) or not u.startswith(f"http://127.0.0.1:{port}")]
    for value in values.values():
        assert seen.text.count(value) >= 4, (value, seen.text[:2000])  # markdown, warning, caption, card html


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}


# --------------------------------------------------------------------------- the Evidently report

@pytest.mark.browser
def test_evidently_report_keeps_log_values_inert_in_chromium(chromium: Any, sink: Sink, tmp_path: Path) -> None:
    ctx = drift_ctx(tmp_path, {"x": "numerical", "cat": "categorical"})
    rng = np.random.default_rng(3)
    values = list(payloads(sink.origin).values())

    def frame(n: int, current: bool) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.normal(1.0 if current else 0.0, 1.0, n),
                             "cat": rng.choice(["a", "b", *values] if current else ["a", "b", *values[:1]], n)})

    ingest_drift(ctx, tmp_path, frame(300, False), frame(300, True))
    report = evidently_report.build_report(ctx, "m", CUR_WINDOW, REF_WINDOW)
    assert offline.META in report.html
    page = tmp_path / report.file_name
    page.write_text(report.html, encoding="utf-8")
    seen = visit(chromium, page.as_uri(),
                 ready=lambda p: p.get_by_text("Dataset Drift").first.wait_for(timeout=60_000))
    assert seen.dialogs == [] and sink.hits == []
    assert seen.requests == [page.as_uri()]  # the document itself, nothing else
    assert "Drifted Columns" in seen.text and "cat" in seen.text and "x" in seen.text  # still renders
    assert not [c for c in seen.console if "Content Security Policy" in c], seen.console


def test_evidently_layout_change_is_refused() -> None:
    with pytest.raises(Exception, match="not laid out"):
        evidently_report.safe_report_html("<html><head><script>var x = {};</script></head></html>")


# ------------------------------------------------------------------------- the compliance report

POLICIES = """
[[models.credit-risk.policies]]
name = "latency_p95_ms"
metric = "latency_p95_ms"
comparator = "<="
threshold = 500
window = "2026-01-01..2026-01-01"
"""


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """The demo model with one blocking latency policy, sharing the data folder of ``settings``."""
    return demo_config_context(settings, tmp_path, monkeypatch, POLICIES)


@dataclass
class Governed:
    """A registry where every place a person's words land holds the payloads."""

    registry: Registry
    slow: str
    fast: str
    values: dict[str, str]


@pytest.fixture
def governed(registry: Registry, sink: Sink, tmp_path: Path) -> Governed:
    values = payloads(sink.origin)
    everything = " ".join(values.values())
    fast, slow = registry.add_version("dana"), registry.add_version("dana")
    logs = [make_logs(150, version=fast), make_logs(150, seed=1, id_prefix="s", version=slow)]
    logs[1]["latency_ms"] += 2000
    path = tmp_path / "logs.parquet"
    pd.concat(logs).to_parquet(path, index=False)
    c = registry.ctx
    c.store.ingest([path], c.schema(MODEL))
    sections = dict(zip(("intended_use", "limitations", "owners", "fairness", "evaluation"), values.values(),
                        strict=True))
    cards.save_card(c, Actor("dana", "data_scientist"), MODEL, slow, sections)
    c.registry.set_version_tag(MODEL, fast, "vigil.gate.verdict", "pass")
    promotion.request_promotion(c, Actor("dana", "data_scientist"), MODEL, fast, "Please promote " + everything)
    approvals.approve(c, Actor("mia", "manager"), MODEL, slow, justification="Accepted because " + everything)
    return Governed(registry, slow, fast, values)


@pytest.mark.browser
def test_html_report_shows_payloads_as_text_in_chromium(chromium: Any, sink: Sink, governed: Governed,
                                                        tmp_path: Path) -> None:
    doc = reports.build_report(governed.registry.ctx, Actor("mia", "manager"), MODEL, governed.slow)
    page = tmp_path / "report.html"
    page.write_text(doc, encoding="utf-8")
    charts: list[int] = []
    seen = visit(chromium, page.as_uri(), ready=lambda p: (
        p.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000),
        charts.append(p.locator(".js-plotly-plot").count())))
    assert seen.dialogs == [] and sink.hits == []
    assert seen.requests == [page.as_uri()]
    assert charts and charts[0] >= 1  # plotly still draws under the offline policy
    assert not [c for c in seen.console if "Content Security Policy" in c], seen.console
    for value in governed.values.values():
        assert seen.text.count(value) >= 2, value  # card section and justification, as text


@pytest.mark.browser
def test_offline_policy_blocks_every_request_in_chromium(chromium: Any, sink: Sink, tmp_path: Path) -> None:
    raw = tmp_path / "raw.html"
    raw.write_text(_fetching_page(sink.origin))
    visit(chromium, raw.as_uri(), settle_ms=1500)
    assert sink.hits, "the control page should have made requests"
    sink.hits.clear()
    guarded = tmp_path / "guarded.html"
    guarded.write_text(offline.with_offline_policy(_fetching_page(sink.origin)))
    seen = visit(chromium, guarded.as_uri(), settle_ms=1500)
    assert sink.hits == [] and "hello" in seen.text


def _fetching_page(origin: str) -> str:
    """A page that tries every way to make a request (the PDF printer must make none of them)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel=stylesheet href='{origin}/a.css'>"
            f"<style>body {{ background: url('{origin}/bg.png') }}</style></head><body><p>hello</p>"
            f"<img src='{origin}/img.png'><img src='http://localhost:{origin.rsplit(':', 1)[1]}/host.png'>"
            f"<iframe src='{origin}/frame'></iframe><script>fetch('{origin}/fetch').catch(() => 0)</script>"
            "</body></html>")


# ------------------------------------------------------------------------------------ the PDF printer

@pytest.mark.browser
def test_pdf_printer_has_no_network_even_for_a_fetching_page(sink: Sink) -> None:
    assert report_pdf.print_page(_fetching_page(sink.origin), CHROMIUM).startswith(b"%PDF-")
    assert sink.hits == []  # Chromium's own network is off


@pytest.mark.browser
def test_pdf_printer_applies_the_offline_policy(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf, "OFFLINE_ARGS", ())  # only the page's policy is left
    assert report_pdf.html_to_pdf(_fetching_page(sink.origin), CHROMIUM).startswith(b"%PDF-")
    assert sink.hits == []


@pytest.mark.browser
def test_pdf_of_the_report_with_payloads_makes_no_request(sink: Sink, governed: Governed) -> None:
    pdf = reports.export_report(governed.registry.ctx, Actor("mia", "manager"), MODEL, governed.slow, fmt="pdf")
    assert pdf.startswith(b"%PDF-") and sink.hits == []


# ------------------------------------------------------------------------------------- the pages

def _compliance_page(version: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "8_compliance.py"), default_timeout=120)
    signed_in(at, "mia", "manager")
    at.run()
    at.selectbox(key="compliance_version").set_value(version).run()
    return at


def test_compliance_page_shows_payloads_as_text(governed: Governed) -> None:
    at = _compliance_page(governed.slow)
    assert not at.exception, at.exception
    sources = markdown_sources(at)
    for source in sources:
        assert_inert(rendered(source))
    for section in at.html:  # card sections: the safe renderer, then DOMPurify in the browser
        assert_inert(section.value)
    shown = "\n".join(plain(rendered(s)) for s in sources) + "\n".join(plain(h.value) for h in at.html)
    for value in governed.values.values():
        assert shown.count(value) >= 2, value  # justification (scorecard and approvals), request note, card


def test_drift_page_clips_a_huge_category(monkeypatch: pytest.MonkeyPatch, huge: Huge) -> None:
    at = _page("2_drift.py", monkeypatch, huge.settings).run()
    at.radio(key="drift_ref_kind").set_value("Time window").run()
    at.date_input(key="drift_ref_window").set_value((date(2026, 1, 1), date(2026, 1, 1))).run()
    at.date_input(key="drift_cur_window").set_value((date(2026, 1, 2), date(2026, 1, 2))).run()
    at.selectbox(key="drift_column").set_value("purpose").run()
    assert not at.exception, at.exception
    assert largest_element(at) < MAX_SHOWN_BYTES
    notes = " ".join(map(str, at.dataframe[0].value["note"]))
    assert "only in current" in notes and "characters)" in notes
    charts = [e for e in elements(at._tree) if getattr(e, "type", "") == "plotly_chart"]
    spec = next(json.loads(c.proto.spec) for c in charts if "Distribution of purpose" in c.proto.spec)
    labels = {x for trace in spec["data"] for x in trace.get("x", [])}
    assert "h" * 200 + "… " + HUGE_SHOWN in labels
    assert html.escape(huge.script, quote=False) in labels  # plotly shows the tag as text


def test_fairness_page_clips_a_huge_group(monkeypatch: pytest.MonkeyPatch, huge: Huge) -> None:
    at = _page("3_fairness.py", monkeypatch, huge.settings).run()
    assert not at.exception, at.exception
    assert largest_element(at) < MAX_SHOWN_BYTES
    options = at.multiselect[0].options
    assert "h" * 200 + "… " + HUGE_SHOWN in options
    caption = next(c.value for c in at.caption if "Privileged" in c.value)
    assert_inert(rendered(caption))
    assert HUGE_SHOWN in plain(rendered(caption)) and huge.script in plain(rendered(caption))


def test_overview_shows_logged_versions_as_text(monkeypatch: pytest.MonkeyPatch, huge: Huge) -> None:
    at = _page("1_overview.py", monkeypatch, huge.settings).run()
    assert not at.exception, at.exception
    assert largest_element(at, skip=("error",)) < MAX_SHOWN_BYTES  # errors: see the next test
    sources = markdown_sources(at, tuple(k for k in ALERTS if k != "error"))
    for source in sources:
        assert_inert(rendered(source))
    assert any(huge.image in plain(rendered(s)) and HUGE_SHOWN in plain(rendered(s)) for s in sources)


def test_errors_shown_for_logged_values_are_text(monkeypatch: pytest.MonkeyPatch, huge: Huge) -> None:
    at = _page("1_overview.py", monkeypatch, huge.settings).run()
    assert largest_element(at) < MAX_SHOWN_BYTES
    for source in markdown_sources(at, ("error",)):
        assert_inert(rendered(source))


def test_operations_page_clips_a_huge_version(monkeypatch: pytest.MonkeyPatch, huge: Huge) -> None:
    at = _page("4_operations.py", monkeypatch, huge.settings).run()
    assert not at.exception, at.exception
    assert largest_element(at) < MAX_SHOWN_BYTES
    assert "v" + "h" * 200 + "… " + HUGE_SHOWN in list(at.dataframe[0].value["version"])


def _page(name: str, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> AppTest:
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    return AppTest.from_file(str(REPO / "pages" / name), default_timeout=120)


# --------------------------------------------------------------------------------------- the CLI

@dataclass
class Huge:
    settings: Settings
    script: str
    image: str


@pytest.fixture
def huge(settings: Settings, store: LogStore, schema: LogSchema, tmp_path: Path) -> Huge:
    """Two days of demo logs; on the second day a 10 MB purpose, sex, version and prediction id (two rows
    each), and the script and image payloads as a purpose, a sex and a version."""
    values = payloads("http://127.0.0.1:9")
    script, image = values["script breakout"], values["markdown image"]
    ref = make_logs(300, start="2026-01-01")
    cur = make_logs(300, seed=1, start="2026-01-02", id_prefix="c")
    for col, text in (("purpose", script), ("sex", script), ("model_version", image)):
        cur.loc[10:49, col] = text
    for col in ("purpose", "sex", "model_version"):
        cur.loc[:1, col] = HUGE
    cur.loc[:1, "prediction_id"] = [HUGE + "0", HUGE + "1"]
    cur.loc[:1, ["proba_good", "proba_bad"]] = 0.5  # the least confident: first in the queue
    path = tmp_path / "huge.parquet"
    pd.concat([ref, cur]).to_parquet(path, index=False)
    report = store.ingest([path], schema)
    assert not report.rejected, report.problem_lines()
    return Huge(settings, script, image)


@pytest.mark.parametrize("args", [
    ["drift", "--current", "2026-01-02..2026-01-02", "--reference", "2026-01-01..2026-01-01"],
    ["fairness", "--window", "2026-01-01..2026-01-02"],
    ["ops", "--window", "2026-01-01..2026-01-02"],
    ["queue", "--window", "2026-01-01..2026-01-02", "--dry-run", "--threshold", "0.99"],
], ids=["drift", "fairness", "ops", "queue"])
def test_cli_text_output_clips_huge_values(args: list[str], huge: Huge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(huge.settings.data_dir))
    result = CliRunner().invoke(cli, [*args, "--model", "credit-risk"])
    assert result.exit_code == 0, result.output[:2000]
    assert len(result.output) < MAX_SHOWN_BYTES
    assert re.search(r"… \(10,\d{3},\d{3} characters\)", result.output)  # the value (or a note naming it), cut
