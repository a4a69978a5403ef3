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
from datetime import UTC, datetime
from typing import Any

import pandas as pd

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

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1a1a1a; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-bottom: 1.5rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.pass { color: #2e7d32; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.status { padding: 0.6rem 1rem; border-radius: 6px; margin: 0.5rem 0 1rem; }
.ok { background: #e8f5e9; } .bad { background: #ffebee; } .override { background: #fff3e0; }
.card h3 { margin-top: 1.2rem; }
td { overflow-wrap: anywhere; }
@page { size: A4 landscape; margin: 10mm; }
@media print { body { margin: 0; max-width: none; padding: 0; } table { font-size: 7.5pt; }
               tr, .status { break-inside: avoid; } h2 { break-after: avoid; } }
"""


UNAUTHENTICATED = "unauthenticated local reader (CLI)"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>None.</em></p>"
    return str(frame.to_html(index=False, escape=True, na_rep="", border=0))


def _fig(fig: Any, include_js: bool) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs="inline" if include_js else False,
                           config={"displayModeBar": False}))


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
    parts.append(_fig(scorecard_figure(score), include_js=True))
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
        parts.append(_fig(audit_activity_figure(entries), include_js=False))
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
