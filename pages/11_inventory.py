"""Inventory: which models do we run, how risky is each, who owns it, and does it meet its controls?"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.access.roles import allowed
from dashboard.governance import controls, inventory
from dashboard.settings import GOVERNANCE_KEYS, LIFECYCLE_STATES
from dashboard.ui import state
from dashboard.ui.format import PROSE_LIMIT, clip_frame, md_prose, md_text
from dashboard.ui.session import current_actor

st.title("Inventory")
st.caption("Every model with its risk tier, owner, intended use, lifecycle state, open alerts and findings, "
           "last review, and its control status.")


@st.cache_data(ttl=60, show_spinner=False)
def _rows(marker: int) -> list[inventory.InventoryRow]:
    return inventory.inventory(state.context())


@st.cache_data(ttl=300, show_spinner="Judging the controls…")
def _controls(model: str, data_version: str, marker: int) -> list[controls.PackStatus]:
    return controls.all_packs_status(state.context(), model)


def _profile_form(rows: list[inventory.InventoryRow]) -> None:
    """Managers and admins record profile keys the config leaves out (as MLflow tags; audited)."""
    flash = st.session_state.pop("inventory_flash", None)
    if flash:
        st.success(md_text(flash), icon=":material/check_circle:")
    names = [r.model for r in rows if r.registered]
    if not names:
        return
    with st.expander("Set a model's risk tier, owner, intended use or state", icon=":material/edit:"), \
            st.form("inventory_set"):
        model = st.selectbox("Model", names)
        tiers = ["", *state.context().settings.controls.risk_tiers]
        values = {"risk_tier": st.selectbox("Risk tier", tiers), "owner": st.text_input("Owner"),
                  "intended_use": st.text_input("Intended use"),
                  "lifecycle_state": st.selectbox("Lifecycle state", ["", *LIFECYCLE_STATES])}
        st.caption("Keys set in vigil.toml ([models.<name>.governance]) are changed there; empty fields are kept.")
        if st.form_submit_button("Save", type="primary"):
            chosen = {k: v for k, v in values.items() if v and k in GOVERNANCE_KEYS}
            saved = state.guarded(inventory.set_profile, state.context(), actor, model, chosen)
            if saved is not None:
                st.session_state["inventory_marker"] = st.session_state.get("inventory_marker", 0) + 1
                st.session_state["inventory_flash"] = f"Saved the inventory profile of {model}."
                st.rerun()


def _control_status(rows: list[inventory.InventoryRow]) -> None:
    names = [r.model for r in rows if r.configured]
    if not names:
        return
    st.subheader("Control status")
    model = st.selectbox("Model", names, key="inventory_controls_model")
    if not st.toggle("Judge its controls now (evaluates its policies)", key="inventory_judge"):
        return
    statuses = state.guarded(_controls, model, state.data_version(model), st.session_state.get("inventory_marker", 0))
    for ps in statuses or []:
        counts = ps.counts()
        st.markdown(f"**{md_text(ps.pack.title)}**: version {md_text(ps.version)}, risk tier "
                    f"{md_text(ps.risk_tier or 'not recorded')}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        st.dataframe(clip_frame(ps.frame(), limit=PROSE_LIMIT), hide_index=True, width="stretch")


actor = current_actor()
if actor is None:
    st.warning("Sign in to see the inventory.")
elif state.guarded(state.context) is not None:
    found = state.guarded(_rows, st.session_state.get("inventory_marker", 0))
    if found is not None:
        for note in sorted({n for r in found for n in r.notes}):
            st.warning(md_prose(note))
        table = inventory.frame(found)
        if table.empty:
            st.info("No model is configured or registered yet.")
        else:
            st.dataframe(clip_frame(table, limit=PROSE_LIMIT), hide_index=True, width="stretch")
            sources = pd.DataFrame([{"model": r.model, **{k: r.profile.sources.get(k, inventory.UNSET)
                                                          for k in GOVERNANCE_KEYS}} for r in found])
            with st.expander("Where each value comes from", icon=":material/source:"):
                st.dataframe(sources, hide_index=True, width="stretch")
        if allowed(actor, "inventory.edit"):
            _profile_form(found)
        _control_status(found)
