"""Models: what is registered, which version serves as champion, and what produced it."""

from __future__ import annotations

import streamlit as st

from connectors.registry import RegistryError
from dashboard.charts.models import metrics_by_version_figure
from dashboard.governance.cards import markdown_to_html
from dashboard.lifecycle.models import (
    LastGood,
    ModelSnapshot,
    lineage_steps,
    load_snapshot,
    metrics_long,
    mlflow_links,
    models_table,
    params_table,
)
from dashboard.ui import state
from dashboard.ui.format import clip, clip_frame, fmt_time, md_code, md_prose, md_text

st.title("Models")
st.caption("MLflow registry: registered models, versions and aliases, run metrics and parameters, and lineage "
           "(version → run → training data → code).")


@st.cache_resource(show_spinner=False)
def _last_good() -> LastGood[object]:
    return LastGood()


@st.cache_data(ttl=60, show_spinner="Reading the MLflow registry…")
def _models(uri: str) -> object:
    return models_table(state.context().registry)


@st.cache_data(ttl=60, show_spinner="Reading versions and runs…")
def _snapshot(uri: str, model: str) -> object:
    return load_snapshot(state.context().registry, model)


def _description(snap: ModelSnapshot, version: str) -> str:
    """The version's MLflow description: Markdown, and the whole model card once one is saved in Vigil."""
    rows = snap.versions[snap.versions["version"].astype(str) == str(version)]
    text = rows["description"].iloc[0] if len(rows) and "description" in rows.columns else ""
    return "" if text is None or text != text else str(text)


def _show_stale(error: RegistryError | None, when: object) -> None:
    if error is not None:
        st.warning(f"{md_prose(error)}. Showing what was read at {fmt_time(when)}.",  # type: ignore[arg-type]
                   icon=":material/cloud_off:")


ctx = state.guarded(state.context)
if ctx is not None:
    uri = ctx.settings.mlflow_tracking_uri
    top, refresh = st.columns([5, 1])
    top.write("Tracking store: " + md_code(uri))
    if ctx.settings.mlflow_ui_url:
        top.link_button("Open the MLflow UI", ctx.settings.mlflow_ui_url, icon=":material/open_in_new:")
    if refresh.button("Refresh", icon=":material/refresh:"):
        _models.clear()
        _snapshot.clear()
    cache = _last_good()
    listed = cache.fetch(f"models|{uri}", lambda: _models(uri))
    if listed.value is None:
        st.error(md_prose(listed.error))
    else:
        _show_stale(listed.error, listed.fetched_at)
        table = listed.value
        st.subheader("Registered models")
        st.dataframe(clip_frame(table), hide_index=True, width="stretch")
        names = list(table["model"])  # type: ignore[index]
        if not names:
            st.info("No model is registered yet. Run `vigil demo`, or register one with "
                    "mlflow.sklearn.log_model(..., registered_model_name=...).")
        else:
            preferred = st.session_state.get("model")
            model = st.selectbox("Model", names, index=names.index(preferred) if preferred in names else 0,
                                 format_func=clip)
            got = cache.fetch(f"snapshot|{uri}|{model}", lambda: _snapshot(uri, model))
            if got.value is None:
                st.error(md_prose(got.error))
            else:
                snap: ModelSnapshot = got.value  # type: ignore[assignment]
                _show_stale(got.error, snap.fetched_at)
                if snap.description:  # MLflow text: shown as text (no image or link from it)
                    st.caption(md_prose(snap.description))
                if snap.aliases:
                    st.write("**Aliases:** " + " · ".join(f"{md_code(a)} → v{md_text(v)}" for a, v in sorted(snap.aliases.items())))
                st.subheader("Versions")
                # The description (a card's Markdown once saved) is rendered below, not shown as source here.
                st.dataframe(clip_frame(snap.versions.drop(columns="description", errors="ignore")),
                             hide_index=True, width="stretch",
                             column_config={"created": st.column_config.DatetimeColumn("created (UTC)")})
                long = metrics_long(snap)
                if len(long):
                    st.subheader("Holdout metrics by version")
                    st.plotly_chart(metrics_by_version_figure(long, snap.aliases.get("champion")), width="stretch")
                    with st.expander("All logged metrics"):
                        st.dataframe(clip_frame(snap.metrics), hide_index=True, width="stretch")
                versions = list(snap.lineage)
                if versions:
                    default = snap.default_version()
                    version = st.selectbox("Version", versions,
                                           index=versions.index(default) if default in versions else 0,
                                           format_func=lambda v: f"v{v}" + (
                                               f" ({', '.join(snap.lineage[v].aliases)})"
                                               if snap.lineage[v].aliases else ""))
                    lin = snap.lineage[version]
                    description = _description(snap, version)
                    if description:  # safe Markdown: raw HTML as text, no images, links only to http(s)
                        with st.expander(f"Description of v{version}", expanded=True,
                                         icon=":material/description:"):
                            st.html(markdown_to_html(description))
                    st.subheader(f"Lineage of v{version}")
                    st.dataframe(clip_frame(lineage_steps(lin)), hide_index=True, width="stretch")
                    left, right = st.columns(2)
                    left.write("**Run parameters**")
                    left.dataframe(clip_frame(params_table(snap, version)), hide_index=True, width="stretch")
                    right.write("**Run metrics**")
                    right.dataframe(snap.metrics[snap.metrics["version"] == version].T.iloc[1:]
                                    .rename(columns=lambda _c: "value"), width="stretch")
                    links = mlflow_links(ctx.settings.mlflow_ui_url, model, version,
                                         snap.experiment_ids.get(version), lin.run_id)
                    if links:
                        st.write("MLflow UI: " + " · ".join(f"[{k}]({u})" for k, u in links.items()))
                st.caption(f"Read from MLflow at {fmt_time(snap.fetched_at)}; refreshed every minute.")
