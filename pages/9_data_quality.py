"""Data quality: are the inputs still what the model was trained on?"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from connectors.windows import Window
from dashboard.charts.data_quality import status_heatmap
from dashboard.governance import gx_results
from dashboard.monitoring.data_quality import DataQualityResult, compute_data_quality, data_quality_over_time
from dashboard.monitoring.drift import default_windows
from dashboard.monitoring.validation import table_findings
from dashboard.ui import state
from dashboard.ui.format import clip, clip_frame, md_code, md_prose, md_text

st.title("Data quality")
st.caption("Missing, unseen and out-of-range values per column against the model's reference, the configured "
           "expectations (Great Expectations' vocabulary, evaluated inside DuckDB) and imported Great "
           "Expectations runs.")


@st.cache_data(ttl=600, show_spinner="Checking data quality in DuckDB…")
def _quality(model: str, cur: str, version: str | None, data_version: str) -> DataQualityResult:
    a, b = cur.split("|")
    return compute_data_quality(state.context(), model, Window(datetime.fromisoformat(a), datetime.fromisoformat(b)),
                                version=version)


@st.cache_data(ttl=600, show_spinner="Checking the log table…")
def _table(model: str, data_version: str) -> pd.DataFrame:
    rows, found = table_findings(state.context(), model)
    return pd.DataFrame([{"check": f.check, "failing": f.count, "of rows": rows, "meaning": f.meaning,
                          "fix": "" if f.ok else f.detail} for f in found])


@st.cache_data(ttl=600, show_spinner="Checking data quality per bucket…")
def _over_time(model: str, cur: str, version: str | None, bucket: str, data_version: str) -> pd.DataFrame:
    a, b = cur.split("|")
    return data_quality_over_time(state.context(), model,
                                  Window(datetime.fromisoformat(a), datetime.fromisoformat(b)), bucket, version)


def _window(pick: object) -> Window | None:
    if isinstance(pick, tuple | list) and len(pick) == 2 and all(isinstance(d, date) for d in pick):
        a, b = pick
        return Window(datetime(a.year, a.month, a.day), datetime(b.year, b.month, b.day) + timedelta(days=1))
    return None


def _status_style(frame: pd.DataFrame) -> object:
    def colour(v: object) -> str:
        return {"pass": "color: #2e7d32", "fail": "color: #c62828; font-weight: 600"}.get(str(v), "color: #757575")

    return frame.style.map(colour, subset=["status"])


def _gx_runs(model: str, version: str | None) -> None:
    runs = state.guarded(gx_results.runs, state.context(), model, version)
    if runs is None:
        return
    if runs.empty:
        st.caption("None imported yet: " + md_code(f"vigil quality import RESULT.json --model {model}") + " stores a "
                   "GX Core 1.x validation result; " + md_code(f"vigil quality run SUITE.json --model {model}")
                   + " runs a suite with GX on a sample of the logs.")
        return
    st.dataframe(clip_frame(runs), hide_index=True, width="stretch",
                 column_config={"success": st.column_config.CheckboxColumn("succeeded")})
    labels = {str(r.id): f"{clip(r.suite)} · {pd.Timestamp(r.run_time):%Y-%m-%d %H:%M} UTC · {r.id}"
              for r in runs.itertuples()}
    picked = st.selectbox("Expectations of the run", list(labels), format_func=labels.__getitem__, key="dq_gx_run")
    run = state.guarded(gx_results.load_run, state.context(), str(picked))
    if run is not None:
        sample = run.batch.get("sample")
        if isinstance(sample, dict):
            st.caption(f"Validated by Great Expectations {md_text(run.gx_version)} on {md_text(sample.get('rows'))} rows "
                       f"({md_text(sample.get('method'))}) of {md_text(sample.get('window'))}.")
        st.dataframe(clip_frame(gx_results.outcomes_frame(run)), hide_index=True, width="stretch",
                     column_config={"success": st.column_config.CheckboxColumn("succeeded")})


model = state.selected_model()
ctx = state.guarded(state.context)
span = state.logged_span(ctx, model) if ctx is not None and model else None
if model and ctx is not None and span is not None:
    first, last, versions = span
    dv = state.data_version(model)
    _, cur_default = default_windows(first, last)
    c1, c2 = st.columns([3, 1])
    pick = c1.date_input("Window", (cur_default.start.date(), (cur_default.end - timedelta(days=1)).date()),
                         min_value=first.date(), max_value=last.date(), key="dq_window")
    version_pick = c2.selectbox("Model version", ["all", *versions], key="dq_version", format_func=clip)
    version = None if version_pick == "all" else str(version_pick)
    window = _window(pick)
    if window is None:
        st.info("Pick a start and an end date.")
        st.stop()
    assert window is not None
    key = f"{window.start.isoformat()}|{window.end.isoformat()}"
    result = state.guarded(_quality, model, key, version, dv)
    if result is not None:
        m1, m2, m3 = st.columns(3)
        m1.metric("Failing checks", len(result.failures))
        m2.metric("Rows", f"{result.n_rows:,}")
        m3.metric("Expectations", len(result.expectations))
        st.caption(f"Reference: {md_text(result.reference_label)}. No verdict on fewer than {result.min_rows:,} rows "
                   "(quality.min_rows). Examples are the most frequent offending values, clipped.")
        if result.failures:
            st.warning("Failing: " + md_text(", ".join(result.failures)), icon=":material/report:")
        for note in sorted({e.note for e in result.expectations if e.status in ("unsupported", "invalid",
                                                                                 "missing column")}):
            st.warning(md_prose(note), icon=":material/rule:")
        frame = result.frame()
        columns = ["all", *dict.fromkeys(frame["column"])]
        chosen = st.selectbox("Column", columns, key="dq_column", format_func=clip)
        shown = frame if chosen == "all" else frame[frame["column"] == chosen]
        st.dataframe(_status_style(clip_frame(shown)), hide_index=True, width="stretch",
                     column_config={"value": st.column_config.NumberColumn(format="%.4g"),
                                    "threshold": st.column_config.NumberColumn("limit", format="%.4g")})

        st.subheader("Status over time")
        bucket = st.radio("Bucket", ["day", "hour"], horizontal=True, key="dq_bucket")
        over = state.guarded(_over_time, model, key, version, bucket, dv)
        if over is not None:
            st.plotly_chart(status_heatmap(over), width="stretch")
            st.caption("Each cell is one check of one column in one bucket: red fails, green passes, grey has too "
                       "few rows for a verdict, dark grey does not apply. Hover a cell for its value and rows.")

    st.subheader("The log table")
    st.caption("The ingest checks over the whole table: a model whose logs are read in place (engine "
               "\"spark\") has no ingest to reject bad rows, so they show here (policy metric table_problems).")
    table = state.guarded(_table, model, dv)
    if table is not None:
        st.dataframe(clip_frame(table), hide_index=True, width="stretch")

    st.subheader("Great Expectations runs")
    _gx_runs(model, version)
