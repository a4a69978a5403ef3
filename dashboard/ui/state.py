"""Per-process resources and per-session choices for the pages (the only Streamlit-aware glue)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import streamlit as st
from streamlit import runtime

from dashboard.context import Context, load_context
from dashboard.errors import USER_ERRORS
from dashboard.ui.format import md_code, md_prose, md_text

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def context() -> Context:
    """One Context per server process. The server owns the log store (when ``store_owner`` is on and no
    other process owns it yet): each session's queries get a cursor of their own, and the CLI's queries
    come to this process instead of waiting for the file."""
    ctx = load_context()
    if ctx.settings.store_owner and runtime.exists():  # a real server, not a script or a page test run bare
        ctx.store.own(idle_close_s=OWNER_IDLE_CLOSE_S)
    return ctx


#: Seconds without a query after which the app closes (and so checkpoints) the DuckDB file.
OWNER_IDLE_CLOSE_S = 30.0


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; show a user-caused error with st.error (never a traceback) and return None."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as exc:
        st.error(md_prose(exc))
        return None


def selected_model() -> str | None:
    """The model chosen in the sidebar (shared by every page of the session)."""
    try:
        models = sorted(context().settings.models)
    except USER_ERRORS as exc:
        st.error(md_prose(exc))
        return None
    if not models:
        st.info("No model is configured yet. Add a [models.<name>] table to vigil.toml (see the README), "
                "or run `vigil demo` for the demo workspace.")
        return None
    current = st.session_state.get("model")
    index = models.index(current) if current in models else 0
    choice = st.sidebar.selectbox("Model", models, index=index, key="model_select")
    st.session_state["model"] = choice
    return str(choice)


def logged_span(ctx: Context, model: str) -> tuple[datetime, datetime, list[str]] | None:
    """First and last log time and the logged versions of ``model``; with no logs yet the page says how to
    ingest some and stops; None (the error shown) when the store cannot be read."""
    from dashboard.monitoring.drift import log_span

    span = guarded(log_span, ctx, model)
    if span is None:
        return None
    first, last, versions = span
    if first is None or last is None:
        st.info(f"No logs of {md_text(model)} yet: ingest some with {md_code(f'vigil ingest --model {model} <files>')} "
                "or run `vigil demo`.")
        st.stop()
    return first, last, versions


def data_version(model: str) -> str:
    """The log store's data version of ``model``: part of every cache key so new data shows at once."""
    return context().data_version(model)
