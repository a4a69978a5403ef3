"""Retraining: start a retrain, follow the job live, compare the candidate with the champion, request promotion."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.charts.retraining import comparison_figure, latency_figure
from dashboard.governance import promotion
from dashboard.lifecycle import gate, jobs
from dashboard.ui import state
from dashboard.ui.format import clip_frame, md_prose, md_text
from dashboard.ui.session import current_actor

st.title("Retraining")
st.caption("Retrain in the background (the app stays usable), follow the job's log, and compare the new "
           "candidate with the champion on the same rows before asking a manager to promote it.")

POLL_SECONDS = 2.0


@st.cache_data(ttl=600, show_spinner="Reading the gate evidence from MLflow…")
def _evidence(uri: str, model: str, version: str, evaluated_at: str | None) -> dict[str, Any] | None:
    return gate.load_evidence(state.context(), model, version)


@st.cache_data(ttl=30, show_spinner="Reading versions from MLflow…")
def _candidates(uri: str, model: str, stamp: str) -> tuple[str | None, list[gate.CandidateInfo]]:
    return gate.candidates(state.context(), model)


def _retrain_form(model: str) -> None:
    ctx = state.context()
    spec = ctx.model(model).retrain
    with st.form("retrain"):
        st.subheader("Retrain")
        left, mid, right = st.columns(3)
        include = left.checkbox("Include new labels", value=spec.include_labels,
                                help="Add production rows that have ground truth or Label Studio labels.")
        reweigh = mid.checkbox("Reweighing", value=spec.reweighing,
                               help="Weigh training rows so group and outcome are independent (AIF360 Reweighing).")
        runners = ["local", "webhook", "github"]
        runner = right.selectbox("Runner", runners, index=runners.index(spec.runner),
                                 help="local: the model's training_command on this machine; webhook / github: "
                                      "start training elsewhere (configured in [models.<name>.retrain]).")
        with st.expander("Advanced"):
            rows = st.number_input("Synthetic training rows (demo training command; 0 = its default)",
                                   min_value=0, value=0, step=1000)
        submitted = st.form_submit_button("Retrain", type="primary", icon=":material/model_training:")
    if submitted:
        actor = current_actor()
        if actor is None:
            st.error("Sign in first.")
            return
        extra = {"rows": int(rows)} if rows else {}
        job = state.guarded(jobs.start_retrain, ctx, actor, model, include_labels=include, reweighing=reweigh,
                            runner=runner, extra=extra)
        if job is not None:
            st.session_state["retrain_job"] = job.id
            st.session_state["retrain_active"] = sorted({*st.session_state.get("retrain_active", ()), job.id})
            st.success(f"Job {job.id} started.")


@st.fragment(run_every=POLL_SECONDS)
def _jobs_panel(model: str) -> None:
    ctx = state.context()
    found = state.guarded(jobs.list_jobs, ctx, model, 20)
    if found is None:
        return
    active = {j.id for j in found if j.active}
    was_active = set(st.session_state.get("retrain_active", ()))
    st.session_state["retrain_active"] = sorted(active)
    if was_active - active:  # a job just ended: refresh the comparison below and show its candidate
        _candidates.clear()
        st.session_state.pop("candidate_pick", None)
        st.rerun(scope="app")
    st.subheader("Jobs")
    if not found:
        st.info("No retraining job yet for this model.")
        return
    st.dataframe(clip_frame(jobs.jobs_frame(found)), hide_index=True, width="stretch",
                 column_config={"created": st.column_config.DatetimeColumn("created (UTC)")})
    ids = [j.id for j in found]
    chosen = st.session_state.get("retrain_job")
    job = next((j for j in found if j.id == chosen), found[0])
    pick = st.selectbox("Job", ids, index=ids.index(job.id), key="retrain_job_pick",
                        format_func=lambda i: f"{i} ({next(j.state for j in found if j.id == i)})")
    job = next(j for j in found if j.id == pick)
    st.session_state["retrain_job"] = job.id
    head, cancel_col = st.columns([5, 1])
    icon = {"succeeded": ":material/check_circle:", "failed": ":material/error:",
            "cancelled": ":material/cancel:"}.get(job.state, ":material/hourglass_top:")
    head.markdown(f"{icon} Job **{job.id}**: **{job.state}**"
                  + (f" · {job.duration_s:.0f} s" if job.duration_s is not None else "")
                  + (f" · {md_prose(job.message)}" if job.message else ""))
    if job.active and cancel_col.button("Cancel", key=f"cancel_{job.id}", icon=":material/stop_circle:"):
        actor = current_actor()
        if actor is not None and state.guarded(jobs.cancel, ctx, actor, job.id) is not None:
            st.rerun(scope="app")
    st.code(jobs.tail_log(job) or "(no output yet)", language="text", wrap_lines=True)


def _comparison(model: str) -> None:
    ctx = state.context()
    uri = ctx.settings.mlflow_tracking_uri
    st.subheader("Candidate vs champion")
    latest = state.guarded(jobs.list_jobs, ctx, model, 1, False)
    stamp = f"{latest[0].id}:{latest[0].state}" if latest else ""  # a finished job refreshes the list at once
    got = state.guarded(_candidates, uri, model, stamp)
    if got is None:
        return
    champion, cands = got
    if not cands:
        st.info("No candidate version yet: retrain to produce one.")
        return
    labels = {c.version: f"v{c.version}" + (f" ({', '.join(c.aliases)})" if c.aliases else "")
              + (f" · gate {c.verdict}" if c.verdict else " · not evaluated") for c in cands}
    version = st.selectbox("Candidate", list(labels), format_func=labels.__getitem__, key="candidate_pick")
    cand = next(c for c in cands if c.version == version)
    st.caption(f"Champion: v{md_text(champion)}" if champion
               else "No champion yet: the gate checks absolute thresholds only.")
    if cand.verdict is None:
        st.info("This version has not been through the gate yet.")
        if st.button("Run the gate", icon=":material/rule:"):
            actor = current_actor()
            if actor is not None:
                with st.spinner("Scoring candidate and champion on the same rows…"):
                    if state.guarded(gate.run_gate_as, ctx, actor, model, version) is not None:
                        _candidates.clear()
                        st.rerun()
        return
    evidence = state.guarded(_evidence, uri, model, version, cand.evaluated_at)
    if evidence is None:
        return
    if evidence["verdict"] == "pass":
        st.success(f"v{md_text(version)} passes the gate against v{md_text(evidence.get('champion') or '-')} "
                   f"(evaluated {md_text(evidence['evaluated_at'])}).", icon=":material/check_circle:")
    else:
        st.error(f"v{md_text(version)} fails the gate: it stays a candidate "
                 f"(evaluated {md_text(evidence['evaluated_at'])}).", icon=":material/block:")
    st.dataframe(gate.datasets_frame(evidence), hide_index=True, width="stretch")
    st.caption(gate.disjointness_text(evidence))
    comp = gate.comparison_frame(evidence)
    if len(comp):
        st.plotly_chart(comparison_figure(comp), width="stretch")
        st.dataframe(comp, hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%.4f")
                                    for k in ("champion", "candidate", "delta")})
        with st.expander("Batch prediction latency"):
            st.plotly_chart(latency_figure(comp), width="stretch")
    st.write("**Policies**")
    st.dataframe(gate.policies_frame(evidence), hide_index=True, width="stretch")
    _promotion(model, version, evidence["verdict"] == "pass")


def _promotion(model: str, version: str, passed: bool) -> None:
    """The version's promotion request: ask for it, follow it, withdraw it."""
    ctx = state.context()
    found = state.guarded(promotion.requests, ctx, model) or []
    mine = [r for r in found if r.version == version]
    latest = mine[0] if mine else None
    if latest is not None and latest.state == promotion.OPEN:
        st.info(f"Promotion requested by {md_text(latest.requested_by)} at {latest.requested_at:%Y-%m-%d %H:%M} UTC"
                + (f" (note: {md_prose(latest.note)})" if latest.note else "")
                + ". A manager decides on the Compliance page.",
                icon=":material/pending:")
        if st.button("Withdraw the request", icon=":material/undo:", key=f"withdraw_{version}"):
            actor = current_actor()
            if actor is not None and state.guarded(promotion.withdraw, ctx, actor, model, version) is not None:
                _candidates.clear()
                st.rerun()
        return
    if latest is not None:
        st.caption(f"Last request {latest.state} by {md_text(latest.decided_by or '-')}"
                   + (f": {md_prose(latest.decision_note)}" if latest.decision_note else ""))
    if passed:
        with st.form("request_promotion", clear_on_submit=True):
            note = st.text_input("Note for the approver", placeholder="why this candidate should serve")
            if st.form_submit_button("Request promotion", type="primary", icon=":material/upgrade:"):
                actor = current_actor()
                if actor is not None and state.guarded(promotion.request_promotion, ctx, actor, model, version,
                                                        note) is not None:
                    _candidates.clear()
                    st.rerun()


ctx = state.guarded(state.context)
model = state.selected_model() if ctx is not None else None
if ctx is not None and model is not None:
    _retrain_form(model)
    _jobs_panel(model)
    _comparison(model)
    st.caption(f"Job logs are kept in {ctx.settings.jobs_dir}; job times are UTC.")
