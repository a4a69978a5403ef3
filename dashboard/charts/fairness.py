"""Plotly figures for the Fairness page (pure: DataFrames in, figures out, testable without a browser)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from connectors.windows import Window
from dashboard.charts import palette
from dashboard.charts.axes import bucket_axis, bucket_trace
from dashboard.charts.text import label_map

RATE_LABELS: dict[str, str] = {
    "selection_rate": "selection rate (predicted favourable)",
    "base_rate": "base rate (labelled favourable)",
    "tpr": "true positive rate",
    "fpr": "false positive rate",
    "precision": "precision",
    "error_rate": "error rate",
}
PASS_FILL = palette.GOOD_FILL


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def group_rates_figure(groups: pd.DataFrame, rates: tuple[str, ...] = ("selection_rate", "base_rate", "tpr", "fpr",
                                                                       "precision")) -> go.Figure:
    """Grouped bars: one bar per rate for each group; privileged groups marked, too-small groups faded.
    Group names come from the logs: shown as escaped, clipped labels."""
    label = label_map(groups["group"])
    names = [f"{label[str(g)]} (privileged)" if p else label[str(g)]
             for g, p in zip(groups["group"], groups["privileged"], strict=True)]
    small = groups["too_small"].astype(bool).tolist()
    fig = go.Figure()
    for i, rate in enumerate(rates):
        values = [_num(v) for v in groups[rate]]
        fig.add_bar(name=RATE_LABELS.get(rate, rate), x=names, y=values, marker_color=palette.categorical(i),
                    text=["undefined" if v is None else f"{v:.2f}" + (" (small)" if s else "")
                          for v, s in zip(values, small, strict=True)],
                    textposition="outside", cliponaxis=False,
                    marker={"opacity": [0.35 if s else 1.0 for s in small]})
    fig.update_layout(barmode="group", yaxis={"title": "rate", "range": [0, 1.1]}, xaxis={"title": "group"},
                      legend={"orientation": "h", "y": 1.15}, margin={"t": 50, "b": 40, "l": 40, "r": 10},
                      height=360)
    return fig


def metric_over_time_figure(over_time: pd.DataFrame, metric: str, title: str | None = None, *,
                            window: Window | None = None, bucket: str = "day") -> go.Figure:
    """One metric per bucket with its 95% interval, the acceptable band shaded and the ideal value dashed.

    Buckets where the metric is undefined are marked on the axis with the reason in the hover text.
    """
    part = over_time[over_time["metric"] == metric].sort_values("bucket")
    fig = go.Figure()
    lo, hi = (part["band_low"].dropna(), part["band_high"].dropna())
    if len(lo) and len(hi):
        fig.add_hrect(y0=float(lo.iloc[0]), y1=float(hi.iloc[0]), fillcolor=PASS_FILL, line_width=0,
                      annotation_text="acceptable", annotation_position="top left")
    else:  # a one-sided policy: draw its limit
        for edge in (lo, hi):
            if len(edge):
                fig.add_hline(y=float(edge.iloc[0]), line={"dash": "dash", "color": palette.THRESHOLD},
                              annotation_text="limit")
    ideal = 1.0 if metric.endswith("disparate_impact") else 0.0
    fig.add_hline(y=ideal, line_dash="dot", line_color=palette.NEUTRAL)
    defined = part[part["value"].map(_num).notna()]
    value = defined["value"].map(_num)
    upper = defined["upper"].map(_num)
    lower = defined["lower"].map(_num)
    err_plus = [(u - v) if u is not None else None for u, v in zip(upper, value, strict=True)]
    err_minus = [(v - lw) if lw is not None else None for lw, v in zip(lower, value, strict=True)]
    fig.add_scatter(x=defined["bucket"], y=value, mode="lines+markers", name="value (95% interval)",
                    line={"color": palette.MEASURE}, **bucket_trace(bucket),
                    error_y={"type": "data", "symmetric": False, "array": err_plus, "arrayminus": err_minus},
                    customdata=defined[["n_unprivileged", "n_privileged", "verdict"]].to_numpy(),
                    hovertemplate="%{x|%Y-%m-%d}: %{y:.3f}<br>unprivileged n=%{customdata[0]}, privileged "
                                  "n=%{customdata[1]}<br>%{customdata[2]}<extra></extra>")
    undefined = part[part["value"].map(_num).isna()]
    if len(undefined):
        fig.add_scatter(x=undefined["bucket"], y=[ideal] * len(undefined), mode="markers", name="undefined",
                        **bucket_trace(bucket),
                        marker={"symbol": "x", "color": palette.NEUTRAL}, text=undefined["undefined_reason"],
                        hovertemplate="%{x|%Y-%m-%d}: undefined: %{text}<extra></extra>")
    fig.update_layout(title=title or metric.replace("_", " "),
                      xaxis=bucket_axis(part["bucket"], bucket, window, "time (UTC bucket)"),
                      yaxis={"title": metric.replace("_", " ")}, legend={"orientation": "h", "y": -0.25},
                      margin={"t": 50, "b": 40, "l": 40, "r": 10}, height=320)
    return fig


def group_trend_figure(rates: pd.DataFrame, *, window: Window | None = None, bucket: str = "day") -> go.Figure:
    """Selection rate per group over time with Wilson 95% bands (group names as escaped, clipped labels,
    never inside the hover template, where ``%{...}`` would be read as a field)."""
    fig = go.Figure()
    label = label_map(rates["group"])
    for i, (group, part) in enumerate(rates.sort_values("bucket").groupby("group", sort=True)):
        x = list(part["bucket"])
        name = label[str(group)]
        colour = palette.categorical(i)
        fig.add_scatter(x=x + x[::-1], y=list(part["upper"]) + list(part["lower"])[::-1], fill="toself",
                        fillcolor=colour, line={"width": 0}, opacity=0.2, showlegend=False, hoverinfo="skip",
                        name=f"{name} band", **bucket_trace(bucket))
        fig.add_scatter(x=x, y=part["selection_rate"], mode="lines+markers", name=name, line={"color": colour},
                        **bucket_trace(bucket),
                        customdata=part[["n"]].to_numpy(),
                        hovertemplate="%{fullData.name}: %{y:.3f} (n=%{customdata[0]})<extra></extra>")
    fig.update_layout(yaxis={"title": "selection rate", "range": [0, 1]},
                      xaxis=bucket_axis(rates["bucket"], bucket, window, "time (UTC bucket)"),
                      legend={"orientation": "h", "y": 1.12}, margin={"t": 40, "b": 40, "l": 40, "r": 10},
                      height=300)
    return fig


def intersection_heatmap(groups: pd.DataFrame, a: str, b: str, value: str = "selection_rate",
                         worst: str | None = None) -> go.Figure:
    """Heatmap of ``value`` over attribute ``a`` (rows) x ``b`` (columns); too-small cells left blank."""
    rows = sorted(groups[a].astype(str).unique())
    cols = list(dict.fromkeys(groups[b].astype(str)))
    cols = sorted(cols)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for ra in rows:
        zr: list[float | None] = []
        tr: list[str] = []
        for cb in cols:
            cell = groups[(groups[a].astype(str) == ra) & (groups[b].astype(str) == cb)]
            if cell.empty:
                zr.append(None)
                tr.append("no rows")
                continue
            r = cell.iloc[0]
            v = _num(r[value])
            if bool(r["too_small"]):
                zr.append(None)
                tr.append(f"too small (n={int(r['n'])})")
            elif v is None:
                zr.append(None)
                tr.append("undefined")
            else:
                zr.append(v)
                mark = " ◀ worst" if worst and str(r["group"]) == worst else ""
                tr.append(f"{v:.2f} (n={int(r['n'])}){mark}")
        z.append(zr)
        text.append(tr)
    row_label, col_label = label_map(rows), label_map(cols)
    fig = go.Figure(go.Heatmap(z=z, x=[col_label[c] for c in cols], y=[row_label[r] for r in rows], text=text,
                               texttemplate="%{text}", colorscale="RdYlGn",
                               zmin=0, zmax=1, colorbar={"title": value.replace("_", " ")},
                               hovertemplate=f"{a}=%{{y}}, {b}=%{{x}}: %{{text}}<extra></extra>"))
    fig.update_layout(xaxis={"title": b, "type": "category"}, yaxis={"title": a, "type": "category"},
                      margin={"t": 30, "b": 40, "l": 60, "r": 10}, height=300)
    return fig
