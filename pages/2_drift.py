"""Drift page (not built yet)."""

import streamlit as st

st.title("Drift")
st.info("This page is not built yet in this release. "
        "No numbers are shown until they are real.")
