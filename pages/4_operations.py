"""Operations page (not built yet)."""

import streamlit as st

st.title("Operations")
st.info("This page is not built yet in this release. "
        "No numbers are shown until they are real.")
