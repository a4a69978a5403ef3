"""Streamlit entry point: routes to the pages the signed-in role may see. Run with
``streamlit run dashboard/app.py`` (``make demo`` does it for you)."""

from __future__ import annotations

import streamlit as st

from dashboard.ui.nav import pages_for
from dashboard.ui.session import current_role

st.set_page_config(page_title="Vigil", page_icon=":material/visibility:", layout="wide")

role = current_role()
if role is not None:
    allowed = pages_for(role)
    nav = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
                         for p in allowed])
    nav.run()
