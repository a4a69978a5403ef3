"""The compliance report as a reader gets it from the Compliance page (Streamlit's process, so Streamlit's
plotly template), printed by the real Chromium and read back with poppler: pdftotext's text layer with word
boxes, pdftoppm's page images, and the HTML report in Chromium.

Over a copy of the demo workspace with one extra policy whose name is 44 characters long, exported for the
champion over 30 days so the traffic policies' row counts have five digits.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.audit import trail as audit
from dashboard.context import load_context
from dashboard.governance.policy import evaluate
from dashboard.governance.reports import AUDIT_EXCERPT, CHART_FRAME_PX, FIRST_PAGE_CHART_PX, MIN_ROW_PX
from tests.fixtures.access import signed_in

REPO = Path(__file__).resolve().parents[1]
MODEL = "credit-risk"
LONG_POLICY = "error_rate_over_thirty_days_of_every_version"
EXTRA_POLICY = f"""
[[models.credit-risk.policies]]
name = "{LONG_POLICY}"
metric = "error_rate"
comparator = "<="
threshold = 0.02
severity = "warning"
window = "30d"
"""
XHTML = "{http://www.w3.org/1999/xhtml}"


@dataclass(frozen=True)
class Word:
    text: str
    x_min: float
    y_min: float
    y_max: float


@dataclass
class Printed:
    html: Path
    pdf: Path
    policies: list[str]
    counts: list[int]  # the policies' row counts, as the scorecard table shows them
    actions: set[str]  # what the audit chart's legend names
    timestamps: list[str]  # the audit excerpt's times
    pages: list[list[Word]] = field(default_factory=list)


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is missing: run `make browser` (apt-get install poppler-utils)")
    return found


def words_by_page(pdf: Path) -> list[list[Word]]:
    """Every page's words with their boxes (pdftotext -bbox), in reading order."""
    out = subprocess.run([poppler("pdftotext"), "-bbox", str(pdf), "-"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    root = ET.fromstring(out)
    return [[Word(w.text or "", float(w.get("xMin", 0)), float(w.get("yMin", 0)), float(w.get("yMax", 0)))
             for w in page.iter(f"{XHTML}word")] for page in root.iter(f"{XHTML}page")]


def caption(printed: Printed, number: int) -> tuple[int, float]:
    """(page index, top) of the caption "Figure <number>." that closes a chart's container."""
    for index, words in enumerate(printed.pages):
        for first, second in itertools.pairwise(words):
            if first.text == "Figure" and second.text == f"{number}.":
                return index, first.y_min
    raise AssertionError(f"no caption 'Figure {number}.' in the PDF")


def above(words: list[Word], y: float) -> list[str]:
    return [w.text for w in words if w.y_max <= y]


def occurrences(name: str, words: list[str], max_lines: int = 3) -> int:
    """How often ``name`` is printed whole: as one word, or (a name longer than the chart's label width,
    wrapped after ``_`` or ``[``) as consecutive lines that join to exactly it."""
    return sum(any("".join(words[i:i + k]) == name for k in range(1, max_lines + 1)) for i in range(len(words)))


@pytest.fixture(scope="module")
def printed(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Printed:
    poppler("pdftotext")
    workspace = tmp_path_factory.mktemp("print") / "ws"
    shutil.copytree(demo_workspace, workspace)
    config = workspace / "vigil.toml"
    config.write_text(config.read_text() + EXTRA_POLICY)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("VIGIL_CONFIG", "VIGIL_DATA_DIR", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI"):
            mp.delenv(key, raising=False)
        mp.setenv("VIGIL_CONFIG", str(config))
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(REPO / "pages" / "8_compliance.py"), default_timeout=240)
        signed_in(at, "mia", "manager").run()
        at.selectbox(key="compliance_version").set_value("1")
        at.text_input(key="compliance_window").input("30d").run()
        next(b for b in at.button if b.label == "Export report").click().run()
        assert not at.exception, at.exception
        ctx = load_context(str(config))
        entries = audit.entries(ctx.store, target=MODEL, limit=AUDIT_EXCERPT)  # what the PDF's excerpt shows
        next(b for b in at.button if b.label == "Export PDF").click().run()
        assert not at.exception, at.exception
        html, pdf = workspace / "report.html", workspace / "report.pdf"
        html.write_text(at.session_state["report_html"], encoding="utf-8")
        pdf.write_bytes(at.session_state["report_pdf"])
        ev = evaluate(ctx, MODEL, version="1", window="30d")
        st.cache_data.clear()
        st.cache_resource.clear()
    return Printed(html=html, pdf=pdf, policies=[r.name for r in ev.results],
                   counts=[int(r.rows) for r in ev.results if r.rows],
                   actions=set(entries["action"]), timestamps=[str(t) for t in entries["ts"]],
                   pages=words_by_page(pdf))


def test_every_policy_name_prints_whole_in_the_scorecard_chart_on_one_page(printed: Printed) -> None:
    assert LONG_POLICY in printed.policies and len(printed.policies) > 20
    page, top = caption(printed, 1)
    chart = above(printed.pages[page], top)  # the chart is all that sits between the verdict and its caption
    assert [name for name in printed.policies if not occurrences(name, chart)] == []
    assert {"verdict", "margin", "threshold"} <= set(chart)  # legend (top) and axis title (bottom) there too
    # Under the header when its bars stay MIN_ROW_PX apart there; else whole on the next page, never later.
    fits_first_page = len(printed.policies) * MIN_ROW_PX + CHART_FRAME_PX <= FIRST_PAGE_CHART_PX
    assert page == (0 if fits_first_page else 1), "the scorecard chart prints right after the report's header"


def test_the_scorecard_table_shows_names_and_counts_whole(printed: Printed) -> None:
    text = [w.text for words in printed.pages for w in words]
    broken = [name for name in printed.policies if occurrences(name, text) < 2]  # chart label and table cell
    assert broken == []
    # Counts are of what each policy reads: requests for the traffic policies (five digits over 30 days: they
    # used to wrap as "1406" over "8"), labelled rows for accuracy and friends, files for ingest_rejects.
    assert len([c for c in printed.counts if c >= 10_000]) >= 15
    assert [c for c in printed.counts if str(c) not in text] == []


def test_the_audit_chart_sits_on_one_page_and_timestamps_on_one_line(printed: Printed) -> None:
    page, top = caption(printed, 2)
    legend = above(printed.pages[page], top)
    assert printed.actions and [a for a in printed.actions if a not in legend] == []
    lines: dict[tuple[int, int], list[str]] = defaultdict(list)  # the words of each printed line
    for index, words in enumerate(printed.pages):
        for w in words:
            lines[(index, round(w.y_min))].append(w.text)
    printed_lines = [" ".join(parts) for parts in lines.values()]
    split = [ts for ts in printed.timestamps if not any(ts in line for line in printed_lines)]
    assert split == [], "audit timestamps wrap"


def test_the_audit_chart_has_readable_time_ticks(printed: Printed) -> None:
    page, top = caption(printed, 2)
    chart = above(printed.pages[page], top)
    # plotly's own ticks around one day's bar read "23:59:59.9996 ... 00:00:00.0004"
    assert [w for w in chart if re.fullmatch(r"\d\d:\d\d:\d\d\.\d+", w)] == []
    ticks = [w for w in chart if re.fullmatch(r"\d\d:\d\d", w)]  # the demo's entries are of one day: hours
    assert len(ticks) >= 4 and len(set(ticks)) >= len(ticks) - 1  # distinct (midnight may close the day)


def test_pages_render_and_the_charts_keep_their_colours(printed: Printed, tmp_path: Path) -> None:
    from PIL import Image

    subprocess.run([poppler("pdftoppm"), "-r", "40", "-png", str(printed.pdf), str(tmp_path / "page")],
                   check=True, timeout=180)
    images = sorted(tmp_path.glob("page-*.png"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    assert len(images) == len(printed.pages) >= 3
    page, _ = caption(printed, 2)
    with Image.open(images[page]) as im:
        pixels = list(im.convert("RGB").getdata())
    # Streamlit's template colours traces with placeholders (#000001...) that only its frontend replaces:
    # a report exported from the app drew the audit chart's bars black. Text is #1a1a1a at its darkest.
    black = sum(1 for r, g, b in pixels if max(r, g, b) < 16)
    assert black < len(pixels) * 0.002, f"{black} black pixels on the audit chart's page"


@pytest.mark.browser
def test_the_html_report_shows_every_label_inside_its_chart(printed: Printed, chromium) -> None:
    context = chromium.new_context(viewport={"width": 900, "height": 1000})
    page = context.new_page()
    try:
        page.goto(printed.html.as_uri())
        page.wait_for_selector(".ytick text", timeout=60_000)
        boxes = page.evaluate("""() => {
            const svg = document.querySelector('.main-svg').getBoundingClientRect();
            return [...document.querySelector('.js-plotly-plot').querySelectorAll('.ytick text')]
                .map(t => [t.textContent, t.getBoundingClientRect().left - svg.left]);
        }""")
    finally:
        context.close()
    assert sorted(text for text, _ in boxes) == sorted(printed.policies)
    assert [text for text, left in boxes if left < 0] == []  # none starts left of the chart (cut off)
