"""Plot builders for estimated performance (CBPE bands), multivariate drift and segment metrics.

They take the frames :mod:`dashboard.monitoring.estimation`, ``.multivariate``, ``.domain_classifier`` and
``.segments`` return
and give plotly figures; segment names come from logged values, so they pass through ``plot_text``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from connectors.windows import Window
from dashboard.charts import palette
from dashboard.charts.axes import bucket_axis, bucket_trace
from dashboard.charts.text import plot_text

_MARGIN = {"t": 40, "b": 40, "l": 50, "r": 10}
BAND_FILL = "rgba(148, 103, 189, 0.18)"


def _thresholds(fig: go.Figure, lo: float | None, hi: float | None) -> None:
    for value, name in ((lo, "lower threshold"), (hi, "upper threshold")):
        if value is not None and value == value:
            fig.add_hline(y=float(value), line={"dash": "dash", "color": palette.THRESHOLD},
                          annotation_text=f"{name} {float(value):.3f}", annotation_position="bottom left")


def _band(fig: go.Figure, b: pd.DataFrame, value: str, bucket: str, name: str) -> None:
    fig.add_scatter(x=b["bucket"], y=b["upper"], mode="lines", line={"width": 0}, showlegend=False,
                    hoverinfo="skip", **bucket_trace(bucket))
    fig.add_scatter(x=b["bucket"], y=b["lower"], mode="lines", line={"width": 0}, fill="tonexty",
                    fillcolor=BAND_FILL, name="±3 sampling errors", hoverinfo="skip", **bucket_trace(bucket))
    fig.add_scatter(x=b["bucket"], y=b[value], name=name, mode="lines+markers",
                    line={"dash": "dot", "color": palette.ESTIMATE}, **bucket_trace(bucket))
    hit = b[b["alert"].astype(bool)]
    if len(hit):
        fig.add_scatter(x=hit["bucket"], y=hit[value], name="alert", mode="markers",
                        marker={"color": palette.BAD, "size": 11, "symbol": "x"}, **bucket_trace(bucket))


def estimate_figure(buckets: pd.DataFrame, metric: str, label: str, *, window: Window | None = None,
                    bucket: str = "day") -> go.Figure:
    """One metric per bucket: the CBPE estimate with its band, the realised value where labels arrived,
    the reference thresholds and the alerting buckets."""
    b = buckets[buckets["metric"] == metric].sort_values("bucket")
    fig = go.Figure()
    _band(fig, b, "estimated", bucket, f"estimated {label} (CBPE)")
    fig.add_scatter(x=b["bucket"], y=b["realised"], name=f"realised {label} (labelled rows)", mode="lines+markers",
                    line={"color": palette.MEASURE}, connectgaps=False, **bucket_trace(bucket))
    if len(b):
        _thresholds(fig, b["lower_threshold"].iloc[0], b["upper_threshold"].iloc[0])
    fig.update_yaxes(title_text=label)
    fig.update_layout(xaxis=bucket_axis(b["bucket"], bucket, window), legend={"orientation": "h", "y": 1.15},
                      margin=_MARGIN, height=340)
    return fig


def reconstruction_figure(buckets: pd.DataFrame, lower: float | None, upper: float | None, *,
                          window: Window | None = None, bucket: str = "day") -> go.Figure:
    """PCA reconstruction error per bucket with its band and the thresholds from the reference buckets."""
    b = buckets.sort_values("bucket")
    fig = go.Figure()
    _band(fig, b, "value", bucket, "reconstruction error")
    _thresholds(fig, lower, upper)
    fig.update_yaxes(title_text="mean reconstruction error")
    fig.update_layout(xaxis=bucket_axis(b["bucket"], bucket, window), legend={"orientation": "h", "y": 1.15},
                      margin=_MARGIN, height=340)
    return fig


def classifier_figure(buckets: pd.DataFrame, lower: float, upper: float, *, window: Window | None = None,
                      bucket: str = "day") -> go.Figure:
    """Domain-classifier ROC AUC per bucket, NannyML's constant thresholds and the alerting buckets (a bucket
    inside the reference is drawn hollow: it is compared with the rest of the reference)."""
    b = buckets.sort_values("bucket")
    fig = go.Figure()
    fig.add_scatter(x=b["bucket"], y=b["value"], name="ROC AUC (5-fold cross-validated)", mode="lines+markers",
                    line={"color": palette.ESTIMATE}, connectgaps=False, **bucket_trace(bucket))
    inside = b[b["period"] == "reference"]
    if len(inside):
        fig.add_scatter(x=inside["bucket"], y=inside["value"], name="inside the reference", mode="markers",
                        marker={"color": "white", "line": {"color": palette.ESTIMATE, "width": 2}, "size": 9},
                        **bucket_trace(bucket))
    hit = b[b["alert"].astype(bool)]
    if len(hit):
        fig.add_scatter(x=hit["bucket"], y=hit["value"], name="alert", mode="markers",
                        marker={"color": palette.BAD, "size": 11, "symbol": "x"}, **bucket_trace(bucket))
    _thresholds(fig, lower, upper)
    fig.update_yaxes(title_text="domain classifier ROC AUC")
    fig.update_layout(xaxis=bucket_axis(b["bucket"], bucket, window), legend={"orientation": "h", "y": 1.15},
                      margin=_MARGIN, height=340)
    return fig


def contribution_figure(ranking: pd.DataFrame, top: int = 10) -> go.Figure:
    """Each segment's contribution to the change in points, split into mix and performance."""
    r = ranking.head(top).iloc[::-1]
    names = [plot_text(s) for s in r["segment"]]
    fig = go.Figure()
    fig.add_bar(y=names, x=r["mix"] * 100, orientation="h", name="mix (share changed)", marker_color=palette.NEUTRAL)
    fig.add_bar(y=names, x=r["performance"] * 100, orientation="h", name="performance (its metric changed)",
                marker_color=palette.ESTIMATE)
    fig.update_layout(barmode="relative", xaxis_title="contribution to the change (points)",
                      legend={"orientation": "h", "y": 1.15}, margin={**_MARGIN, "l": 10},
                      height=120 + 28 * len(r))
    return fig


def segment_drift_figure(ranking: pd.DataFrame, threshold: float, top: int = 10) -> go.Figure:
    """Each segment's drift share (drifted / judged features), highest first, and the dataset-drift share."""
    r = ranking[ranking["drift_share"].notna()].head(top).iloc[::-1]
    names = [plot_text(s) for s in r["segment"]]
    colours = [palette.BAD if v >= threshold else palette.ESTIMATE for v in r["drift_share"]]
    fig = go.Figure()
    fig.add_bar(y=names, x=r["drift_share"], orientation="h", marker_color=colours, name="drift share",
                customdata=list(zip(r["n_drifted"], r["n_judged"], strict=True)),
                hovertemplate="%{y}: %{x:.2f} (%{customdata[0]} of %{customdata[1]} features)<extra></extra>")
    fig.add_vline(x=threshold, line={"dash": "dash", "color": palette.THRESHOLD},
                  annotation_text=f"dataset drift at {threshold:g}", annotation_position="top")
    fig.update_layout(xaxis={"title": "share of features drifting within the segment", "range": [0, 1]},
                      margin={**_MARGIN, "l": 10}, height=120 + 28 * len(r), showlegend=False)
    return fig


def segment_fairness_figure(ranking: pd.DataFrame, ideal: float, label: str, top: int = 10) -> go.Figure:
    """A fairness metric per segment in the after window (red where it fails), the before window's value as
    a marker, and the metric's ideal as a line."""
    r = ranking[ranking["value_after"].notna()].head(top).iloc[::-1]
    names = [plot_text(s) for s in r["segment"]]
    colours = [palette.BAD if v == "fail" else palette.ESTIMATE for v in r["verdict"]]
    fig = go.Figure()
    fig.add_bar(y=names, x=r["value_after"], orientation="h", marker_color=colours, name="after",
                customdata=[plot_text(v) for v in r["verdict"]],
                hovertemplate="%{y}: %{x:.3f} (%{customdata})<extra>after</extra>")
    fig.add_scatter(y=names, x=r["value_before"], mode="markers", name="before",
                    marker={"color": palette.NEUTRAL, "symbol": "line-ns", "size": 16, "line": {"width": 3}},
                    hovertemplate="%{y}: %{x:.3f}<extra>before</extra>")
    fig.add_vline(x=ideal, line={"dash": "dash", "color": palette.THRESHOLD}, annotation_text=f"fair = {ideal:g}",
                  annotation_position="top")
    fig.update_layout(xaxis_title=plot_text(label), legend={"orientation": "h", "y": 1.15},
                      margin={**_MARGIN, "l": 10}, height=140 + 28 * len(r))
    return fig
