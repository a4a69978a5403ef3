"""Drift: what changed, in which feature, since when?"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from connectors.windows import Window
from dashboard.charts.drift import distribution_figure, heatmap_figure, share_figure
from dashboard.charts.estimation import classifier_figure, reconstruction_figure
from dashboard.errors import USER_ERRORS
from dashboard.monitoring.domain_classifier import CV_FOLDS, ClassifierReport, compute_classifier
from dashboard.monitoring.drift import (
    DriftResult,
    champion_version,
    compute_drift,
    configured_reference_window,
    default_windows,
    distribution,
    drift_over_time,
    share_by_bucket,
)
from dashboard.monitoring.evidently_report import (
    DEFAULT_MAX_ROWS,
    EvidentlyReport,
    build_report,
    store_report,
)
from dashboard.monitoring.multivariate import ReconstructionReport, compute_reconstruction
from dashboard.ui import state
from dashboard.ui.format import clip, clip_frame, fmt_window, md_prose, md_text
from dashboard.ui.session import current_actor

st.title("Drift")
st.caption("Evidently-compatible drift of the model's features, prediction and label between a reference "
           "and a current window, computed inside the model's query engine (DuckDB, or Spark for a lake); and "
           "drift per day over time.")


def _window(pick: object) -> Window | None:
    if isinstance(pick, tuple | list) and len(pick) == 2 and all(isinstance(d, date) for d in pick):
        a, b = pick
        return Window(datetime(a.year, a.month, a.day), datetime(b.year, b.month, b.day) + timedelta(days=1))
    return None


def _ref_arg(ref_text: str) -> Window | str:
    return ref_text if ref_text == "training" else Window(*map(datetime.fromisoformat, ref_text.split("|")))


@st.cache_data(ttl=600, show_spinner="Computing drift in DuckDB…")
def _drift(model: str, cur: str, ref: str, version: str | None, data_version: str) -> DriftResult:
    a, b = cur.split("|")
    return compute_drift(state.context(), model, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                         _ref_arg(ref), version)


@st.cache_data(ttl=600, show_spinner="Computing drift per bucket…")
def _over_time(model: str, cur: str, ref: str, version: str | None, bucket: str, data_version: str) -> pd.DataFrame:
    a, b = cur.split("|")
    return drift_over_time(state.context(), model, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                           bucket=bucket, reference=_ref_arg(ref), version=version)


@st.cache_data(ttl=600, show_spinner="Computing the reconstruction error per bucket…")
def _multivariate(model: str, span: str, version: str | None, bucket: str, data_version: str) -> ReconstructionReport:
    a, b = span.split("|")
    return compute_reconstruction(state.context(), model, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                                  bucket=bucket, version=version)


@st.cache_data(ttl=600, show_spinner="Training the domain classifier per bucket (LightGBM, on a bounded sample)…")
def _classifier(model: str, span: str, version: str | None, bucket: str, data_version: str) -> ClassifierReport:
    a, b = span.split("|")
    return compute_classifier(state.context(), model, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                              bucket=bucket, version=version)


def _render_reconstruction(mv: ReconstructionReport) -> None:
    mv_s = mv.summary()
    st.plotly_chart(reconstruction_figure(mv.buckets, mv.lower_threshold, mv.upper_threshold,
                                          window=mv.window, bucket=mv.bucket), width="stretch")
    first_alert = "no alert" if mv.first_alert is None else f"first alert {mv.first_alert:%Y-%m-%d %H:%M} UTC"
    st.caption(f"A PCA fitted on {fmt_window(mv.reference)} ({mv.n_reference:,} rows) keeps "
               f"{mv_s['components']} of {len(mv.fit.columns)} components ({mv_s['variance_kept']:.0%} of the "
               "variance); each bucket's value is its rows' mean distance to their reconstruction, as "
               "NannyML's DataReconstructionDriftCalculator computes it. A change in how the features move "
               "together raises it even when no column drifts on its own. Thresholds: mean ± 3 standard "
               f"deviations over the reference's buckets; {mv_s['alerting_buckets']} of {mv_s['buckets']} "
               f"{mv.bucket}s alert ({first_alert}).")


def _render_classifier(dc: ClassifierReport) -> None:
    s = dc.summary()
    st.plotly_chart(classifier_figure(dc.buckets, dc.lower_threshold, dc.upper_threshold, window=dc.window,
                                      bucket=dc.bucket), width="stretch")
    first_alert = "no alert" if dc.first_alert is None else f"first alert {dc.first_alert:%Y-%m-%d %H:%M} UTC"
    st.caption(f"For each {dc.bucket}, the domain classifier (LightGBM, NannyML's DomainClassifierCalculator) learns "
               f"to tell its rows from those of the reference {fmt_window(dc.reference)}; the value is its "
               f"{CV_FOLDS}-fold cross-validated ROC AUC: 0.5 = the {dc.bucket} looks like the reference, 1 = every "
               f"row is told apart. A {dc.bucket} inside the reference is told from the rest of it. Thresholds "
               f"{dc.lower_threshold:g} and {dc.upper_threshold:g} (NannyML's defaults). It was "
               f"{dc.sample_note}. {s['alerting_buckets']} of {s['buckets']} {dc.bucket}s alert "
               f"({first_alert}).")
    st.dataframe(clip_frame(dc.table()), hide_index=True, width="stretch",
                 column_config={"ROC AUC": st.column_config.NumberColumn(format="%.3f"),
                                "alert": st.column_config.CheckboxColumn("alert")})


MV_METHODS = {"PCA reconstruction error": "pca", "Domain classifier (LightGBM)": "classifier"}


@st.cache_data(ttl=600, show_spinner=False)
def _distribution(model: str, column: str, cur: str, ref: str, version: str | None, data_version: str) -> pd.DataFrame:
    a, b = cur.split("|")
    return distribution(state.context(), model, column, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                        _ref_arg(ref), version)


def _key(w: Window) -> str:
    return f"{w.start.isoformat()}|{w.end.isoformat()}"


VERDICTS = {"drift": "yes", "no drift": "no", "too few rows": "too few rows", "not tested": "not tested"}


def _too_few_text(result: DriftResult) -> str:
    """Which columns have no verdict for lack of rows, and what Evidently would say on the same rows."""
    names = ", ".join(c.column for c in result.columns if c.too_few_rows)
    text = (f"Too few rows: {md_text(names)} had fewer than {result.min_drift_rows:,} current values "
            "(thresholds.min_drift_rows), so no verdict; they are not counted in the drifted share.")
    if result.evidently_dataset_drift != result.dataset_drift:
        flagged = sum(c.evidently_drifted for c in result.columns)
        would = "would flag this as dataset drift" if result.evidently_dataset_drift else "would not flag dataset drift"
        text += f" Evidently {would}: {flagged} of {result.n_tested} columns drift by its verdicts on {result.n_current:,} rows."
    return text


model = state.selected_model()
ctx = state.guarded(state.context)
span = state.logged_span(ctx, model) if ctx is not None and model else None
if model and ctx is not None and span is not None:
    first, last, versions = span
    dv = state.data_version(model)
    ref_default, cur_default = default_windows(first, last)
    lo, hi = first.date(), last.date()
    configured = state.guarded(configured_reference_window, ctx, model)
    if configured is not None and lo <= configured.start.date() and (configured.end - timedelta(days=1)).date() <= hi:
        ref_default = configured
    with st.container(border=True):
        c1, c2, c3 = st.columns([2, 2, 1])
        ref_kind = c1.radio("Reference", ["Training data (champion)", "Time window"], horizontal=True,
                            key="drift_ref_kind", index=0 if configured is None else 1,
                            help="The model's configured reference ([models.NAME.reference]) is the default")
        ref_pick = c1.date_input("Reference window", (ref_default.start.date(),
                                                      (ref_default.end - timedelta(days=1)).date()),
                                 min_value=lo, max_value=hi, key="drift_ref_window",
                                 disabled=ref_kind != "Time window")
        cur_pick = c2.date_input("Current window", (cur_default.start.date(), (cur_default.end - timedelta(days=1)).date()),
                                 min_value=lo, max_value=hi, key="drift_cur_window")
        version_pick = c3.selectbox("Model version", ["all", *versions], key="drift_version", format_func=clip)
    version = None if version_pick == "all" else str(version_pick)
    cur_w = _window(cur_pick)
    ref_w = _window(ref_pick)
    if cur_w is None or (ref_kind == "Time window" and ref_w is None):
        st.info("Pick a start and an end date for each window.")
        st.stop()
    assert cur_w is not None
    ref_text = "training" if ref_kind != "Time window" or ref_w is None else _key(ref_w)
    result = state.guarded(_drift, model, _key(cur_w), ref_text, version, dv)
    if result is not None:
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Dataset drift", VERDICTS[result.verdict])
        m2.metric("Drifted columns", f"{result.n_drifted} / {result.n_judged}")
        m3.metric("Reference rows", f"{result.n_reference:,}")
        m4.metric("Current rows", f"{result.n_current:,}")
        st.caption(f"Reference: {md_text(result.reference_label)}. Current: {md_text(result.current_label)}. "
                   "Dataset drift when the "
                   f"share of drifted columns reaches {result.drift_share_threshold:.0%}, among the columns "
                   f"with at least {result.min_drift_rows:,} current values.")
        if result.n_too_few:
            st.warning(_too_few_text(result))
        table = clip_frame(result.to_frame().drop(columns=["severity"]))  # notes name category values
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"score": st.column_config.NumberColumn(format="%.4g"),
                                    "drifted": st.column_config.CheckboxColumn("drifted"),
                                    "evidently_drifted": st.column_config.CheckboxColumn("Evidently: drift")})
        testable = [c.column for c in sorted(result.columns, key=lambda c: -c.severity) if c.tested]
        if testable:
            column = st.selectbox("Distribution of", testable, key="drift_column")
            dist = state.guarded(_distribution, model, column, _key(cur_w), ref_text, version, dv)
            if dist is not None:
                st.plotly_chart(distribution_figure(dist, column), width="stretch")

        st.subheader("Drift over time")
        bucket = st.radio("Bucket", ["day", "hour"], horizontal=True, key="drift_bucket")
        over = state.guarded(_over_time, model, _key(cur_w), ref_text, version, bucket, dv)
        if over is not None:
            st.plotly_chart(heatmap_figure(over), width="stretch")
            st.caption("Each cell is a column's score against its own threshold (distances: score ÷ threshold; "
                       "p-values: threshold ÷ p): white at the threshold, red past it, blue well below. Grey: "
                       f"fewer than {result.min_drift_rows:,} current values in the bucket, so no verdict "
                       "(thresholds.min_drift_rows); dark grey: not tested. Hover a cell for its score, method, "
                       "threshold and rows.")
            st.plotly_chart(share_figure(share_by_bucket(over), result.drift_share_threshold),
                            width="stretch")

        st.subheader("Multivariate drift")
        method = MV_METHODS[st.radio("Method", list(MV_METHODS), horizontal=True, key="drift_mv_method")]
        whole = Window(datetime.combine(lo, datetime.min.time()), datetime.combine(hi, datetime.min.time())
                       + timedelta(days=1))
        if method == "pca":
            mv = state.guarded(_multivariate, model, _key(whole), version, bucket, dv)
            if mv is not None:
                _render_reconstruction(mv)
        else:
            dc = state.guarded(_classifier, model, _key(whole), version, bucket, dv)
            if dc is not None:
                _render_classifier(dc)

        st.subheader("Evidently report")
        max_rows = st.number_input("Rows per side (a random sample when a window is larger)", min_value=1000,
                                   max_value=200_000, value=DEFAULT_MAX_ROWS, step=1000, key="drift_report_rows")
        report_key = (model, _key(cur_w), ref_text, version, int(max_rows), dv)
        if st.button("Build Evidently report", key="drift_build_report"):
            with st.status("Building the Evidently report…", expanded=True) as status:
                try:
                    built = build_report(ctx, model, cur_w, _ref_arg(ref_text), version, max_rows=int(max_rows),
                                         progress=status.write)
                    st.session_state["drift_report"] = (report_key, built)
                    status.update(label="Evidently report ready", state="complete")
                except USER_ERRORS as exc:
                    status.update(label="The report could not be built", state="error")
                    st.error(md_prose(exc))
        saved = st.session_state.get("drift_report")
        if saved and saved[0] == report_key:
            report: EvidentlyReport = saved[1]
            st.caption(f"Computed by Evidently on a {report.sample_note}.")
            st.download_button("Download Evidently report (HTML)", report.html, file_name=report.file_name,
                               mime="text/html", key="drift_download")
            actor = current_actor()
            target = version or state.guarded(champion_version, ctx, model)
            if target and st.button(f"Store as artifact of version {target} in MLflow", key="drift_store",
                                    disabled=actor is None):
                path = state.guarded(store_report, ctx, actor, model, target, report) if actor else None
                if path:
                    st.success(f"Stored as {md_text(path)} in the run of version {md_text(target)}.")
