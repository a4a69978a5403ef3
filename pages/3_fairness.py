"""Fairness: is any group treated worse by the model? AIF360 metrics per protected attribute, over time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from connectors.windows import Window
from dashboard.charts.fairness import (
    group_rates_figure,
    group_trend_figure,
    intersection_heatmap,
    metric_over_time_figure,
)
from dashboard.monitoring.fairness import (
    LEFT_OUT_REASON,
    FairnessReport,
    compute_fairness,
    fairness_over_time,
    group_rates_over_time,
    model_versions,
)
from dashboard.monitoring.fairness_metrics import INTERVAL_METRICS, SPECS
from dashboard.ui import state
from dashboard.ui.format import clip, clip_frame, fmt_window, md_prose, md_text

VERDICT_TEXT = {"pass": "pass", "fail": "FAIL", "undefined": "undefined", "too_small": "too small",
                "info": "no threshold"}
VERDICT_COLOUR = {"pass": "color: rgb(26, 127, 55)", "FAIL": "color: rgb(207, 34, 46); font-weight: bold",
                  "too small": "color: rgb(154, 103, 0)"}
ALL_VERSIONS = "all versions"

st.title("Fairness")
st.caption("Is any group treated worse? AIF360's group metrics from the production log's successful predictions "
           "(status ok; a failed request carries no usable prediction and is left out, counted below): "
           "prediction-only metrics (\"all rows\") use every successful prediction, label-based ones only "
           "those with ground truth.")


@st.cache_data(ttl=300, show_spinner=False)
def _span(model: str, version_key: str) -> tuple[date, date, list[str]] | None:
    ctx = state.context()
    summary = ctx.summary(model)
    if not summary["rows"]:
        return None
    return summary["first_ts"].date(), summary["last_ts"].date(), model_versions(ctx, model)


@st.cache_data(ttl=300, show_spinner="Counting groups in the log…")
def _report(model: str, version_key: str, window: Window, attribute: str, version: str | None,
            privileged: tuple[str, ...] | None) -> FairnessReport:
    return compute_fairness(state.context(), model, window, attribute=attribute, version=version,
                            privileged=list(privileged) if privileged is not None else None)


@st.cache_data(ttl=300, show_spinner="Computing metrics over time…")
def _over_time(model: str, version_key: str, window: Window, attribute: str, bucket: str, version: str | None,
               privileged: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ctx = state.context()
    metrics = fairness_over_time(ctx, model, window, attribute, bucket=bucket, version=version,
                                 privileged=list(privileged))
    rates = group_rates_over_time(ctx, model, window, attribute, bucket=bucket, version=version)
    return metrics, rates


def _metric_table(report: FairnessReport, attribute: str) -> pd.DataFrame:
    a = report.attribute(attribute)
    return clip_frame(pd.DataFrame([{
        "metric": m.label, "value": m.display(), "threshold": m.threshold, "verdict": VERDICT_TEXT[m.verdict],
        "rows used": m.uses, "n unprivileged": m.n_unprivileged, "n privileged": m.n_privileged,
    } for m in a.metrics.values()]))


def _names(groups: tuple[str, ...] | list[str]) -> str:
    """Group names from the logs, as text in Markdown."""
    return ", ".join(md_text(g) for g in groups)


model = state.selected_model()
ctx = state.guarded(state.context) if model else None
if model and ctx is not None:
    cfg = state.guarded(ctx.model, model)
    version_key = state.guarded(state.data_version, model)
    span = state.guarded(_span, model, version_key or "") if cfg is not None else None
    if cfg is not None and not cfg.protected:
        st.info(f"Model '{model}' has no protected attribute. Add [[models.\"{model}\".protected]] tables "
                "(name, privileged values, and bins for numeric attributes) to vigil.toml.")
    elif cfg is not None and span is None:
        st.info(f"No prediction logs for '{model}' yet: ingest some with `vigil ingest` (or run `vigil demo`).")
    elif cfg is not None and span is not None:
        first, last, versions = span
        c1, c2, c3 = st.columns([2, 1, 1])
        picked = c1.date_input("Window (UTC days)", value=(first, last), min_value=first, max_value=last)
        version_label = c2.selectbox("Model version", [ALL_VERSIONS, *versions], format_func=clip,
                                     help="Compare versions: a gap may belong to one version only.")
        bucket = c3.radio("Over time by", ["day", "week"], horizontal=True)
        d0, d1 = (picked if isinstance(picked, tuple) and len(picked) == 2 else (first, last))
        window = Window(datetime.combine(d0, datetime.min.time()),
                        datetime.combine(d1, datetime.min.time()) + timedelta(days=1))
        version = None if version_label == ALL_VERSIONS else str(version_label)
        names = list(cfg.protected_names)
        a1, a2 = st.columns([1, 2])
        attribute = str(a1.selectbox("Protected attribute", names))
        base = state.guarded(_report, model, version_key or "", window, attribute, version, None)
        if base is not None:
            attr = base.attribute(attribute)
            options = [g for g in attr.groups["group"] if g != "(missing)"]
            configured = [p for p in attr.privileged if p in options] or options[:1]
            chosen = a2.multiselect("Privileged group(s)", options, default=configured, format_func=clip,
                                    help="Defaults come from vigil.toml; every other group is unprivileged.")
            privileged = tuple(str(c) for c in chosen)
            if not privileged:
                st.warning("Choose at least one privileged group.")
            else:
                report = base if privileged == attr.privileged else state.guarded(
                    _report, model, version_key or "", window, attribute, version, privileged)
                if report is not None:
                    a = report.attribute(attribute)
                    m1, m2, m3, m4 = st.columns(4)
                    m1.metric("Predictions (status ok)", f"{report.n_rows:,}",
                              help=f"Every metric's rows. Left out: {report.n_left_out:,} ({LEFT_OUT_REASON}).")
                    m2.metric("Labelled rows", f"{report.n_labelled:,}",
                              help="Only these feed TPR, FPR, precision and the odds/opportunity metrics.")
                    m3.metric("Failing metrics", len(a.failing()))
                    m4.metric("Lowest selection rate", clip(a.worst_group) or "n/a")
                    st.caption(f"Window {fmt_window(report.window)} (UTC days). "
                               f"Favourable outcome: **{md_text(report.favourable)}**. Privileged: "
                               f"{_names(a.privileged)} ({a.n_privileged:,} rows); unprivileged: "
                               f"{_names(a.unprivileged) or 'none'} ({a.n_unprivileged:,} rows). Groups under "
                               f"{report.min_group_size} rows are reported as too small.")
                    if report.left_out_note:
                        st.info(md_prose(report.left_out_note), icon=":material/filter_alt:")
                    for note in a.notes:
                        st.warning(md_prose(note))
                    st.subheader("Metrics")
                    table = _metric_table(report, attribute)
                    st.dataframe(table.style.map(lambda v: VERDICT_COLOUR.get(str(v), ""), subset=["verdict"]),
                                 hide_index=True, width="stretch", height=36 * (len(table) + 1) + 2)
                    st.subheader("Rates per group")
                    st.plotly_chart(group_rates_figure(a.groups), width="stretch")
                    with st.expander("Group table"):
                        st.dataframe(clip_frame(a.groups), hide_index=True, width="stretch")

                    st.subheader("Over time")
                    over = state.guarded(_over_time, model, version_key or "", window, attribute, str(bucket),
                                         version, privileged)
                    if over is not None:
                        metrics_t, rates_t = over
                        if metrics_t.empty:
                            st.info("No rows in this window.")
                        else:
                            metric = st.selectbox("Metric", list(INTERVAL_METRICS),
                                                  format_func=lambda k: SPECS[k].label)
                            st.plotly_chart(metric_over_time_figure(metrics_t, str(metric), SPECS[str(metric)].label,
                                                                    window=window, bucket=str(bucket)),
                                            width="stretch")
                            st.caption("Bars: 95% intervals (Katz log interval for the ratio, Newcombe score "
                                       "interval for differences). Shaded: the acceptable band.")
                            st.plotly_chart(group_trend_figure(rates_t, window=window, bucket=str(bucket)),
                                            width="stretch")

                    st.subheader("Intersections")
                    if not report.intersections:
                        st.info("Intersections need two protected attributes in the model config.")
                    for inter in report.intersections:
                        x, y = inter.attributes
                        if inter.worst_group:
                            st.write(f"Worst-off group: **{md_text(inter.worst_group)}** (selection rate "
                                     f"{inter.worst_selection_rate:.2f} vs best {inter.best_selection_rate:.2f})")
                        st.plotly_chart(intersection_heatmap(inter.groups, x, y, worst=inter.worst_group),
                                        width="stretch")
