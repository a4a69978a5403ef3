"""Operations: are we within SLA? Latency, errors, throughput, and accuracy (realised and estimated)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from connectors.windows import Window
from dashboard.charts.estimation import (
    contribution_figure,
    estimate_figure,
    segment_drift_figure,
    segment_fairness_figure,
)
from dashboard.charts.operations import (
    errors_throughput_figure,
    label_delay_figure,
    latency_figure,
    quality_figure,
    reliability_figure,
    version_latency_figure,
)
from dashboard.monitoring.estimation import METRICS as ESTIMATED
from dashboard.monitoring.estimation import EstimationReport, compute_estimation
from dashboard.monitoring.operations import (
    OpsReport,
    SloStatus,
    compute_operations,
    data_span,
    logged_versions,
)
from dashboard.monitoring.quality import CBPE_ASSUMPTIONS, QualityReport, compute_quality
from dashboard.monitoring.segment_drift import DRIFT_SHARE, SegmentDrift, compute_segment_drift
from dashboard.monitoring.segment_fairness import FAIRNESS_METRICS, SegmentFairness, compute_segment_fairness
from dashboard.monitoring.segments import METRICS as SEGMENT_METRICS
from dashboard.monitoring.segments import SegmentChange, compute_segment_change, segment_columns
from dashboard.ui import state
from dashboard.ui.format import clip, clip_frame, fmt_num, fmt_pct, fmt_window, md_code, md_prose, md_text

st.title("Operations")
st.caption("Latency percentiles and the error rate against their objectives, throughput per time bucket and model "
           "version, and accuracy: realised where labels arrived, estimated from the model's scores where not.")
#: Per objective: its name on the page, and the breach table's worst-value column (name, number format).
OBJECTIVE_NAMES = {"latency_p95_ms": "Latency SLO", "error_rate": "Error-rate SLO"}
WORST_COLUMNS = {"worst_p95_ms": ("worst p95 (ms)", "%.1f"), "worst_error_rate": ("worst error rate", "percent")}


@st.cache_data(ttl=300, show_spinner=False)
def _span(model: str, data_version: str) -> tuple[datetime | None, datetime | None, int]:
    return data_span(state.context(), model)


@st.cache_data(ttl=300, show_spinner=False)
def _versions(model: str, data_version: str) -> list[str]:
    return logged_versions(state.context(), model)


@st.cache_data(ttl=300, show_spinner="Computing latency, errors and throughput…")
def _ops(model: str, data_version: str, start: datetime, end: datetime, bucket: str,
         version: str | None) -> OpsReport:
    return compute_operations(state.context(), model, Window(start, end), bucket=bucket, version=version)


@st.cache_data(ttl=300, show_spinner="Computing quality…")
def _quality(model: str, data_version: str, start: datetime, end: datetime, bucket: str,
             version: str | None) -> QualityReport:
    return compute_quality(state.context(), model, Window(start, end), version=version, bucket=bucket)


@st.cache_data(ttl=300, show_spinner="Estimating performance (CBPE)…")
def _estimate(model: str, data_version: str, start: datetime, end: datetime, bucket: str,
              version: str | None) -> EstimationReport:
    return compute_estimation(state.context(), model, Window(start, end), bucket=bucket, version=version)


@st.cache_data(ttl=300, show_spinner="Decomposing the change by segment…")
def _segments(model: str, data_version: str, start: datetime, split: datetime, end: datetime, column: str,
              metric: str, version: str | None) -> SegmentChange:
    return compute_segment_change(state.context(), model, Window(start, split), Window(split, end), (column,),
                                  metric=metric, version=version)


@st.cache_data(ttl=300, show_spinner="Testing drift within each segment…")
def _segment_drift(model: str, data_version: str, start: datetime, split: datetime, end: datetime, column: str,
                   version: str | None) -> SegmentDrift:
    return compute_segment_drift(state.context(), model, Window(start, split), Window(split, end), (column,),
                                 version=version)


@st.cache_data(ttl=300, show_spinner="Computing fairness within each segment…")
def _segment_fairness(model: str, data_version: str, start: datetime, split: datetime, end: datetime, column: str,
                      metric: str, attribute: str, version: str | None) -> SegmentFairness:
    return compute_segment_fairness(state.context(), model, Window(start, split), Window(split, end), (column,),
                                    metric=metric, attribute=attribute, version=version)


METRIC_LABELS = {"roc_auc": "ROC AUC", "f1": "F1", "precision": "precision", "recall": "recall",
                 "specificity": "specificity", "accuracy": "accuracy"}


def _render_estimation(r: EstimationReport) -> None:
    st.subheader("Estimated performance (CBPE)")
    st.caption(f"Confidence-based performance estimation as NannyML computes it, fitted on the labelled predictions "
               f"of {fmt_window(r.reference)} ({r.n_reference:,} rows; {md_text(r.calibration.text)}). The band is "
               "±3 sampling errors for a bucket of that size; the dashed lines are mean ± 3 standard deviations of "
               "the realised metric over the reference's buckets, and a cross marks an estimate outside them.")
    cols = st.columns(len(ESTIMATED))
    for col, m in zip(cols, ESTIMATED, strict=True):
        rec = r.metric(m)
        col.metric(f"{METRIC_LABELS[m]} (est.)", fmt_num(rec["estimated"], undefined="n/a"),
                   help=f"band {fmt_num(rec['lower'])}..{fmt_num(rec['upper'])}; realised "
                        f"{fmt_num(rec['realised'], undefined='n/a')}")
    metric = st.selectbox("Metric", list(ESTIMATED), format_func=METRIC_LABELS.__getitem__, key="ops_cbpe_metric")
    st.plotly_chart(estimate_figure(r.buckets, metric, METRIC_LABELS[metric], window=r.window, bucket=r.bucket),
                    width="stretch")
    for note in r.notes:
        st.warning(md_prose(note))


def _render_segments(model: str, dv: str, start: datetime, end: datetime, version: str | None) -> None:
    st.subheader("Segments: what explains a change")
    ctx = state.guarded(state.context)
    columns = segment_columns(ctx, model) if ctx is not None else []
    if not columns or end - start < timedelta(days=2):
        st.info("Segments need a categorical column and a window of at least two days to compare.")
        return
    attributes = list(ctx.model(model).protected_names) if ctx is not None else []
    metrics = [*SEGMENT_METRICS, DRIFT_SHARE, *(FAIRNESS_METRICS if attributes else ())]
    c = st.columns(3)
    metric = c[1].selectbox("Metric", metrics, key="ops_segment_metric",
                            help="accuracy to selection rate: the change decomposed by segment; drift_share: the "
                                 "share of features drifting within each segment; the fairness metrics: a protected "
                                 "attribute's metric within each segment")
    attribute = None
    if metric in FAIRNESS_METRICS:
        attribute = c[0].selectbox("Protected attribute", attributes, key="ops_segment_attribute", format_func=clip)
        columns = [col for col in columns if col != attribute]
    column = c[0].selectbox("Segment by", columns, key="ops_segment_column", format_func=clip)
    days = max(1, (end - start).days)
    split_day = 1 if days <= 2 else c[2].slider(
        "Change from day", 1, days - 1, value=max(1, days - 7), key="ops_segment_split",
        help="before = the window's days up to this one, after = from it on")
    split = start + timedelta(days=split_day)
    if metric == DRIFT_SHARE:
        _render_segment_drift(state.guarded(_segment_drift, model, dv, start, split, end, column, version))
        return
    if attribute is not None:
        _render_segment_fairness(state.guarded(_segment_fairness, model, dv, start, split, end, column, metric,
                                               attribute, version))
        return
    ch = state.guarded(_segments, model, dv, start, split, end, column, metric, version)
    if ch is None:
        return
    st.write(md_text(ch.headline()))
    st.caption(f"Before {fmt_window(ch.before)}, after {fmt_window(ch.after)}. Contribution = mix (the segment's "
               "share changed) + performance (its own metric changed); contributions add up to the change. Segments "
               f"with fewer than {ch.min_rows} rows in both windows are pooled.")
    if len(ch.ranking):
        st.plotly_chart(contribution_figure(ch.ranking), width="stretch")
        table = ch.ranking.assign(contribution=ch.ranking["contribution"] * 100, mix=ch.ranking["mix"] * 100,
                                  performance=ch.ranking["performance"] * 100)
        st.dataframe(clip_frame(table), hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%.2f") for k in
                                    ("contribution", "mix", "performance")})


def _render_segment_drift(sd: SegmentDrift | None) -> None:
    if sd is None:
        return
    st.write(md_text(sd.headline()))
    st.caption(f"Before {fmt_window(sd.before)} is the reference, after {fmt_window(sd.after)} the current window; "
               "within each segment, the share of features that drift (the Drift page's tests and thresholds, "
               f"on the segment's rows), highest first. Segments with fewer than {sd.min_rows} rows in a window "
               "are pooled and not tested.")
    if sd.ranking["drift_share"].notna().any():
        st.plotly_chart(segment_drift_figure(sd.ranking, sd.drift_share_threshold), width="stretch")
    st.dataframe(clip_frame(sd.ranking), hide_index=True, width="stretch",
                 column_config={"drift_share": st.column_config.NumberColumn("drift share", format="%.2f")})


def _render_segment_fairness(sf: SegmentFairness | None) -> None:
    if sf is None:
        return
    st.write(md_text(sf.headline()))
    st.caption(f"{md_text(sf.label)} of '{md_text(sf.attribute)}' within each segment, after {fmt_window(sf.after)} "
               f"(bars; the marker: before {fmt_window(sf.before)}), the Fairness page's definitions and threshold "
               f"({md_text(sf.threshold)}). Failing segments first, then the farthest from fair; segments with fewer "
               f"than {sf.min_rows} rows after are pooled.")
    if sf.ranking["value_after"].notna().any():
        st.plotly_chart(segment_fairness_figure(sf.ranking, sf.ideal, sf.label), width="stretch")
    st.dataframe(clip_frame(sf.ranking), hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                for k in ("value_before", "value_after", "change", "distance")})


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} ms"


def _window_picker(first: datetime, last: datetime) -> tuple[datetime, datetime] | None:
    lo, hi = first.date(), last.date()
    picked = st.date_input("Window (UTC days)", value=(lo, hi), min_value=lo, max_value=hi, key="ops_window")
    if not isinstance(picked, tuple | list) or len(picked) != 2:
        st.info("Pick the last day of the window.")
        return None
    a, b = picked
    assert isinstance(a, date) and isinstance(b, date)
    return datetime.combine(a, time()), datetime.combine(b, time()) + timedelta(days=1)


def _slo_banner(slo: SloStatus, bucket: str) -> None:
    """One objective's verdict over the window, the same way for every objective."""
    name, promise, source = OBJECTIVE_NAMES[slo.objective.metric], slo.objective.text, md_text(slo.source)
    if slo.met is None:
        st.info(f"{name}: no {bucket} in this window has a value to judge, so there is no SLO verdict.")
    elif slo.met:
        st.success(f"{name} met: every {bucket} had {promise} ({slo.buckets_scored} {bucket}s; from {source}).")
    else:
        st.error(f"{name} breached in {slo.buckets_in_breach} of {slo.buckets_scored} {bucket}s "
                 f"({fmt_pct(slo.breach_share)}; {promise}, from {source}), in {len(slo.breaches)} "
                 "time range(s): see the list below.")


def _breach_table(slo: SloStatus, bucket: str) -> None:
    """The breach ranges of one objective (what the charts shade), or a line saying there is none."""
    name = OBJECTIVE_NAMES[slo.objective.metric]
    if not len(slo.breaches):
        st.write(f"{name} ({slo.objective.text}): no breach in this window.")
        return
    st.write(f"**{name}** ({slo.objective.text} per {bucket})")
    worst = next(c for c in slo.breaches.columns if c.startswith("worst_"))
    label, number = WORST_COLUMNS[worst]
    table = slo.breaches.rename(columns={"start": "from (UTC)", "end": "to (UTC)", "buckets": f"{bucket}s",
                                         worst: label})
    st.dataframe(clip_frame(table), hide_index=True, width="stretch",
                 column_config={label: st.column_config.NumberColumn(format=number)})


def _render_ops(ops: OpsReport) -> None:
    slo = ops.slo
    st.caption(f"Window {fmt_window(ops.window)} (UTC days), per {ops.bucket}.")
    c = [*st.columns(3), *st.columns(3)]
    c[0].metric("Predictions", f"{ops.requests:,}")
    c[1].metric("Error rate", fmt_pct(ops.error_rate),
                help=f"objective: {ops.error_slo.objective.text} per {ops.bucket} "
                     f"(from {md_text(ops.error_slo.source)})")
    c[2].metric("Throughput", f"{ops.throughput_per_hour:,.0f}/h",
                help="predictions per hour from the first to the last active bucket")
    c[3].metric("p50 latency", _ms(ops.latency_p50_ms))
    c[4].metric("p95 latency", _ms(ops.latency_p95_ms),
                help=f"SLO: {slo.objective.text} per {ops.bucket} (from {md_text(slo.source)})")
    c[5].metric("p99 latency", _ms(ops.latency_p99_ms))
    for note in ops.notes:
        st.warning(md_prose(note))
    for objective_status in ops.slos:
        _slo_banner(objective_status, ops.bucket)

    st.subheader("Latency")
    st.plotly_chart(latency_figure(ops.buckets, slo.threshold, slo.breaches, window=ops.window, bucket=ops.bucket,
                                   objective_text=slo.objective.text), width="stretch")
    st.subheader("Errors and throughput")
    err = ops.error_slo
    st.plotly_chart(errors_throughput_figure(ops.buckets, err.threshold, err.breaches, window=ops.window,
                                             bucket=ops.bucket, objective_text=err.objective.text),
                    width="stretch")


def _render_quality(q: QualityReport, min_accuracy: float) -> None:
    st.subheader("Quality over time")
    a = q.actual
    c = [*st.columns(3), *st.columns(2)]
    c[0].metric("Realised accuracy", fmt_num(a.accuracy, undefined="n/a"),
                help=f"on {q.n_labelled:,} labelled predictions")
    c[1].metric("Estimated accuracy (unlabelled)", fmt_num(q.estimated_accuracy, undefined="n/a"),
                help="CBPE over the predictions without a label")
    c[2].metric("Estimated − realised gap", fmt_num(None if q.estimation_gap is None else -q.estimation_gap,
                                                    undefined="n/a"),
                help="estimated minus realised accuracy on the same labelled rows; far from 0 = a signal")
    c[3].metric("Label coverage", fmt_pct(q.label_coverage))
    c[4].metric("Median label delay", "n/a" if q.label_delay.p50_hours is None
                else f"{q.label_delay.p50_hours / 24:.1f} days")
    st.caption(f"Quality counts the {q.n_rows:,} successful predictions (status ok) of the window; label coverage "
               f"= labelled / successful ({q.n_labelled:,} / {q.n_rows:,}), the definition the Overview uses too.")
    if a.reason:
        st.info(md_prose(a.reason))
    if q.estimate_reason:
        st.info(md_prose(q.estimate_reason))
    for note in q.notes:
        st.warning(md_prose(note))
    st.plotly_chart(quality_figure(q.buckets, min_accuracy, window=q.window, bucket=q.bucket), width="stretch")
    st.info(CBPE_ASSUMPTIONS, icon=":material/info:")
    if a.accuracy is not None:
        st.write(f"**On labelled rows** (positive class {md_code(q.positive_class)}): precision {fmt_num(a.precision)} · "
                 f"recall {fmt_num(a.recall)} · F1 {fmt_num(a.f1)} · ROC AUC {fmt_num(a.roc_auc, undefined='n/a')} · "
                 f"expected calibration error {fmt_num(a.ece, undefined='n/a')}")
    left, right = st.columns(2)
    if len(a.reliability):
        left.write("**Calibration (reliability curve, 10 bins)**")
        left.plotly_chart(reliability_figure(a.reliability), width="stretch")
    if len(q.label_delay.histogram):
        right.write("**Label delay**")
        right.plotly_chart(label_delay_figure(q.label_delay.histogram), width="stretch")


def _versions_table(ops: OpsReport, model: str, dv: str, start: datetime, end: datetime) -> pd.DataFrame:
    rows = []
    for v in ops.versions.to_dict(orient="records"):
        qv = state.guarded(_quality, model, dv, start, end, "day", str(v["version"]))
        rows.append({"version": f"v{clip(v['version'])}", "predictions": v["n"], "share": v["share"],
                     "p50 (ms)": v["p50_ms"], "p95 (ms)": v["p95_ms"], "p99 (ms)": v["p99_ms"],
                     "error rate": v["error_rate"], "per hour": v["throughput_per_hour"],
                     "realised accuracy": None if qv is None else qv.actual.accuracy,
                     "estimated accuracy": None if qv is None else qv.estimated_accuracy_all,
                     "label coverage": None if qv is None else qv.label_coverage})
    return pd.DataFrame(rows)


model = state.selected_model()
ctx = state.guarded(state.context)
if model is not None and ctx is not None:
    dv = state.data_version(model)
    span = state.guarded(_span, model, dv)
    if span is not None and span[2] == 0:
        st.info(f"No prediction logs of {md_text(model)} yet: ingest them with "
                f"{md_code(f'vigil ingest --model {model} FILES')} "
                "(or run `vigil demo`).")
    elif span is not None and span[0] is not None and span[1] is not None:
        top = st.columns([3, 1, 1])
        with top[0]:
            picked = _window_picker(span[0], span[1])
        bucket = top[1].radio("Bucket", ["hour", "day"], horizontal=True, key="ops_bucket")
        names = state.guarded(_versions, model, dv) or []
        choice = top[2].selectbox("Version", ["all", *names], key="ops_version", format_func=clip)
        version = None if choice == "all" else choice
        if picked is not None:
            start, end = picked
            ops = state.guarded(_ops, model, dv, start, end, bucket, version)
            if ops is not None:
                _render_ops(ops)
                q = state.guarded(_quality, model, dv, start, end, "day", version)
                if q is not None:
                    _render_quality(q, ctx.model(model).thresholds.min_accuracy)
                if len(ctx.model(model).classes) == 2:
                    est = state.guarded(_estimate, model, dv, start, end, "day", version)
                    if est is not None:
                        _render_estimation(est)
                _render_segments(model, dv, start, end, version)
                st.subheader("Per-version comparison")
                if version is not None:
                    st.caption(f"Showing v{md_text(version)} only; choose “all” to compare versions.")
                st.dataframe(_versions_table(ops, model, dv, start, end), hide_index=True, width="stretch",
                             column_config={
                                 "share": st.column_config.NumberColumn(format="percent"),
                                 "error rate": st.column_config.NumberColumn(format="percent"),
                                 "label coverage": st.column_config.NumberColumn(format="percent"),
                                 "p50 (ms)": st.column_config.NumberColumn(format="%.1f"),
                                 "p95 (ms)": st.column_config.NumberColumn(format="%.1f"),
                                 "p99 (ms)": st.column_config.NumberColumn(format="%.1f"),
                                 "per hour": st.column_config.NumberColumn(format="%.1f"),
                                 "realised accuracy": st.column_config.NumberColumn(format="%.3f"),
                                 "estimated accuracy": st.column_config.NumberColumn(format="%.3f")})
                if len(ops.version_buckets["version"].unique()) > 1:
                    st.plotly_chart(version_latency_figure(ops.version_buckets, ops.slo.threshold,
                                                           window=ops.window, bucket=ops.bucket),
                                    width="stretch")
                st.subheader("SLO breaches")
                for objective_status in ops.slos:
                    _breach_table(objective_status, ops.bucket)
