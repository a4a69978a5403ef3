"""Compliance report export: one standalone HTML file an auditor can open offline.

It holds the scorecard with evidence, key charts (plotly, inlined), the model card, the approval history
and an excerpt of the audit trail with the chain's verification. Every piece of text from users, configs
or tags is HTML-escaped; the card's Markdown is rendered with raw HTML, images and non-http(s) links
disabled (:func:`cards.markdown_to_html`); chart labels from data are escaped for plotly; and the page
carries an offline Content-Security-Policy, so neither a reader's browser nor the PDF printer requests
anything.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard import progress
from dashboard.access.roles import Actor, require
from dashboard.audit import anchor
from dashboard.audit import trail as audit
from dashboard.charts.compliance import audit_activity_figure, scorecard_figure
from dashboard.charts.offline import with_offline_policy
from dashboard.context import Context
from dashboard.errors import USER_ERRORS, VigilError
from dashboard.governance import approvals, cards
from dashboard.governance.policy import Evaluation, evaluate

AUDIT_EXCERPT = 200

# The printed page (A4 landscape, 10 mm margins) is 277 x 190 mm: 1047 x 718 CSS pixels, laid out that wide
# (report_pdf.PRINT_WIDTH_PX) so plotly draws the charts at the printed width.
#: Tallest chart that fits below the report's header on page 1.
FIRST_PAGE_CHART_PX = 460
#: Tallest chart that fits a page of its own with its caption.
PAGE_CHART_PX = 640
#: Fewest pixels per scorecard bar that keep its 12 px labels apart.
MIN_ROW_PX = 13
#: Fewest pixels per label line in print at all (an 8 px font); a chart that needs more than a page at this
#: pitch is printed taller than a page.
MIN_PRINT_ROW_PX = 9
#: A chart's height outside its rows: top margin, x axis ticks and title.
CHART_FRAME_PX = 110
_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1a1a1a; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-bottom: 1.5rem; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; table-layout: auto; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { background: #f4f4f4; }
td.t, td.n, span.t { white-space: nowrap; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.w { overflow-wrap: anywhere; }
th.h { width: 17ch; } th.p { width: 28%; }
td.h { word-break: break-all; font-family: ui-monospace, monospace; font-size: 0.95em; }
.pass { color: #2e7d32; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.status { padding: 0.6rem 1rem; border-radius: 6px; margin: 0.5rem 0 1rem; }
.ok { background: #e8f5e9; } .bad { background: #ffebee; } .override { background: #fff3e0; }
.card h3 { margin-top: 1.2rem; }
figure.chart { margin: 0 0 1rem; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { color: #555; font-size: 0.85rem; margin-top: 0.2rem; }
@page { size: A4 landscape; margin: 10mm; }
@media print { body { margin: 0; max-width: none; padding: 0; } table { font-size: 7.5pt; }
               .wide { overflow: visible; }
               tr, .status, figure.chart { break-inside: avoid; } h2 { break-after: avoid; } }
"""


UNAUTHENTICATED = "unauthenticated local reader (CLI)"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


#: A cell with an unbroken run longer than this (JSON, a URL) may break anywhere; others break between words
#: (twice as long in the first column, which names the row).
LONG_RUN = 40
#: A time window as the scorecard writes it, FROM..TO (one "..", no spaces).
_WINDOW = re.compile(r"(?:[^\s.]|\.(?!\.)){1,40}\.\.(?:[^\s.]|\.(?!\.)){1,40}")
#: A text column with a cell longer than this is prose (detail, details, justification).
PROSE_CELL = 60


def _table(frame: pd.DataFrame) -> str:
    """``frame`` as an escaped HTML table whose cells wrap by their kind (:func:`_column_kind`): timestamps
    and numbers stay on one line, hashes break anywhere in a fixed-width column, text breaks between words.
    The first column names the row and stays whole; identifiers in the others may break after a ``_``."""
    if frame.empty:
        return "<p><em>None.</em></p>"
    kinds = [_column_kind(frame, col) for col in frame.columns]
    kinds = [("k" if i == 0 and kind == "x" else kind) for i, kind in enumerate(kinds)]
    head = "".join(f"<th class='{_head_class(frame[col], kind)}'>{_e(col)}</th>"
                   for col, kind in zip(frame.columns, kinds, strict=True))
    rows = ["<tr>" + "".join(_td(value, kind) for kind, value in zip(kinds, row, strict=True)) + "</tr>"
            for row in frame.itertuples(index=False, name=None)]
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _column_kind(frame: pd.DataFrame, col: str) -> str:
    """``t`` time, ``n`` number, ``h`` hash, ``x`` text: how the column's cells may wrap in print."""
    series = frame[col]
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "t"
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return "n"
    if str(col).endswith("hash"):
        return "h"
    text = [str(v) for v in series if not _missing(v)]
    return "n" if text and all(_is_number(v) for v in text) else "x"


def _head_class(series: pd.Series, kind: str) -> str:
    """The header's class: its kind, plus ``p`` for prose (a cell over :data:`PROSE_CELL` characters), which
    gets a share of the width rather than what is left after the one-line columns."""
    longest = max((len(str(v)) for v in series if not _missing(v)), default=0)
    return f"{kind} p" if kind == "x" and longest > PROSE_CELL else kind


def _td(value: Any, kind: str) -> str:
    text = _cell_text(value)
    if kind not in ("x", "k"):
        return f"<td class='{kind}'>{_e(text)}</td>"
    if _WINDOW.fullmatch(text):  # a window FROM..TO: one whole bound per line, never a cut date
        return "<td class='x'>" + "..<wbr>".join(f"<span class='t'>{_e(b)}</span>" for b in text.split("..")) \
            + "</td>"
    body, runs = _e(text), text.split()
    if kind == "x" and len(runs) == 1:  # an identifier: may break after an underscore, only where it must
        body, runs = body.replace("_", "_<wbr>"), text.split("_")
    limit = LONG_RUN if kind == "x" else 2 * LONG_RUN
    return f"<td class='{'w' if any(len(r) > limit for r in runs) else kind}'>{body}</td>"


def _cell_text(value: Any) -> str:
    """A value as shown: empty when missing, a whole float without its ".0" (a count in a column with gaps)."""
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _print_height(natural: int, lines: int) -> int:
    """A chart's height in the report for ``lines`` lines of y labels (0: not a chart of rows): on page 1
    under the header when they stay :data:`MIN_ROW_PX` apart there, else at most a page, so
    ``break-inside: avoid`` can keep it whole; taller than a page only when even
    :data:`MIN_PRINT_ROW_PX` a line would not fit one (then it is legible, split)."""
    if lines * MIN_ROW_PX + CHART_FRAME_PX <= FIRST_PAGE_CHART_PX:
        return min(natural, FIRST_PAGE_CHART_PX)
    if lines * MIN_PRINT_ROW_PX + CHART_FRAME_PX <= PAGE_CHART_PX:
        return min(natural, PAGE_CHART_PX)
    return lines * MIN_PRINT_ROW_PX + CHART_FRAME_PX


def _label_lines(fig: Any) -> int:
    """Lines of the y tick labels a figure names one by one (a wrapped label spans several)."""
    labels = fig.layout.yaxis.ticktext or ()
    return sum(str(label).count("<br>") + 1 for label in labels)


def fit_to_print(fig: Any) -> Any:
    """``fig`` sized for the printed page (:func:`_print_height`), its y labels in a font that keeps them
    apart at that height (12 px down to :data:`MIN_PRINT_ROW_PX` - 1), with plotly's own template: the
    default in the app's process is Streamlit's, whose placeholder colours only Streamlit's frontend turns
    into colours (black bars here)."""
    lines = _label_lines(fig)
    height = _print_height(int(fig.layout.height or 450), lines)
    fig.update_layout(height=height, template="plotly")
    if lines:
        pitch = (height - CHART_FRAME_PX) / lines
        fig.update_yaxes(tickfont={"size": max(MIN_PRINT_ROW_PX - 1, min(12, math.floor(pitch) - 1))})
    return fig


def _fig(fig: Any, include_js: bool, caption: str) -> str:
    """A chart as a figure that prints whole on one page where it can (:func:`fit_to_print`, and
    ``break-inside: avoid`` in the CSS), with its caption."""
    plot = fit_to_print(fig).to_html(full_html=False, include_plotlyjs="inline" if include_js else False,
                                     config={"displayModeBar": False})
    return f"<figure class='chart'>{plot}<figcaption>{_e(caption)}</figcaption></figure>"


@progress.step("building the compliance report")
def build_report(ctx: Context, actor: Actor | None, model: str, version: str | None = None, window: str | None = None,
                 evaluation: Evaluation | None = None) -> str:
    """The report as an HTML string (``report.export``; the export is recorded in the audit trail).
    ``actor`` None: a read-only CLI run without credentials, recorded as an unauthenticated reader."""
    if actor is not None:
        require(actor, "report.export")
    by = f"{actor.name} ({actor.role})" if actor is not None else UNAUTHENTICATED
    ev = evaluation or evaluate(ctx, model, version=version, window=window)
    now = datetime.now(UTC)
    chain = anchor.status(ctx)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Vigil compliance report: {_e(model)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Compliance report: {_e(model)}</h1>",
             f"<div class='meta'>Version {_e(version or 'all versions')} · window {_e(ev.window)} · data version "
             f"{_e(ev.data_version)} · policies evaluated {_e(f'{ev.evaluated_at:%Y-%m-%d %H:%M:%S}')} UTC · "
             f"generated {_e(f'{now:%Y-%m-%d %H:%M:%S}')} UTC by {_e(by)}</div>"]
    verdict = ("<div class='status ok'>All blocking policies pass.</div>" if ev.passed else
               "<div class='status bad'>Blocking policies failing: "
               + _e(", ".join(r.name for r in ev.blocking_failures)) + "</div>")
    override = _override_note(ctx, model, version)
    parts += ["<h2>Policy scorecard</h2>", verdict, override]
    score = ev.frame()
    parts.append(_fig(scorecard_figure(score), include_js=True,
                      caption="Figure 1. Each policy's margin to its threshold, relative to the threshold "
                              "(below 0: violated). The table below holds the evidence."))
    shown = score.drop(columns=["evaluated_at", "data_version"]).copy()
    shown["value"] = [("" if v is None or v != v else f"{v:.4g}") for v in shown["value"]]
    parts.append(_table(shown))
    parts += ["<h2>Model card</h2>", _card_html(ctx, model, version)]
    parts += ["<h2>Approval history</h2>", _table(_approvals(ctx, model))]
    entries = audit.entries(ctx.store, target=model, limit=AUDIT_EXCERPT)
    status = (f"<div class='status ok'>Audit chain verified: {_e(chain.message)}</div>" if chain.ok and chain.anchored
              else f"<div class='status override'>Audit chain not anchored: {_e(chain.message)}</div>" if chain.ok
              else f"<div class='status bad'>Audit chain FAILED verification: {_e(chain.message)}</div>")
    parts += ["<h2>Audit trail</h2>", status,
              f"<p>Chain head: {chain.entries} entries, last hash <code>{_e(chain.last_hash)}</code>.</p>"]
    if not entries.empty:
        parts.append(_fig(audit_activity_figure(entries), include_js=False,
                          caption=f"Figure 2. Audit entries about {model} per day and action."))
    excerpt = entries.drop(columns=["prev_hash"]) if not entries.empty else entries
    parts += [f"<p>The latest {len(entries)} entries about {_e(model)}.</p>", _table(excerpt), "</body></html>"]
    audit.record(ctx.store, actor if actor is not None else UNAUTHENTICATED, "report.export", model,
                 {"version": version, "window": ev.window, "data_version": ev.data_version, "passed": ev.passed,
                  "chain_ok": chain.ok, "chain_anchored": chain.anchored})
    return with_offline_policy("\n".join(parts))


def export_report(ctx: Context, actor: Actor | None, model: str, version: str | None = None, window: str | None = None,
                  evaluation: Evaluation | None = None, fmt: str = "html") -> bytes:
    """The report as a file's bytes: ``html`` (UTF-8) or ``pdf`` (printed by headless Chromium)."""
    if fmt not in ("html", "pdf"):
        raise VigilError(f"report format '{fmt}' is not html or pdf")
    html = build_report(ctx, actor, model, version, window, evaluation)
    if fmt == "html":
        return html.encode("utf-8")
    from dashboard.governance.report_pdf import html_to_pdf

    return html_to_pdf(html)


def _override_note(ctx: Context, model: str, version: str | None) -> str:
    try:
        found = approvals.overrides(ctx, model)
    except USER_ERRORS:
        return ""
    if version and version in found:
        return (f"<div class='status override'><strong>Promoted by override.</strong> Justification: "
                f"{_e(found[version])}</div>")
    return ""


def _card_html(ctx: Context, model: str, version: str | None) -> str:
    try:
        v = version or cards.champion_version(ctx, model)
        if v is None:
            return "<p><em>No version chosen and no champion: no card to show.</em></p>"
        card = cards.load_card(ctx, model, v)
    except USER_ERRORS as exc:
        return f"<p><em>The model card could not be read: {_e(exc)}</em></p>"
    head = (f"<p>Version {_e(v)}, revision {card.revision}"
            + (f" by {_e(card.updated_by)} at {_e(card.updated_at)}" if card.revision else "")
            + f"; completeness {card.completeness():.0%}.</p>")
    return head + "<div class='card'>" + cards.to_html(card) + "</div>"


def _approvals(ctx: Context, model: str) -> pd.DataFrame:
    frame = approvals.history(ctx, model)
    if frame.empty:
        return frame
    return frame.drop(columns=["id"])
