"""Plotly figures for the Operations page (pure: DataFrames in, figures out, testable without a browser).

Times on the x axes are UTC, as stored (the axis titles say so); each time axis spans the window snapped
to whole buckets (:func:`dashboard.charts.axes.time_axis`) and each value sits over its own bucket
(:func:`dashboard.charts.axes.bucket_trace`). Every objective is drawn the same way: its
threshold as a dashed line, each breach range shaded, each breaching bucket marked.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from connectors.windows import Window
from dashboard.charts import palette
from dashboard.charts.axes import bucket_axis, bucket_trace, percent_axis
from dashboard.charts.text import plot_text

BREACH_FILL = palette.BAD_FILL
SLO_COLOUR = palette.THRESHOLD
_MARGIN = {"t": 40, "b": 40, "l": 50, "r": 10}
#: Up to this many points a line also gets markers (a single point of a line draws nothing).
_MARKERS_UP_TO = 48


def _mode(n: int) -> str:
    return "lines+markers" if n <= _MARKERS_UP_TO else "lines"


def _breach_marks(fig: go.Figure, buckets: pd.DataFrame, breaches: pd.DataFrame | None, flag: str, column: str,
                  name: str, bucket: str, **where: Any) -> None:
    """Shade each breach range and mark each breaching bucket (a short breach is a thin band on a long
    window), with a legend entry for the shading."""
    if flag in buckets:
        hit = buckets[buckets[flag].astype(bool)]
        fig.add_scatter(x=hit["bucket"], y=hit[column], name=name, mode="markers", showlegend=bool(len(hit)),
                        marker={"color": SLO_COLOUR, "size": 8, "symbol": "x"}, **bucket_trace(bucket), **where)
    if breaches is None or not len(breaches):
        return
    for b in breaches.to_dict(orient="records"):
        fig.add_vrect(x0=b["start"], x1=b["end"], fillcolor=BREACH_FILL, line_width=0, layer="below", **where)
    fig.add_scatter(x=[None], y=[None], mode="markers", name="SLO breach",
                    marker={"size": 12, "symbol": "square", "color": BREACH_FILL}, **where)


def latency_figure(buckets: pd.DataFrame, slo_ms: float, breaches: pd.DataFrame, *, window: Window | None = None,
                   bucket: str = "hour", objective_text: str | None = None) -> go.Figure:
    """p50/p95/p99 latency per bucket, the SLO as a dashed line and each breach range shaded."""
    fig = go.Figure()
    for col, name, width in (("p50_ms", "p50", 1.2), ("p95_ms", "p95", 2.2), ("p99_ms", "p99", 1.2)):
        fig.add_scatter(x=buckets["bucket"], y=buckets[col], name=name, mode=_mode(len(buckets)),
                        line={"width": width, "color": palette.LATENCY[name]}, connectgaps=False,
                        **bucket_trace(bucket))
    _breach_marks(fig, buckets, breaches, "breach", "p95_ms", "p95 above SLO", bucket)
    fig.add_hline(y=slo_ms, line={"dash": "dash", "color": SLO_COLOUR},
                  annotation_text=f"SLO {objective_text or f'p95 ≤ {slo_ms:g} ms'}", annotation_position="top left")
    fig.update_layout(yaxis={"title": "latency (ms)", "rangemode": "tozero"},
                      xaxis=bucket_axis(buckets["bucket"], bucket, window),
                      legend={"orientation": "h", "y": 1.12}, margin=_MARGIN, height=360)
    return fig


def errors_throughput_figure(buckets: pd.DataFrame, error_threshold: float, breaches: pd.DataFrame | None = None,
                             *, window: Window | None = None, bucket: str = "hour",
                             objective_text: str | None = None) -> go.Figure:
    """Requests per bucket (bars) above the error rate per bucket with its objective: the threshold
    dashed, each breach range shaded on both panels, each breaching bucket marked."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("throughput (requests per bucket)", "error rate"))
    fig.add_bar(x=buckets["bucket"], y=buckets["n"], name="requests", marker_color=palette.MEASURE,
                **bucket_trace(bucket, bar=True), row=1, col=1)
    fig.add_scatter(x=buckets["bucket"], y=buckets["error_rate"], name="error rate", mode=_mode(len(buckets)),
                    line={"color": palette.ERRORS}, **bucket_trace(bucket), row=2, col=1)
    _breach_marks(fig, buckets, breaches, "error_breach", "error_rate", "error rate above objective", bucket,
                  row=2, col=1)
    for b in ([] if breaches is None else breaches.to_dict(orient="records")):
        fig.add_vrect(x0=b["start"], x1=b["end"], fillcolor=BREACH_FILL, line_width=0, layer="below", row=1, col=1)
    fig.add_hline(y=error_threshold, line={"dash": "dash", "color": SLO_COLOUR}, row=2, col=1,
                  annotation_text=objective_text or f"threshold {error_threshold:.2%}",
                  annotation_position="top left")
    fig.update_yaxes(title_text="requests", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="error rate", **percent_axis(buckets["error_rate"], include=[error_threshold]),
                     row=2, col=1)
    axis = bucket_axis(buckets["bucket"], bucket, window)
    fig.update_xaxes(**{k: v for k, v in axis.items() if k != "title"})
    fig.update_xaxes(title_text=axis["title"]["text"], row=2, col=1)
    fig.update_layout(showlegend=bool(breaches is not None and len(breaches)), legend={"orientation": "h", "y": 1.18},
                      margin={**_MARGIN, "t": 80}, height=470)
    return fig


def version_latency_figure(version_buckets: pd.DataFrame, slo_ms: float, *, window: Window | None = None,
                           bucket: str = "hour") -> go.Figure:
    """p95 latency per bucket, one line per model version."""
    fig = go.Figure()
    for i, (version, part) in enumerate(version_buckets.groupby("version", sort=True)):
        fig.add_scatter(x=part["bucket"], y=part["p95_ms"], name=f"v{plot_text(version)} p95", mode=_mode(len(part)),
                        line={"color": palette.categorical(i)}, **bucket_trace(bucket))
    fig.add_hline(y=slo_ms, line={"dash": "dash", "color": SLO_COLOUR})
    fig.update_layout(yaxis={"title": "p95 latency (ms)", "rangemode": "tozero"},
                      xaxis=bucket_axis(version_buckets["bucket"], bucket, window),
                      legend={"orientation": "h", "y": 1.12},
                      margin=_MARGIN, height=300)
    return fig


def quality_figure(buckets: pd.DataFrame, min_accuracy: float | None = None, *, window: Window | None = None,
                   bucket: str = "day") -> go.Figure:
    """Realised accuracy (labelled rows) and CBPE estimated accuracy per bucket, and the label coverage."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=buckets["bucket"], y=buckets["estimated_accuracy"], name="estimated (CBPE, all rows)",
                    mode="lines+markers", line={"dash": "dot", "color": palette.ESTIMATE}, **bucket_trace(bucket))
    fig.add_scatter(x=buckets["bucket"], y=buckets["actual_accuracy"], name="realised (labelled rows)",
                    mode="lines+markers", line={"color": palette.MEASURE}, connectgaps=False, **bucket_trace(bucket))
    fig.add_bar(x=buckets["bucket"], y=buckets["label_coverage"], name="label coverage", opacity=0.25,
                marker_color=palette.NEUTRAL, secondary_y=True, **bucket_trace(bucket, bar=True))
    if min_accuracy is not None:
        fig.add_hline(y=min_accuracy, line={"dash": "dash", "color": SLO_COLOUR},
                      annotation_text=f"min accuracy {min_accuracy:g}", annotation_position="bottom left")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="label coverage", **percent_axis(lo=0.0, hi=1.02), secondary_y=True, showgrid=False)
    fig.update_layout(xaxis=bucket_axis(buckets["bucket"], bucket, window), legend={"orientation": "h", "y": 1.15},
                      margin=_MARGIN, height=340)
    return fig


def reliability_figure(reliability: pd.DataFrame) -> go.Figure:
    """Reliability curve: share positive against mean predicted probability per bin (diagonal = calibrated)."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                    line={"dash": "dash", "color": palette.NEUTRAL})
    fig.add_scatter(x=reliability["mean_proba"], y=reliability["frac_positive"], mode="lines+markers",
                    name="model", text=[f"{n} rows" for n in reliability["n"]],
                    marker={"size": 8}, line={"color": palette.MEASURE})
    fig.update_layout(xaxis={"title": "mean predicted probability of the positive class", "range": [0, 1]},
                      yaxis={"title": "share positive", "range": [0, 1]}, margin=_MARGIN, height=340,
                      legend={"orientation": "h", "y": 1.12})
    return fig


def label_delay_figure(histogram: pd.DataFrame) -> go.Figure:
    """Labels by delay in whole days from the prediction to its label."""
    fig = go.Figure()
    fig.add_bar(x=histogram["day"], y=histogram["n"], marker_color=palette.MEASURE, name="labels")
    fig.update_layout(xaxis={"title": "label delay (days after the prediction)", "dtick": 1},
                      yaxis={"title": "labels"}, margin=_MARGIN, height=300)
    return fig
