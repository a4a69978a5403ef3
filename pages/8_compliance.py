"""Compliance: does each model meet its policies, who approved it, on what evidence, and is the record intact?"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard.access.roles import Actor, allowed
from dashboard.audit import anchor
from dashboard.audit import trail as audit
from dashboard.charts.compliance import (
    audit_activity_figure,
    scorecard_figure,
    verdict_history_figure,
    verdict_summary_figure,
)
from dashboard.errors import USER_ERRORS
from dashboard.governance import (
    approvals,
    cards,
    controls,
    evidence_pack,
    findings,
    gx_results,
    promotion,
    reports,
)
from dashboard.governance.policy import (
    NOT_APPLICABLE,
    Evaluation,
    evaluate,
    evaluation_history,
    save_evaluation,
)
from dashboard.ui import state
from dashboard.ui.format import PROSE_LIMIT, clip_frame, md_prose, md_text
from dashboard.ui.session import current_actor

st.title("Compliance")
st.caption("Policy scorecard with evidence, the model card, approvals and the tamper-evident audit trail.")

ALL = "all versions"


@st.cache_data(ttl=300, show_spinner="Evaluating policies…")
def _evaluate(model: str, version: str | None, window: str | None, data_version: str, marker: str) -> Evaluation:
    ev = evaluate(state.context(), model, version=version, window=window)
    save_evaluation(state.context(), ev, "compliance page")
    return ev


@st.cache_data(ttl=30, show_spinner=False)
def _versions(model: str, marker: int) -> pd.DataFrame:
    return state.context().registry.versions_df(model)


def _highlight(frame: pd.DataFrame) -> object:
    def colour(v: object) -> str:
        text = str(v)
        if text == "pass":
            return "color: #2e7d32; font-weight: 600"
        if text == "fail" or text.startswith("error"):
            return "color: #c62828; font-weight: 600"
        if text == NOT_APPLICABLE:
            return "color: #1565c0; font-style: italic"
        return "color: #757575"

    return frame.style.map(colour, subset=["verdict"])


def _scorecard(model: str, version: str | None, window: str | None, overrides: dict[str, str]) -> Evaluation | None:
    ev = state.guarded(_evaluate, model, version, window, state.data_version(model),
                       str(st.session_state.get("card_saved", 0)))
    if ev is None:
        return None
    if version and version in overrides:
        st.warning(f"**Version {md_text(version)} was promoted by override.** Justification: "
                   f"{md_prose(overrides[version])}",
                   icon=":material/gavel:")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Blocking failures", len(ev.blocking_failures))
    c2.metric("Warnings", len(ev.warnings))
    c3.metric("Not applicable yet", len(ev.not_applicable))
    c4.metric("Policies", len(ev.results))
    st.caption(f"Phase judged: **{ev.phase.replace('_', '-')}**: {ev.phase_note}.")
    if ev.passed:
        st.success("Every blocking policy passes.", icon=":material/check_circle:")
    else:
        st.error("Blocking policies failing: " + ", ".join(r.name for r in ev.blocking_failures),
                 icon=":material/block:")
    st.caption(f"Window {ev.window} · data version {ev.data_version} · evaluated {ev.evaluated_at:%Y-%m-%d %H:%M:%S} UTC")
    frame = ev.frame()
    left, right = st.columns([3, 1])
    left.plotly_chart(scorecard_figure(frame), width="stretch")
    right.plotly_chart(verdict_summary_figure(frame), width="stretch")
    shown = clip_frame(frame.drop(columns=["evaluated_at", "data_version"]), limit=PROSE_LIMIT)
    st.dataframe(_highlight(shown), hide_index=True, width="stretch")
    with st.expander("History of verdicts", icon=":material/history:"):
        history = state.guarded(evaluation_history, state.context(), model, version or "all")
        if history is not None:
            st.plotly_chart(verdict_history_figure(history), width="stretch")
            st.caption("Kept whenever policies are evaluated on new data (this page, `vigil check`, approvals).")
    _gx_evidence(model, version)
    return ev


def _gx_evidence(model: str, version: str | None) -> None:
    """Imported Great Expectations validation results: evidence a ``gx_suite:<name>`` policy judges."""
    st.markdown("**Great Expectations evidence**")
    runs = state.guarded(gx_results.runs, state.context(), model, version)
    if runs is None:
        return
    if runs.empty:
        st.caption("No Great Expectations validation results imported for this model yet: "
                   "`vigil quality import RESULT.json --model M` adds one (see the Data quality page).")
        return
    st.dataframe(clip_frame(runs, limit=PROSE_LIMIT), hide_index=True, width="stretch",
                 column_config={"success": st.column_config.CheckboxColumn("succeeded")})


def _card(model: str, version: str | None, actor: Actor) -> None:
    ctx = state.context()
    v = version or state.guarded(cards.champion_version, ctx, model)
    if v is None:
        st.info("Choose a version (or set a champion) to see its model card.")
        return
    card = state.guarded(cards.load_card, ctx, model, v)
    if card is None:
        return
    flash = st.session_state.pop("card_flash", None)
    if flash:
        st.success(md_text(flash), icon=":material/check_circle:")
    st.caption(f"Version {md_text(v)} · revision {card.revision}"
               + (f" by {md_text(card.updated_by)} at {md_text(card.updated_at)}" if card.revision
                  else f" (from {md_text(card.updated_by)}, not yet saved in Vigil)" if card.updated_by
                  else " (not written yet)")
               + f" · completeness {card.completeness():.0%}")
    for key, title in cards.SECTIONS.items():
        st.markdown(f"#### {title}")
        _card_section(card.text(key))
    if allowed(actor, "card.edit"):
        with st.expander("Edit the model card", icon=":material/edit:"), st.form(f"card_{model}_{v}"):
            edited = {k: st.text_area(title, value=card.sections.get(k, ""), key=f"card_{k}")
                      for k, title in cards.SECTIONS.items() if k in cards.EDITABLE}
            if st.form_submit_button("Save card", type="primary"):
                saved = state.guarded(cards.save_card, ctx, actor, model, v, edited, expected_revision=card.revision)
                if saved is not None:
                    st.session_state["card_saved"] = st.session_state.get("card_saved", 0) + 1
                    # Shown after the rerun (a message shown now is wiped by it), as approval_flash is.
                    st.session_state["card_flash"] = (f"Saved revision {saved.revision} of the model card of "
                                                      f"version {v}.")
                    st.rerun()
    with st.expander("History"):
        revisions = state.guarded(cards.history, ctx, model, v) or []
        st.dataframe(pd.DataFrame([{"revision": c.revision, "by": c.updated_by, "at": c.updated_at,
                                    "completeness": f"{c.completeness():.0%}"} for c in reversed(revisions)]),
                     hide_index=True)


def _card_section(text: str) -> None:
    """A card section is Markdown from its authors: rendered by the report's safe renderer (raw HTML as
    text, no images, links only to http(s)), which Streamlit sanitises once more (DOMPurify)."""
    if text:
        st.html(cards.markdown_to_html(text))
    else:
        st.markdown("_Not written yet._")


def _requests(model: str, actor: Actor) -> None:
    """Open promotion requests with the requester's note; a manager rejects one with a reason here."""
    ctx = state.context()
    found = state.guarded(promotion.requests, ctx, model) or []
    pending = [r for r in found if r.state == promotion.OPEN]
    for r in pending:
        who = state.guarded(approvals.trainer, ctx, model, r.version)
        st.info(f"**Promotion of version {md_text(r.version)} requested** by {md_text(r.requested_by)} at "
                f"{r.requested_at:%Y-%m-%d %H:%M} UTC. Note: {md_prose(r.note) if r.note else '(none)'}"
                + (f" · trained by {md_text(who.name or 'unknown')} ({md_text(who.source)})" if who else ""),
                icon=":material/pending:")
        if allowed(actor, "promotion.reject"):
            with st.form(f"reject_{r.version}", clear_on_submit=True):
                reason = st.text_input(f"Reason to reject version {r.version}", key=f"reject_reason_{r.version}")
                if (st.form_submit_button("Reject the request", icon=":material/block:")
                        and state.guarded(promotion.reject, ctx, actor, model, r.version, reason) is not None):
                        st.session_state["approval_flash"] = f"Promotion of version {r.version} rejected."
                        st.rerun()
    if found:
        with st.expander("Promotion requests", icon=":material/history:"):
            st.dataframe(clip_frame(promotion.requests_frame(found), limit=PROSE_LIMIT), hide_index=True,
                         width="stretch")


def _approvals(model: str, versions: pd.DataFrame, actor: Actor, overrides: dict[str, str]) -> None:
    ctx = state.context()
    flash = st.session_state.pop("approval_flash", None)
    if flash:
        st.success(flash)
    champion = state.guarded(approvals.current_champion, ctx, model)
    st.write(f"Current champion: **version {md_text(champion)}**" if champion else "No champion yet.")
    _requests(model, actor)
    if allowed(actor, "model.promote"):
        candidates = [str(v) for v in versions.get("version", []) if str(v) != champion]
        if candidates:
            with st.form("promote", clear_on_submit=True):
                st.markdown("**Promote a candidate**")
                chosen = st.selectbox("Version to promote", candidates)
                note = st.text_input("Decision note", help="Kept with the promotion request and the audit entry.")
                justification = st.text_area(
                    "Override justification",
                    help=f"Only needed when a blocking policy fails: at least {approvals.MIN_JUSTIFICATION} "
                         "characters, shown wherever the version appears and kept in the audit trail.")
                if st.form_submit_button("Promote to champion", type="primary"):
                    result = state.guarded(approvals.approve, ctx, actor, model, chosen, justification, None, note)
                    if result is not None:
                        st.session_state["approval_flash"] = (f"Version {chosen} is now the champion"
                                                              + (" (override recorded)." if result.overridden
                                                                 else "."))
                        _versions.clear()
                        st.rerun()
        if champion:
            with st.form("rollback", clear_on_submit=True):
                st.markdown("**Roll back to the previous champion**")
                reason = st.text_input("Reason for the rollback", key="rollback_reason")
                sure = st.checkbox(f"Yes, move the champion away from version {champion}", key="rollback_confirm")
                if st.form_submit_button("Roll back", icon=":material/undo:"):
                    if not sure:
                        st.error("Tick the confirmation to roll back.")
                    else:
                        result = state.guarded(approvals.rollback, ctx, actor, model, reason)
                        if result is not None:
                            st.session_state["approval_flash"] = f"Champion moved back to version {result.version}."
                            _versions.clear()
                            st.rerun()
    else:
        st.info("Only managers promote or roll back versions.")
    hist = state.guarded(approvals.history, ctx, model)
    if hist is not None and not hist.empty:
        st.markdown("**Approval history**")
        if overrides:
            st.warning("Promoted by override: " + "; ".join(f"version {md_text(v)}: {md_prose(j)}"
                                                            for v, j in overrides.items()),
                       icon=":material/gavel:")
        st.dataframe(clip_frame(hist.drop(columns=["id"]), limit=PROSE_LIMIT), hide_index=True, width="stretch")
    else:
        st.caption("No promotions or rollbacks recorded yet.")


def _audit_trail(model: str) -> None:
    ctx = state.context()
    result = state.guarded(anchor.status, ctx)
    if result is not None:
        if not result.ok:
            st.error(f"Chain broken: {md_prose(result.message)}", icon=":material/report:")
        elif result.anchored:
            st.success(f"Chain intact: {md_prose(result.message)}", icon=":material/verified:")
        else:
            st.warning(md_prose(result.message[:1].upper() + result.message[1:]), icon=":material/gpp_maybe:")
        for note in result.notes:
            st.caption(md_prose(note))
    c1, c2, c3, c4 = st.columns(4)
    who = c1.text_input("Actor", key="audit_actor")
    action = c2.text_input("Action starts with", key="audit_action")
    target = c3.text_input("Target", value=model, key="audit_target")
    days = c4.date_input("Between", value=(), key="audit_days")
    since = until = None
    if isinstance(days, tuple) and len(days) == 2:
        since, until = datetime.combine(days[0], time()), datetime.combine(days[1], time()) + timedelta(days=1)
    entries = state.guarded(audit.entries, ctx.store, actor=who or None, action=action or None,
                            target=target or None, since=since, until=until, limit=2000)
    if entries is None:
        return
    if entries.empty:
        st.caption("No audit entries match.")
        return
    st.plotly_chart(audit_activity_figure(entries), width="stretch")
    st.dataframe(clip_frame(entries), hide_index=True, width="stretch")


@st.cache_data(ttl=300, show_spinner="Judging the controls…")
def _control_status(model: str, version: str | None, data_version: str, marker: str,
                    _evaluation: Evaluation | None) -> list[controls.PackStatus]:
    return controls.all_packs_status(state.context(), model, version, evaluation=_evaluation)


def _controls(model: str, version: str | None, ev: Evaluation | None, actor: Actor) -> None:
    """Each pack's controls for the version (the champion when all versions are chosen), with evidence."""
    st.caption("Each control of the configured packs (EU AI Act, NIST AI RMF or your own), judged from the records "
               "above: policy verdicts, the card, approvals, the gate, lineage, the audit trail, findings.")
    if not st.toggle("Judge the controls of this version", key="compliance_judge_controls"):
        return
    marker = f"{st.session_state.get('card_saved', 0)}.{st.session_state.get('controls_marker', 0)}"
    statuses = state.guarded(_control_status, model, version, state.data_version(model), marker, ev)
    if not statuses:
        return
    for ps in statuses:
        counts = ps.counts()
        st.markdown(f"#### {md_text(ps.pack.title)}")
        st.caption(f"{md_text(ps.pack.source)} · version {md_text(ps.version)} · risk tier "
                   f"{md_text(ps.risk_tier or 'not recorded (every control judged)')} · "
                   + " · ".join(f"{n} {s}" for s, n in counts.items()))
        if ps.passed:
            st.success("Every required control is met or not applicable.", icon=":material/check_circle:")
        else:
            st.error("Required controls not met: " + ", ".join(md_text(c.control.ref) for c in ps.failing),
                     icon=":material/block:")
        st.dataframe(clip_frame(ps.frame(), limit=PROSE_LIMIT), hide_index=True, width="stretch")
        for c in ps.controls:
            with st.expander(md_text(f"{c.control.ref}: {c.control.title} ({c.status})")):
                st.caption(md_prose(c.control.obligation))
                if c.reason:
                    st.write(md_prose(c.reason))
                for e in c.evidence:
                    when = f" · {e.at:%Y-%m-%d %H:%M} UTC" if e.at else ""
                    st.markdown(f"- **{md_text(e.status)}**: {md_text(e.label)}: {md_prose(e.summary)}{when}"
                                + (f" · {md_text(e.link)}" if e.link else "")
                                + (f"  \n  to close: {md_prose(e.gap)}" if e.gap else ""))
        if allowed(actor, "control.tailor"):
            _tailor_form(model, ps, actor)


def _tailor_form(model: str, ps: controls.PackStatus, actor: Actor) -> None:
    with st.form(f"tailor_{ps.pack.id}", clear_on_submit=True):
        st.markdown("**Tailor a control** (not applicable to this model, with a justification; audited)")
        ids = [c.control.id for c in ps.controls]
        chosen = st.selectbox("Control", ids, key=f"tailor_control_{ps.pack.id}")
        restore = st.checkbox("Restore it (make it apply again)", key=f"tailor_restore_{ps.pack.id}")
        why = st.text_area("Justification", key=f"tailor_why_{ps.pack.id}",
                           help=f"At least {controls.MIN_JUSTIFICATION} characters.")
        if st.form_submit_button("Record the decision") and state.guarded(
                controls.tailor, state.context(), actor, model, ps.pack.id, chosen, why, restore) is not None:
            st.session_state["controls_marker"] = st.session_state.get("controls_marker", 0) + 1
            st.rerun()


def _findings(model: str, version: str | None, actor: Actor) -> None:
    ctx = state.context()
    flash = st.session_state.pop("findings_flash", None)
    if flash:
        st.success(md_text(flash), icon=":material/check_circle:")
    found = state.guarded(findings.findings, ctx, model, version)
    if found:
        st.dataframe(clip_frame(findings.frame(found), limit=PROSE_LIMIT), hide_index=True, width="stretch")
    elif found is not None:
        st.caption("No findings recorded" + (f" on version {md_text(version)}." if version else "."))
    st.caption("An open high or critical finding fails the blocking policy open_findings: it blocks promotion.")
    if allowed(actor, "finding.record") and version:
        with st.form("finding_add", clear_on_submit=True):
            st.markdown(f"**Record a finding on version {md_text(version)}**")
            title = st.text_input("What was found")
            c1, c2, c3 = st.columns(3)
            severity = c1.selectbox("Severity", findings.SEVERITIES)
            owner = c2.text_input("Owner")
            due = c3.date_input("Due", value=None)
            control = st.text_input("Control (pack:control, optional)", placeholder="eu-ai-act:art-10")
            if st.form_submit_button("Record the finding", type="primary"):
                done = state.guarded(findings.record_finding, ctx, actor, model, version, title, severity, owner,
                                     due, control)
                if done is not None:
                    st.session_state["findings_flash"] = f"Finding #{done.id} recorded."
                    st.rerun()
    elif allowed(actor, "finding.record"):
        st.info("Choose a version to record a finding on it.")
    open_ones = [f for f in found or [] if f.state == findings.OPEN]
    if allowed(actor, "finding.resolve") and open_ones:
        with st.form("finding_resolve", clear_on_submit=True):
            st.markdown("**Resolve a finding**")
            fid = st.selectbox("Finding", [f.id for f in open_ones],
                               format_func=lambda i: f"#{i}: " + next(f.title for f in open_ones if f.id == i)[:80])
            resolution = st.text_input("What was done")
            if st.form_submit_button("Resolve") and state.guarded(
                    findings.resolve_finding, ctx, actor, fid, resolution) is not None:
                st.session_state["findings_flash"] = f"Finding #{fid} resolved."
                st.rerun()


def _evidence_pack(model: str, version: str | None, window: str | None, actor: Actor) -> None:
    if not allowed(actor, "evidence.export"):
        return
    st.write("An evidence pack: the report (HTML and PDF), control status, card, gate evidence, policy history, "
             "the audit excerpt with its chain and checkpoint, and a manifest of SHA-256 digests; check it with "
             "`vigil evidence verify pack.zip`.")
    if st.button("Build the evidence pack", icon=":material/inventory:"):
        with st.spinner("Building the evidence pack…"):
            built = state.guarded(evidence_pack.build_pack, state.context(), actor, model, version, window)
        if built is not None:
            st.session_state["evidence_pack"] = built
    if st.session_state.get("evidence_pack"):
        data, digest = st.session_state["evidence_pack"]
        st.caption(f"Pack digest {digest} (recorded in the audit trail).")
        st.download_button("Download the evidence pack", data, file_name=f"vigil-evidence-{model}-"
                           f"{version or 'champion'}.zip", mime="application/zip")


def _export(model: str, version: str | None, window: str | None, ev: Evaluation | None, actor: Actor) -> None:
    if not allowed(actor, "report.export"):
        st.info("Your role cannot export reports.")
        return
    st.write("A standalone HTML file (or a PDF of it): scorecard with evidence, charts, the model card, "
             "approvals and the audit excerpt with the chain status.")
    html_col, pdf_col = st.columns(2)
    name = f"vigil-compliance-{model}-{version or 'all'}"
    if html_col.button("Export report", icon=":material/download:"):
        report = state.guarded(reports.export_report, state.context(), actor, model, version, window, ev)
        if report is not None:
            st.session_state["report_html"] = report.decode("utf-8")
    if pdf_col.button("Export PDF", icon=":material/picture_as_pdf:"):
        with st.spinner("Printing the report with Chromium…"):
            pdf = state.guarded(reports.export_report, state.context(), actor, model, version, window, ev, "pdf")
        if pdf is not None:
            st.session_state["report_pdf"] = pdf
    if st.session_state.get("report_html"):
        html_col.download_button("Download the report (HTML)", st.session_state["report_html"],
                                 file_name=f"{name}.html", mime="text/html")
    if st.session_state.get("report_pdf"):
        pdf_col.download_button("Download the report (PDF)", st.session_state["report_pdf"],
                                file_name=f"{name}.pdf", mime="application/pdf")


actor = current_actor()
model = state.selected_model()
if actor is None:
    st.warning("Sign in to see compliance.")
elif model is not None and state.guarded(state.context) is not None:
    marker = int(st.session_state.get("versions_marker", 0))
    versions = state.guarded(_versions, model, marker)
    if versions is None:
        versions = pd.DataFrame()
    names = [ALL] + [str(v) for v in versions.get("version", [])]
    col1, col2 = st.columns(2)
    try:
        overrides = approvals.overrides(state.context(), model)
    except USER_ERRORS as exc:
        st.error(md_prose(exc))
        overrides = {}
    picked = col1.selectbox("Version", names, index=1 if len(names) > 1 else 0, key="compliance_version",
                            format_func=lambda v: f"{v} (promoted by override)" if v in overrides else v)
    window_text = col2.text_input("Window (7d, 24h or FROM..TO; empty = each policy's own)", key="compliance_window")
    version = None if picked == ALL else picked
    window = window_text.strip() or None
    t_score, t_controls, t_findings, t_card, t_appr, t_audit, t_export = st.tabs(
        ["Scorecard", "Controls", "Findings", "Model card", "Approvals", "Audit trail", "Export"])
    with t_score:
        evaluation = _scorecard(model, version, window, overrides)
    with t_controls:
        _controls(model, version, evaluation, actor)
    with t_findings:
        _findings(model, version, actor)
    with t_card:
        _card(model, version, actor)
    with t_appr:
        _approvals(model, versions, actor, overrides)
    with t_audit:
        _audit_trail(model)
    with t_export:
        _export(model, version, window, evaluation, actor)
        _evidence_pack(model, version, window, actor)
