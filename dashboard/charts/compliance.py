"""Plot builders for the Compliance page and the exported report (DataFrames in, plotly figures out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.text import label_map, plot_text

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "no data": "#9e9e9e", "error": "#6a1b9a"}


def verdict_group(verdict: str) -> str:
    return "error" if verdict.startswith("error") else verdict


def scorecard_figure(scorecard: pd.DataFrame) -> go.Figure:
    """One bar per policy: its margin to the threshold (positive = inside the allowed region), coloured
    by verdict. Margins are relative to the threshold's size so metrics in different units share an axis;
    the hover shows the raw evidence."""
    fig = go.Figure()
    if scorecard.empty:
        fig.update_layout(title="No policies evaluated")
        return fig
    frame = scorecard.copy()
    frame["group"] = frame["verdict"].astype(str).map(verdict_group)
    frame["margin"] = [margin(v, c, t) for v, c, t in zip(frame["value"], frame["comparator"], frame["threshold"],
                                                         strict=True)]
    names = label_map(frame["policy"])
    frame["policy"] = frame["policy"].astype(str).map(names)
    for group in [g for g in VERDICT_COLOURS if g in set(frame["group"])]:
        part = frame[frame["group"] == group]
        fig.add_bar(
            y=part["policy"], x=part["margin"].fillna(0.0), orientation="h", name=group,
            marker_color=VERDICT_COLOURS[group],
            customdata=_hover(part, ["value", "comparator", "threshold", "severity", "rows", "verdict"]),
            hovertemplate=("%{y}<br>value %{customdata[0]} %{customdata[1]} %{customdata[2]}<br>"
                           "%{customdata[3]}, %{customdata[4]} rows: %{customdata[5]}<extra></extra>"))
    fig.add_vline(x=0.0, line_dash="dot", line_color="#555")
    fig.update_layout(height=max(260, 24 * len(frame) + 120), xaxis_title="margin to the threshold (< 0 = violated)",
                      yaxis={"categoryorder": "array", "categoryarray": list(frame["policy"])[::-1]},
                      legend_title="verdict", margin={"l": 10, "r": 10, "t": 30})
    return fig


def _hover(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """Hover fields as escaped, clipped text (error verdicts and values can carry text from data)."""
    return [[plot_text(v) for v in row] for row in frame[columns].astype(str).to_numpy()]


def _bounds(threshold: object) -> list[float]:
    try:
        return [float(p) for p in str(threshold).strip("[]() ").split(",") if p.strip()]
    except ValueError:
        return []


def margin(value: object, comparator: object, threshold: object) -> float | None:
    """How far ``value`` is inside (+) or outside (-) the region the policy allows, relative to the
    threshold's magnitude (or the interval's width); None when there is no value."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if v != v:
        return None
    bounds = _bounds(threshold)
    comp = str(comparator)
    if len(bounds) == 2 and comp in ("within", "outside"):
        lo, hi = bounds
        width = (hi - lo) or 1.0
        inside = min(v - lo, hi - v) / width
        return inside if comp == "within" else -inside
    if len(bounds) != 1:
        return None
    t = bounds[0]
    scale = abs(t) or 1.0
    if comp in ("<", "<="):
        return (t - v) / scale
    if comp in (">", ">="):
        return (v - t) / scale
    if comp == "==":
        return -abs(v - t) / scale
    if comp == "!=":
        return abs(v - t) / scale
    return None


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
        fig.add_bar(x=part["day"], y=part["n"], name=plot_text(action))
    fig.update_layout(barmode="stack", height=280, yaxis_title="entries", xaxis_title=None,
                      margin={"l": 10, "r": 10, "t": 30}, legend_title="action")
    return fig


def verdict_history_figure(history: pd.DataFrame) -> go.Figure:
    """Policy x evaluation time, coloured by verdict: when did a policy start or stop failing?"""
    fig = go.Figure()
    if history.empty:
        fig.update_layout(title="No evaluations kept yet")
        return fig
    frame = history.assign(group=history["verdict"].astype(str).map(verdict_group))
    frame["policy"] = frame["policy"].astype(str).map(label_map(frame["policy"]))
    for group in [g for g in VERDICT_COLOURS if g in set(frame["group"])]:
        part = frame[frame["group"] == group]
        fig.add_scatter(x=part["evaluated_at"], y=part["policy"], mode="markers", name=group,
                        marker={"color": VERDICT_COLOURS[group], "size": 11, "symbol": "square"},
                        customdata=_hover(part, ["value", "threshold", "data_version"]),
                        hovertemplate="%{y}<br>%{x}<br>value %{customdata[0]} vs %{customdata[1]}"
                                      "<br>data version %{customdata[2]}<extra></extra>")
    policies = list(dict.fromkeys(frame["policy"]))
    fig.update_layout(height=max(260, 22 * len(policies) + 120), yaxis={"categoryorder": "array",
                      "categoryarray": policies[::-1]}, xaxis_title="evaluated (UTC)", legend_title="verdict",
                      margin={"l": 10, "r": 10, "t": 30})
    return fig
