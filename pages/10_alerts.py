"""Alerts: what is failing now, since when, who acknowledged it?"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from dashboard.access.roles import Actor, allowed
from dashboard.alerting import actions, queries
from dashboard.alerting.delivery import describe
from dashboard.alerting.signals import EVENT_KINDS
from dashboard.ui import state
from dashboard.ui.format import PROSE_LIMIT, clip_frame, fmt_time, md_prose, md_text
from dashboard.ui.nav import PAGES, PageSpec, page_explaining
from dashboard.ui.session import current_actor

SILENCE_CHOICES = {"1 hour": 3600, "4 hours": 4 * 3600, "1 day": 86400, "1 week": 7 * 86400}
TABS = {"open": "Open", "acknowledged": "Acknowledged / silenced", "resolved": "Resolved"}
SHOWN_PER_TAB = 50

st.title("Alerts")
st.caption("Failing blocking policies, SLO breaches, retrain rules that fired, failed jobs and changes made "
           "outside Vigil: one alert per failure while it keeps failing, with its evidence, history and "
           "every notification sent.")


def _explaining(alert: dict[str, Any], role: str) -> PageSpec | None:
    metric, file = queries.explained_by(alert)
    if metric:
        spec = page_explaining(metric, role)
        if spec is not None:
            return spec
    spec = next((p for p in PAGES if p.file == file), None)
    return spec if spec is not None and role in spec.roles else None


def _link(spec: PageSpec) -> None:
    try:
        st.page_link(str(spec.path), label=f"Explained on {spec.title}", icon=spec.icon)
    except StreamlitAPIException:  # the page runs alone (tests), outside st.navigation
        st.markdown(f"[Explained on {spec.title}](/{spec.url_path})")


def _actions(alert: dict[str, Any], actor: Actor, now: datetime) -> None:
    ctx, alert_id = state.context(), int(alert["id"])
    can_ack, can_silence = allowed(actor, "alert.acknowledge"), allowed(actor, "alert.silence")
    if alert["state"] == "resolved" or not (can_ack or can_silence):
        return
    with st.form(f"alert_{alert_id}", clear_on_submit=True):
        note = st.text_input("Note", key=f"note_{alert_id}", help="Kept in the alert's history and the audit trail.")
        length = st.selectbox("Silence for", list(SILENCE_CHOICES), key=f"for_{alert_id}")
        ack, silence, resolve = st.columns(3)
        done = None
        if can_ack and ack.form_submit_button("Acknowledge", icon=":material/done:"):
            done = state.guarded(actions.acknowledge, ctx, actor, alert_id, note, now) and "acknowledged"
        if can_silence and silence.form_submit_button("Silence", icon=":material/notifications_off:"):
            done = state.guarded(actions.silence, ctx, actor, alert_id, SILENCE_CHOICES[length], note, now) \
                and f"silenced for {length}"
        if (alert["kind"] in EVENT_KINDS and allowed(actor, "alert.resolve")
                and resolve.form_submit_button("Resolve", icon=":material/check_circle:")):
            done = state.guarded(actions.resolve, ctx, actor, alert_id, note, now) and "resolved"
        if done:
            st.session_state["alerts_flash"] = f"Alert #{alert_id} {done}."
            st.rerun()


def _alert(found: queries.AlertDetail, actor: Actor, now: datetime) -> None:
    a = found.alert
    scope = f"{a['model']} v{a['version']}" if a["version"] else str(a["model"])
    label = (f"#{a['id']} · {a['severity']} · {scope} · {a['kind']} {a['subject']} · "
             f"seen {a['count']}× since {fmt_time(a['first_seen'])}")
    with st.expander(md_text(label), icon=":material/error:" if a["severity"] == "blocking" else None):
        st.markdown(md_prose(a["summary"]))
        line = f"**State:** {md_text(a['state'])} · **last seen** {fmt_time(a['last_seen'])}"
        if a["acked_by"]:
            line += f" · by {md_text(a['acked_by'])} at {fmt_time(a['acked_at'])}"
        if a["silenced_until"] is not None and a["state"] == "silenced":
            line += f" · silenced until {fmt_time(a['silenced_until'])}"
        if a["resolved_at"] is not None:
            line += f" · resolved {fmt_time(a['resolved_at'])} by {md_text(a['resolved_by'])}"
        st.markdown(line)
        if a["note"]:
            st.markdown(f"**Note:** {md_prose(a['note'])}")
        spec = _explaining(a, actor.role)
        if spec is not None:
            _link(spec)
        evidence = queries.evidence_frame(a)
        if len(evidence):
            st.markdown("**Evidence** (latest observation)")
            st.dataframe(clip_frame(evidence, limit=PROSE_LIMIT), hide_index=True, width="stretch")
        st.markdown("**History**")
        st.dataframe(clip_frame(found.history.drop(columns=["evidence"]), limit=PROSE_LIMIT), hide_index=True,
                     width="stretch")
        st.markdown("**Deliveries**")
        if found.deliveries.empty:
            st.caption("No notification sent yet (no route takes it, or it waits for `vigil alerts deliver` / "
                       "`vigil serve`).")
        else:
            st.dataframe(clip_frame(found.deliveries, limit=PROSE_LIMIT), hide_index=True, width="stretch")
        _actions(a, actor, now)


actor = current_actor()
ctx = state.guarded(state.context)
if actor is None:
    st.warning("Sign in to see the alerts.")
elif ctx is not None:
    flash = st.session_state.pop("alerts_flash", None)
    if flash:
        st.success(flash)
    models = sorted(ctx.settings.models)
    chosen = st.selectbox("Model", ["All models", *models], key="alerts_model")
    model = None if chosen == "All models" else chosen
    now = datetime.now(UTC)
    frames = {group: state.guarded(queries.alerts, ctx, now, model=model, state=group) for group in TABS}
    tabs = st.tabs([f"{title} ({0 if frames[g] is None else len(frames[g])})" for g, title in TABS.items()])
    for tab, group in zip(tabs, TABS, strict=True):
        with tab:
            frame = frames[group]
            if frame is None or frame.empty:
                st.caption(f"No {TABS[group].lower()} alerts.")
                continue
            if len(frame) > SHOWN_PER_TAB:
                st.caption(f"The {SHOWN_PER_TAB} most recently seen of {len(frame)}; `vigil alerts list` has all.")
            shown = [int(i) for i in frame["id"].head(SHOWN_PER_TAB)]
            found = state.guarded(queries.details, ctx, shown, now) or {}
            for alert_id in shown:
                if alert_id in found:
                    _alert(found[alert_id], actor, now)
    owed = state.guarded(queries.pending_targets, ctx)
    if owed is not None and len(owed):
        st.warning(f"{len(owed)} notification(s) not delivered yet: they are retried with back-off.",
                   icon=":material/schedule_send:")
        st.dataframe(clip_frame(owed, limit=PROSE_LIMIT), hide_index=True, width="stretch")
    routes = describe(ctx.settings.alerts)
    with st.expander("Routes", icon=":material/alt_route:"):
        if routes:
            st.dataframe(clip_frame(pd.DataFrame(routes)), hide_index=True, width="stretch")
        else:
            st.caption("No route is configured: alerts are kept here but sent nowhere. Add [[alerts.routes]] "
                       "to vigil.toml (see the README, section Alerts).")
