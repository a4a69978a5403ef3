"""Plot builders for the Compliance page and the exported report (DataFrames in, plotly figures out)."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import palette
from dashboard.charts.axes import bucket_trace, time_axis
from dashboard.charts.text import label_map, plot_text

VERDICT_COLOURS = palette.VERDICT
#: A policy of a phase the version has not reached (the Compliance page shows it in this blue, in italics).
NOT_APPLICABLE_COLOUR = "#1565c0"
#: Policy labels longer than this wrap onto lines of at most this many characters.
LABEL_WRAP = 44
#: Width of one label character at plotly's 12 px tick font, a little over a sans-serif's average, so the
#: left margin errs towards room.
LABEL_PX_PER_CHAR = 6.5
#: Characters after which a long label may break onto the next line.
_BREAK_AFTER = "_[]().,-/: "


def verdict_group(verdict: str) -> str:
    return "error" if verdict.startswith("error") else verdict


#: Largest margin drawn, either way (the size of the threshold itself past or inside it).
MARGIN_CAP = 1.0


def scorecard_figure(scorecard: pd.DataFrame) -> go.Figure:
    """One bar per policy: its margin to the threshold (positive = inside the allowed region), coloured
    by verdict. Margins are relative to the threshold's size so metrics in different units share an axis;
    the hover shows the raw evidence. Bars stop at ±:data:`MARGIN_CAP` (a coverage of 0.33 against 0.01 is
    a margin of 32, which squeezed every other bar to nothing); the hover keeps the real value."""
    fig = go.Figure()
    if scorecard.empty:
        fig.update_layout(title="No policies evaluated")
        return fig
    frame = scorecard.copy()
    frame["group"] = frame["verdict"].astype(str).map(verdict_group)
    frame["margin"] = [margin(v, c, t) for v, c, t in zip(frame["value"], frame["comparator"], frame["threshold"],
                                                         strict=True)]
    names = {raw: wrap_label(label) for raw, label in label_map(frame["policy"]).items()}
    frame["policy"] = frame["policy"].astype(str).map(names)
    present = list(dict.fromkeys(frame["group"]))
    # Every verdict gets its bars, "not applicable yet" and unforeseen ones too: a policy missing from the
    # chart reads as a policy that was never evaluated.
    for group in [g for g in VERDICT_COLOURS if g in present] + [g for g in present if g not in VERDICT_COLOURS]:
        part = frame[frame["group"] == group]
        fig.add_bar(
            y=part["policy"], x=part["margin"].fillna(0.0).clip(-MARGIN_CAP, MARGIN_CAP), orientation="h", name=plot_text(group),
            marker_color=_group_colour(group),
            customdata=_hover(part, ["value", "comparator", "threshold", "severity", "rows", "verdict"]),
            hovertemplate=("%{y}<br>value %{customdata[0]} %{customdata[1]} %{customdata[2]}<br>"
                           "%{customdata[3]}, %{customdata[4]} rows: %{customdata[5]}<extra></extra>"))
    fig.add_vline(x=0.0, line_dash="dot", line_color=palette.NEUTRAL)
    lines = [label.split("<br>") for label in frame["policy"]]
    extra = sum(len(parts) - 1 for parts in lines)
    order = list(frame["policy"])[::-1]
    # Every policy labelled: plotly's automatic ticks on a category axis label every other bar once the
    # bars are closer than its tick spacing (a report's chart fitted to a page), which dropped half the names.
    fig.update_layout(height=max(260, 24 * len(frame) + 14 * extra + 120),
                      xaxis_title="margin to the threshold (< 0 = violated; bars end at ±1)",
                      yaxis={"categoryorder": "array", "categoryarray": order, "tickmode": "array",
                             "tickvals": order, "ticktext": order, "automargin": True},
                      legend_title="verdict", margin={"l": label_margin(lines), "r": 10, "t": 30})
    return fig


def _group_colour(group: str) -> str:
    if group == "not applicable yet":
        return NOT_APPLICABLE_COLOUR
    return palette.state_colour(VERDICT_COLOURS, group)


def wrap_label(label: str, width: int = LABEL_WRAP) -> str:
    """A plot label (escaped, see :func:`plot_text`) on lines of at most ``width`` characters joined by
    plotly's ``<br>``, broken after ``_``, ``[``, spaces and the like where it can: a long policy name
    stays whole on a narrow page instead of pushing the plot off it."""
    raw = html.unescape(label)
    if len(raw) <= width:
        return label
    lines: list[str] = []
    line = ""
    for piece in _pieces(raw):
        while len(piece) > width:  # no break point for a whole line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "<br>".join(html.escape(part, quote=False) for part in lines if part)


def _pieces(text: str) -> list[str]:
    """``text`` cut after every break character (the pieces join back to ``text``)."""
    pieces: list[str] = []
    start = 0
    for i, char in enumerate(text):
        if char in _BREAK_AFTER:
            pieces.append(text[start:i + 1])
            start = i + 1
    return pieces + ([text[start:]] if start < len(text) else [])


def label_margin(lines: list[list[str]]) -> int:
    """Left margin in pixels for y labels of these (escaped) lines: plotly's automargin is a template
    setting, and Streamlit's template (the default in the app's process, so in a report exported there)
    leaves it off, which cut every label to its last characters at a 10 px margin."""
    longest = max((len(html.unescape(part)) for parts in lines for part in parts), default=0)
    return math.ceil(longest * LABEL_PX_PER_CHAR) + 14


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
                    marker_color=_group_colour(str(group)))
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
    for i, (action, part) in enumerate(counts.groupby("action")):
        fig.add_bar(x=part["day"], y=part["n"], name=plot_text(action), marker_color=palette.categorical(i),
                    **bucket_trace("day", bar=True))
    days = frame["day"]
    fig.update_layout(barmode="stack", height=280, yaxis_title="entries",
                      xaxis=time_axis(days.min(), days.max() + pd.Timedelta(days=1), "day"),
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
    when = pd.to_datetime(frame["evaluated_at"])
    fig.update_layout(height=max(260, 22 * len(policies) + 120), yaxis={"categoryorder": "array",
                      "categoryarray": policies[::-1]},
                      xaxis=time_axis(when.min(), when.max(), None, "evaluated (UTC)"),
                      legend_title="verdict", margin={"l": 10, "r": 10, "t": 30})
    return fig
