"""Plot builders for the Compliance page and the exported report (DataFrames in, plotly figures out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "no data": "#9e9e9e", "error": "#6a1b9a"}


def verdict_group(verdict: str) -> str:
    return "error" if verdict.startswith("error") else verdict


def scorecard_figure(scorecard: pd.DataFrame) -> go.Figure:
    """One bar per policy, coloured by verdict, length = value relative to its threshold (1 = at the limit).

    Relative values put metrics with different units on one axis; the hover shows the raw evidence.
    """
    fig = go.Figure()
    if scorecard.empty:
        fig.update_layout(title="No policies evaluated")
        return fig
    frame = scorecard.copy()
    frame["group"] = frame["verdict"].astype(str).map(verdict_group)
    frame["relative"] = [_relative(v, t) for v, t in zip(frame["value"], frame["threshold"], strict=True)]
    for group, part in frame.groupby("group", sort=False):
        fig.add_bar(
            y=part["policy"], x=part["relative"].fillna(0.0), orientation="h", name=str(group),
            marker_color=VERDICT_COLOURS.get(str(group), "#607d8b"),
            customdata=part[["value", "comparator", "threshold", "severity", "rows", "verdict"]].astype(str).values,
            hovertemplate=("%{y}<br>value %{customdata[0]} %{customdata[1]} %{customdata[2]}<br>"
                           "%{customdata[3]}, %{customdata[4]} rows: %{customdata[5]}<extra></extra>"))
    fig.add_vline(x=1.0, line_dash="dot", line_color="#555")
    fig.update_layout(barmode="overlay", height=max(260, 28 * len(frame) + 120),
                      xaxis_title="value / threshold (1 = at the threshold)", yaxis_title=None,
                      yaxis={"autorange": "reversed"}, legend_title="verdict", margin={"l": 10, "r": 10, "t": 30})
    return fig


def _relative(value: object, threshold: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    text = str(threshold).strip("[]")
    parts = [p for p in text.split(",") if p.strip()]
    try:
        bounds = [float(p) for p in parts]
    except ValueError:
        return None
    if len(bounds) == 2:  # within [low, high]: distance from 1 measured against the nearer bound
        low, high = bounds
        return v / high if v >= 1.0 and high else (v / low if low else None)
    if len(bounds) == 1 and bounds[0]:
        return v / bounds[0]
    return v


def verdict_summary_figure(scorecard: pd.DataFrame) -> go.Figure:
    """Counts of verdicts by severity (the scorecard at a glance)."""
    fig = go.Figure()
    if scorecard.empty:
        return fig
    frame = scorecard.assign(group=scorecard["verdict"].astype(str).map(verdict_group))
    counts = frame.groupby(["severity", "group"]).size().reset_index(name="n")
    for group, part in counts.groupby("group", sort=False):
        fig.add_bar(x=part["severity"], y=part["n"], name=str(group),
                    marker_color=VERDICT_COLOURS.get(str(group), "#607d8b"))
    fig.update_layout(barmode="stack", height=260, yaxis_title="policies", xaxis_title=None,
                      margin={"l": 10, "r": 10, "t": 30})
    return fig


def audit_activity_figure(entries: pd.DataFrame) -> go.Figure:
    """Audit entries per day and action (who changed what, when)."""
    fig = go.Figure()
    if entries.empty:
        fig.update_layout(title="No audit entries")
        return fig
    frame = entries.assign(day=pd.to_datetime(entries["ts"]).dt.floor("D"))
    counts = frame.groupby(["day", "action"]).size().reset_index(name="n")
    for action, part in counts.groupby("action"):
        fig.add_bar(x=part["day"], y=part["n"], name=str(action))
    fig.update_layout(barmode="stack", height=280, yaxis_title="entries", xaxis_title=None,
                      margin={"l": 10, "r": 10, "t": 30}, legend_title="action")
    return fig
