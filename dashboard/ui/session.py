"""Who is using the app. Until sign-in lands (compliance), everyone is an admin on a local workspace."""

from __future__ import annotations

import streamlit as st


def current_role() -> str | None:
    """The signed-in user's role, or None while the sign-in form is shown."""
    st.session_state.setdefault("user", {"name": "local", "role": "admin"})
    return str(st.session_state["user"]["role"])
