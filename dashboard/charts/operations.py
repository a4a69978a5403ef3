"""Plotly figures for the Operations page (pure: DataFrames in, figures out, testable without a browser).

Times on the x axes are UTC, as stored (the axis titles say so).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.text import plot_text

BREACH_FILL = "rgba(214, 39, 40, 0.15)"
SLO_COLOUR = "#d62728"
_MARGIN = {"t": 40, "b": 40, "l": 50, "r": 10}


def latency_figure(buckets: pd.DataFrame, slo_ms: float, breaches: pd.DataFrame) -> go.Figure:
    """p50/p95/p99 latency per bucket, the SLO as a dashed line and each breach range shaded."""
    fig = go.Figure()
    for col, name, width, colour in (("p50_ms", "p50", 1.2, "#9ecae1"), ("p95_ms", "p95", 2.2, "#1f77b4"),
                                     ("p99_ms", "p99", 1.2, "#ffbb78")):
        fig.add_scatter(x=buckets["bucket"], y=buckets[col], name=name, mode="lines",
                        line={"width": width, "color": colour}, connectgaps=False)
    if "breach" in buckets:  # mark breaching buckets too: a short breach is a thin band on a long window
        hit = buckets[buckets["breach"].astype(bool)]
        fig.add_scatter(x=hit["bucket"], y=hit["p95_ms"], name="p95 above SLO", mode="markers",
                        marker={"color": SLO_COLOUR, "size": 8, "symbol": "x"})
    for b in breaches.to_dict(orient="records"):
        fig.add_vrect(x0=b["start"], x1=b["end"], fillcolor=BREACH_FILL, line_width=0, layer="below")
    if len(breaches):  # a legend entry for the shading
        fig.add_scatter(x=[None], y=[None], mode="markers", name="SLO breach",
                        marker={"size": 12, "symbol": "square", "color": BREACH_FILL})
    fig.add_hline(y=slo_ms, line={"dash": "dash", "color": SLO_COLOUR},
                  annotation_text=f"SLO p95 ≤ {slo_ms:g} ms", annotation_position="top left")
    fig.update_layout(yaxis={"title": "latency (ms)", "rangemode": "tozero"}, xaxis={"title": "time (UTC)"},
                      legend={"orientation": "h", "y": 1.12}, margin=_MARGIN, height=360)
    return fig


def errors_throughput_figure(buckets: pd.DataFrame, error_threshold: float) -> go.Figure:
    """Requests per bucket (bars) above the error rate per bucket with its threshold."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("throughput (requests per bucket)", "error rate"))
    fig.add_bar(x=buckets["bucket"], y=buckets["n"], name="requests", marker_color="#1f77b4", row=1, col=1)
    fig.add_scatter(x=buckets["bucket"], y=buckets["error_rate"], name="error rate", mode="lines",
                    line={"color": "#ff7f0e"}, row=2, col=1)
    fig.add_hline(y=error_threshold, line={"dash": "dash", "color": SLO_COLOUR}, row=2, col=1,
                  annotation_text=f"threshold {error_threshold:.0%}", annotation_position="top left")
    fig.update_yaxes(title_text="requests", row=1, col=1)
    fig.update_yaxes(title_text="error rate", tickformat=".0%", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(showlegend=False, margin=_MARGIN, height=420)
    return fig


def version_latency_figure(version_buckets: pd.DataFrame, slo_ms: float) -> go.Figure:
    """p95 latency per bucket, one line per model version."""
    fig = go.Figure()
    for version, part in version_buckets.groupby("version", sort=True):
        fig.add_scatter(x=part["bucket"], y=part["p95_ms"], name=f"v{plot_text(version)} p95", mode="lines")
    fig.add_hline(y=slo_ms, line={"dash": "dash", "color": SLO_COLOUR})
    fig.update_layout(yaxis={"title": "p95 latency (ms)", "rangemode": "tozero"}, xaxis={"title": "time (UTC)"},
                      legend={"orientation": "h", "y": 1.12}, margin=_MARGIN, height=300)
    return fig


def quality_figure(buckets: pd.DataFrame, min_accuracy: float | None = None) -> go.Figure:
    """Realised accuracy (labelled rows) and CBPE estimated accuracy per bucket, and the label coverage."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=buckets["bucket"], y=buckets["estimated_accuracy"], name="estimated (CBPE, all rows)",
                    mode="lines+markers", line={"dash": "dot", "color": "#9467bd"})
    fig.add_scatter(x=buckets["bucket"], y=buckets["actual_accuracy"], name="realised (labelled rows)",
                    mode="lines+markers", line={"color": "#2ca02c"}, connectgaps=False)
    fig.add_bar(x=buckets["bucket"], y=buckets["label_coverage"], name="label coverage", opacity=0.25,
                marker_color="#7f7f7f", secondary_y=True)
    if min_accuracy is not None:
        fig.add_hline(y=min_accuracy, line={"dash": "dash", "color": SLO_COLOUR},
                      annotation_text=f"min accuracy {min_accuracy:g}", annotation_position="bottom left")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="label coverage", range=[0, 1.02], tickformat=".0%", secondary_y=True,
                     showgrid=False)
    fig.update_layout(xaxis={"title": "time (UTC)"}, legend={"orientation": "h", "y": 1.15}, margin=_MARGIN,
                      height=340)
    return fig


def reliability_figure(reliability: pd.DataFrame) -> go.Figure:
    """Reliability curve: share positive against mean predicted probability per bin (diagonal = calibrated)."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                    line={"dash": "dash", "color": "#7f7f7f"})
    fig.add_scatter(x=reliability["mean_proba"], y=reliability["frac_positive"], mode="lines+markers",
                    name="model", text=[f"{n} rows" for n in reliability["n"]],
                    marker={"size": 8}, line={"color": "#1f77b4"})
    fig.update_layout(xaxis={"title": "mean predicted probability of the positive class", "range": [0, 1]},
                      yaxis={"title": "share positive", "range": [0, 1]}, margin=_MARGIN, height=340,
                      legend={"orientation": "h", "y": 1.12})
    return fig


def label_delay_figure(histogram: pd.DataFrame) -> go.Figure:
    """Labels by delay in whole days from the prediction to its label."""
    fig = go.Figure()
    fig.add_bar(x=histogram["day"], y=histogram["n"], marker_color="#17becf", name="labels")
    fig.update_layout(xaxis={"title": "label delay (days after the prediction)", "dtick": 1},
                      yaxis={"title": "labels"}, margin=_MARGIN, height=300)
    return fig
