"""Plotly figures of the Drift page: distribution overlay, feature × time heatmap, drifted share over time.

Scores of different tests live on different scales (p-values vs distances), so the heatmap colours the
log10 of the severity (score relative to its threshold, oriented so that > 0 means past the threshold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.text import label_map

REF_COLOUR = "#4c78a8"
CUR_COLOUR = "#f58518"


def distribution_figure(dist: pd.DataFrame, column: str) -> go.Figure:
    """Reference and current shares per bin or category, overlaid (categories from the logs as escaped,
    clipped labels: plotly reads markup in labels, and a 10 MB category would freeze the page)."""
    fig = go.Figure()
    labels = label_map(dist["bin"])
    for side, colour in (("reference", REF_COLOUR), ("current", CUR_COLOUR)):
        part = dist[dist["side"] == side]
        if part["left"].notna().any():
            x = (part["left"].astype(float) + part["right"].astype(float)) / 2
            width = (part["right"].astype(float) - part["left"].astype(float))
            fig.add_bar(x=x, y=part["share"], width=width, name=side, marker_color=colour, opacity=0.55)
        else:
            fig.add_bar(x=[labels[str(b)] for b in part["bin"]], y=part["share"], name=side, marker_color=colour,
                        opacity=0.55)
    fig.update_layout(barmode="overlay", title=f"Distribution of {column}", xaxis_title=column,
                      yaxis_title="share of rows", yaxis_tickformat=".0%", legend_title_text="",
                      margin={"t": 50, "b": 40, "l": 50, "r": 20}, height=360)
    return fig


def heatmap_figure(over_time: pd.DataFrame) -> go.Figure:
    """Feature × time: log10(severity) per column and bucket; hover shows method, score, threshold."""
    fig = go.Figure()
    if over_time.empty:
        fig.update_layout(title="No data in the range")
        return fig
    df = over_time.copy()
    sev = df["severity"].where(df["severity"] > 0)
    df["z"] = np.clip(np.log10(sev.astype(float)), -2, 2)
    z = df.pivot_table(index="column", columns="bucket", values="z", aggfunc="first", dropna=False)
    score = df.pivot_table(index="column", columns="bucket", values="score", aggfunc="first", dropna=False)
    method = df.pivot_table(index="column", columns="bucket", values="method", aggfunc="first", dropna=False)
    order = list(dict.fromkeys(df["column"]))
    z, score, method = (t.reindex(order) for t in (z, score, method))
    text = [[_cell(m, s) for m, s in zip(mrow, srow, strict=True)]
            for mrow, srow in zip(method.to_numpy(dtype=object), score.to_numpy(dtype=object), strict=True)]
    fig.add_heatmap(z=z.to_numpy(dtype=float), x=list(z.columns), y=list(z.index), text=text,
                    hovertemplate="%{y} · %{x}<br>%{text}<extra></extra>", zmin=-2, zmax=2, zmid=0,
                    colorscale="RdBu_r", colorbar={"title": "log10 severity", "tickvals": [-2, 0, 2],
                                                   "ticktext": ["far below", "threshold", "far above"]})
    fig.update_layout(title="Drift per feature over time (red = past the threshold)", yaxis_autorange="reversed",
                      height=max(300, 26 * len(order) + 120), margin={"t": 50, "b": 40, "l": 140, "r": 20})
    return fig


def _cell(method: object, score: object) -> str:
    if isinstance(score, float | int) and np.isfinite(score):
        return f"{method}: {score:.3g}"
    return "not tested"


def share_figure(shares: pd.DataFrame, threshold: float) -> go.Figure:
    """Share of drifted columns per bucket, with the dataset-drift threshold."""
    fig = go.Figure()
    fig.add_scatter(x=shares["bucket"], y=shares["share_drifted"], mode="lines+markers", name="drifted share",
                    line_color=CUR_COLOUR)
    fig.add_hline(y=threshold, line_dash="dash", line_color="#d62728",
                  annotation_text=f"dataset drift at {threshold:.0%}")
    fig.update_layout(title="Share of drifted columns", yaxis_tickformat=".0%", yaxis_range=[0, 1.05],
                      height=300, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig
