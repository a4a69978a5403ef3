"""Streamlit entry point: routes to the pages the signed-in role may see. Run with
``streamlit run dashboard/app.py`` (``make demo`` does it for you)."""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import urlparse

import streamlit as st

from connectors.store_owner import QueryCancelled
from dashboard.ui.cancel import cancel_queries_when_left
from dashboard.ui.nav import page_by_url, pages_for
from dashboard.ui.session import current_role

st.set_page_config(page_title="Vigil", page_icon=":material/visibility:", layout="wide")
cancel_queries_when_left()

if "user" not in st.session_state and "requested_page" not in st.session_state:
    # Remember a deep link (e.g. /compliance) so signing in lands there, if the role may see it.
    st.session_state["requested_page"] = urlparse(st.context.url or "").path.strip("/").split("/")[-1]

role = current_role()
if role is not None:
    allowed = pages_for(role)
    pages = {p.url_path: st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
             for p in allowed}
    nav = st.navigation(list(pages.values()))
    wanted = st.session_state.pop("requested_page", "")
    if wanted and wanted in pages and nav.url_path != wanted:
        st.switch_page(pages[wanted])
    blocked = page_by_url(wanted) if wanted and wanted not in pages else None
    if blocked is not None:  # a deep link to a page this role may not open: say so, never land silently
        st.warning(f"{blocked.title} is not available to the {role.replace('_', ' ')} role; ask an admin if "
                   "you need it.", icon=":material/lock:")
    with suppress(QueryCancelled):  # the user left the page: Streamlit is already starting the next run
        nav.run()
