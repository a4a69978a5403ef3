"""Plotly figures for the Retraining page (pure: DataFrames in, figures out, testable without a browser)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts import palette

QUALITY = ("accuracy", "f1", "roc_auc")
STATE_COLOURS = palette.JOB_STATE


def comparison_figure(comparison: pd.DataFrame) -> go.Figure:
    """Champion vs candidate: quality metrics and disparate impact per dataset (holdout, production).

    ``comparison`` is :func:`dashboard.lifecycle.gate.comparison_frame` (dataset, metric, champion, candidate, delta).
    """
    datasets = [d for d in ("holdout", "production") if d in set(comparison["dataset"])]
    fig = make_subplots(rows=1, cols=max(len(datasets), 1), subplot_titles=[f"{d} rows" for d in datasets] or [""],
                        shared_yaxes=True)
    for col, ds in enumerate(datasets, start=1):
        part = comparison[(comparison["dataset"] == ds)
                          & (comparison["metric"].isin(QUALITY) | comparison["metric"].str.startswith(
                              "disparate_impact_"))]
        labels = [m.replace("disparate_impact_", "DI ") for m in part["metric"]]
        for role, colour in palette.ROLE.items():
            values = part[role].astype(float)
            fig.add_bar(name=role, x=labels, y=values, marker_color=colour, legendgroup=role, showlegend=col == 1,
                        text=[f"{v:.3f}" if pd.notna(v) else "" for v in values], textposition="outside",
                        row=1, col=col)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.18}, height=360,
                      margin={"t": 60, "b": 40, "l": 40, "r": 10})
    fig.update_yaxes(title_text="value", row=1, col=1)
    return fig


def latency_figure(comparison: pd.DataFrame) -> go.Figure:
    """Batch prediction latency (ms per 1,000 rows) of champion and candidate on the holdout."""
    part = comparison[comparison["metric"] == "latency_ms_per_1k"]
    fig = go.Figure()
    for role, colour in palette.ROLE.items():
        fig.add_bar(name=role, x=list(part["dataset"]), y=part[role].astype(float), marker_color=colour)
    fig.update_layout(barmode="group", yaxis={"title": "ms per 1,000 rows"}, height=260,
                      margin={"t": 30, "b": 30, "l": 40, "r": 10}, legend={"orientation": "h", "y": 1.2})
    return fig


def jobs_duration_figure(jobs: pd.DataFrame) -> go.Figure:
    """Duration of recent jobs, coloured by state (from :func:`dashboard.lifecycle.jobs.jobs_frame`)."""
    fig = go.Figure()
    for state, part in jobs.groupby("state", sort=False):
        fig.add_bar(name=str(state), x=part["id"], y=part["duration_s"],
                    marker_color=palette.state_colour(STATE_COLOURS, str(state)))
    fig.update_layout(yaxis={"title": "seconds"}, xaxis={"title": "job"}, height=240,
                      margin={"t": 30, "b": 30, "l": 40, "r": 10}, legend={"orientation": "h", "y": 1.2})
    return fig
