"""Annotation queue: which samples should people label next? Send them to Label Studio, sync labels back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from connectors.labelstudio import LabelStudioClient
from connectors.windows import Window
from dashboard.access.roles import Actor
from dashboard.charts.annotation import (
    STATE_LABELS,
    annotator_figure,
    queue_figure,
    uncertainty_figure,
)
from dashboard.errors import USER_ERRORS
from dashboard.learning import accounts, annotation
from dashboard.learning.selection import (
    BUCKETS,
    DEFAULT_BUDGET,
    DEFAULT_THRESHOLD,
    STRATEGIES,
    Selection,
    SelectionRequest,
    segment_choices,
    select_candidates,
)
from dashboard.ui import state
from dashboard.ui.format import clip_frame, fmt_pct, fmt_time, md_code, md_prose, md_text
from dashboard.ui.secrets import label_studio_credentials
from dashboard.ui.session import current_actor

st.title("Annotation queue")
st.caption("The predictions the model was least sure about, sent to Label Studio once each; "
           "the labels come back into Vigil's quality numbers.")


@st.cache_data(ttl=300, show_spinner=False)
def _range(model: str, data_version: str) -> tuple[datetime | None, datetime | None]:
    s = state.context().summary(model)
    return s["first_ts"], s["last_ts"]


@st.cache_data(ttl=300, show_spinner="Ranking predictions by uncertainty…")
def _candidates(model: str, request: SelectionRequest, data_version: str, queue_version: str) -> Selection:
    return select_candidates(state.context(), model, request)


def _actor() -> Actor:
    """The signed-in user; the core checks their role before any send or sync."""
    actor = current_actor()
    if actor is None:
        st.error("Sign in first: open Vigil from its start page.")
        st.stop()
    assert actor is not None
    return actor


SHOWN = "ann_shown"  # (model, Selection) the last run displayed: what "Send N" sends, nothing else
FLASH = "ann_flash"  # outcomes of the last action, shown after the rerun that refreshes the page


def _act(run: Callable[[], str]) -> None:
    """Run a send, sync or account creation (``run`` returns its outcome as safe Markdown), keep the outcome
    and rerun: every table, count and button label then shows the queue as the action left it."""
    try:
        st.session_state[FLASH] = ("success", run())
    except USER_ERRORS as exc:
        st.session_state[FLASH] = ("error", md_prose(exc))
    st.rerun()


def _flash() -> None:
    """The outcome of the action the previous run performed."""
    kind, text = st.session_state.pop(FLASH, (None, ""))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)


def _progress_bar() -> Callable[[int, int], None]:
    bar = st.progress(0.0, text="Sending to Label Studio…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Sent {done} of {total}")

    return progress


def _create_account(actor: Actor, client: LabelStudioClient, password: str) -> str:
    account = accounts.create_account(ctx, actor, client, actor.name, password)
    return (f"Your Label Studio account {md_text(account.email)} is ready: sign in to Label Studio with it and "
            "that password.")


def _account_section(actor: Actor, client: LabelStudioClient) -> None:
    """The signed-in user's own Label Studio account, so their labels are credited to them."""
    account = state.guarded(accounts.account_of, ctx, client, actor.name)
    if account is not None:
        st.caption(f"You label in Label Studio as {md_text(account.email)}; your labels are credited to "
                   f"{md_text(actor.name)}.")
        return
    email = state.guarded(accounts.account_email, ctx, actor.name) or ""
    with (st.expander("Create your Label Studio account", expanded=actor.role == "annotator"),
          st.form("ann_account", clear_on_submit=True)):
        st.caption(f"Label in Label Studio as yourself: Vigil creates the account {md_text(email)} and credits "
                   "its labels to you. Choose its password (8 characters or more); Vigil does not keep it.")
        password = st.text_input("Label Studio password", type="password", key="ann_ls_password")
        again = st.text_input("Repeat it", type="password", key="ann_ls_password2")
        if st.form_submit_button("Create my Label Studio account"):
            if password != again:
                st.error("The two passwords differ; type them again.")
            else:
                _act(lambda: _create_account(actor, client, password))


model = state.selected_model()
ctx = state.guarded(state.context)
version = state.guarded(state.data_version, model) if model and ctx else None
if model and ctx and version is not None:
    first_ts, last_ts = _range(model, version)
    url, token = label_studio_credentials(ctx.settings.label_studio_url, ctx.settings.label_studio_token)

    # ------------------------------------------------------------------ selection settings
    with st.sidebar:
        st.subheader("Selection")
        end_day = (last_ts or datetime.now()).date()
        start_default = max((first_ts or datetime.now()).date(), end_day - timedelta(days=6))
        days = st.date_input("Window (UTC days)", value=(start_default, end_day), key="ann_window")
        strategy = st.selectbox("Strategy", STRATEGIES, key="ann_strategy",
                                help="least-confidence: 1 - top probability; margin: gap between the two most "
                                     "likely classes; entropy: spread over all classes.")
        threshold = st.slider("Only confidence below", 0.5, 1.0, DEFAULT_THRESHOLD, 0.01, key="ann_threshold")
        budget = int(st.number_input("Budget (candidates per batch)", 1, 5000, DEFAULT_BUDGET, key="ann_budget"))
        bucket = st.selectbox("Spread over time by", BUCKETS, index=BUCKETS.index("day"), key="ann_bucket")
        segments = ("(none)", *segment_choices(ctx, model))
        segment = st.selectbox("... and by segment", segments, index=1, key="ann_segment")

    if isinstance(days, tuple) and len(days) == 2 and all(isinstance(d, date) for d in days):
        window = Window(datetime.combine(days[0], time()), datetime.combine(days[1], time()) + timedelta(days=1))
    else:
        st.info("Pick a start and an end day for the window.")
        st.stop()
    request = SelectionRequest(window=window, strategy=strategy, threshold=threshold, budget=budget,
                               bucket=bucket, segment=None if segment == "(none)" else segment)
    qversion = state.guarded(annotation.queue_version, ctx, model)
    selection = state.guarded(_candidates, model, request, version, qversion or "")
    shown_before = st.session_state.get(SHOWN)  # what the user saw when they pressed a button now
    st.session_state[SHOWN] = (model, selection)

    # ------------------------------------------------------------------ candidates
    st.subheader("Candidates")
    if first_ts is None:
        st.info(f"No prediction logs of {md_text(model)} yet: ingest some with "
                f"{md_code(f'vigil ingest --model {model} <files>')}.")
    elif selection is not None:
        st.caption(selection.summary)
        if selection.candidates.empty:
            st.info("No prediction in this window is below the confidence threshold and not yet queued or "
                    "labelled. Widen the window or raise the threshold.")
        else:
            left, right = st.columns([3, 2])
            shown = clip_frame(selection.candidates[["prediction_id", "ts", "model_version", "prediction", "score",
                                                     "uncertainty", "reason"]])
            left.dataframe(shown, hide_index=True, width="stretch", height=300,
                           column_config={"score": st.column_config.NumberColumn(format="%.3f"),
                                          "uncertainty": st.column_config.NumberColumn(format="%.3f"),
                                          "ts": st.column_config.DatetimeColumn("time (UTC)")})
            right.plotly_chart(uncertainty_figure(selection.candidates, strategy), width="stretch")

    # ------------------------------------------------------------------ send
    counts = state.guarded(annotation.queue_status, ctx, model) or {}
    n = 0 if selection is None else len(selection.candidates)
    waiting = counts.get("pending", 0)
    if not url:
        st.info("Label Studio is not configured: set VIGIL_LABEL_STUDIO_URL and VIGIL_LABEL_STUDIO_TOKEN "
                "(or put them in .streamlit/secrets.toml); `make demo` starts one and sets both.")
    else:
        buttons = st.columns(3)
        send_new = buttons[0].button(f"Send {n} to Label Studio", type="primary", disabled=n == 0,
                                  key="ann_send")
        send_left = buttons[1].button(f"Send {waiting} waiting", disabled=waiting == 0, key="ann_resend",
                                   help="Rows queued earlier whose send failed or was interrupted.")
        sync = buttons[2].button("Sync labels", key="ann_sync")
        _flash()
        client = state.guarded(annotation.client_for, ctx, url, token)
        seen = shown_before[1] if shown_before and shown_before[0] == model else None
        if client is not None and send_new and seen is not None:
            _act(lambda: annotation.queue_and_send(ctx, _actor(), model, seen, client,
                                                   progress=_progress_bar()).line())
        elif client is not None and send_left:
            _act(lambda: annotation.send(ctx, _actor(), model, client, progress=_progress_bar()).line())
        elif client is not None and sync:
            with st.spinner("Reading annotations from Label Studio…"):
                _act(lambda: annotation.sync_labels(ctx, _actor(), model, client).line())
        if client is not None:
            _account_section(_actor(), client)

    # ------------------------------------------------------------------ status
    st.subheader("Queue status")
    cols = st.columns(4)
    cols[0].metric("Queued", counts.get("pending", 0) + counts.get("sending", 0))
    cols[1].metric("In Label Studio", counts.get("sent", 0))
    cols[2].metric("Labelled", counts.get("labelled", 0))
    cols[3].metric("Skipped", counts.get("skipped", 0))
    if sum(counts.values()):
        st.plotly_chart(queue_figure(counts), width="stretch")
    link = state.guarded(annotation.project_link, ctx, model)
    if link:
        st.link_button("Open the Label Studio project", link)
    rows = state.guarded(annotation.queue_rows, ctx, model)
    if rows is not None and not rows.empty:
        waiting_rows = rows[rows["state"] == "pending"]
        if not waiting_rows.empty:
            last = waiting_rows["last_error"].dropna()
            why = f" (last attempt: {md_prose(last.iloc[0])})" if not last.empty else ""
            st.warning(f"{len(waiting_rows)} queued prediction(s) are not in Label Studio yet{why}. Fix the "
                       f"cause, then press \"Send {len(waiting_rows)} waiting\": nothing is sent twice.")
        progress_df = state.guarded(annotation.annotator_progress, ctx, model)
        if progress_df is not None and not progress_df.empty:
            st.subheader("Annotators")
            mean_agree = rows.loc[rows["annotations"].fillna(0) >= 2, "agreement"].mean()
            st.caption(f"As of the last sync ({fmt_time(pd.Timestamp(progress_df['synced_at'].max()).to_pydatetime())}). Agreement on tasks "
                       f"with several annotations: {fmt_pct(None if pd.isna(mean_agree) else float(mean_agree), 0)}.")
            a, b = st.columns([2, 3])
            a.dataframe(clip_frame(progress_df.drop(columns=["synced_at"])), hide_index=True, width="stretch",
                        column_config={"agreement_with_majority": st.column_config.NumberColumn(format="%.2f")})
            b.plotly_chart(annotator_figure(progress_df), width="stretch")
        with st.expander(f"Queue rows ({len(rows)} most recent)"):
            view = rows.assign(state=rows["state"].map(STATE_LABELS).fillna(rows["state"]))
            st.dataframe(clip_frame(view), hide_index=True, width="stretch")
