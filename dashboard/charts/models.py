"""Plotly figures for the Models page (pure: DataFrames in, figures out, testable without a browser)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import palette
from dashboard.charts.text import plot_text


def metrics_by_version_figure(long: pd.DataFrame, champion: str | None = None) -> go.Figure:
    """Grouped bars of holdout metrics (``version``, ``metric``, ``value``) per model version."""
    fig = go.Figure()
    versions = sorted(long["version"].astype(str).unique(), key=lambda v: int(v) if v.isdigit() else v)
    for i, (metric, part) in enumerate(long.groupby("metric", sort=False)):
        values = dict(zip(part["version"].astype(str), part["value"], strict=False))
        fig.add_bar(name=plot_text(metric), marker_color=palette.categorical(i),
                    x=[f"v{plot_text(v)}" + (" (champion)" if v == champion else "") for v in versions],
                    y=[values.get(v) for v in versions],
                    text=[f"{values[v]:.3f}" if v in values else "" for v in versions], textposition="outside")
    fig.update_layout(barmode="group", yaxis={"title": "holdout value", "range": [0, 1.08]},
                      xaxis={"title": "model version"}, legend={"orientation": "h", "y": 1.12},
                      margin={"t": 40, "b": 40, "l": 40, "r": 10}, height=320)
    return fig
