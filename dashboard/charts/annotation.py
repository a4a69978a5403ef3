"""Figures of the Annotation queue page: frames in, figures out."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import palette
from dashboard.charts.text import label_map, plot_text

STATE_LABELS: dict[str, str] = {"pending": "queued", "sending": "being sent", "sent": "in Label Studio",
                                "labelled": "labelled", "skipped": "skipped"}


def uncertainty_figure(candidates: pd.DataFrame, strategy: str) -> go.Figure:
    """Histogram of the candidates' uncertainty, split by predicted class."""
    fig = go.Figure()
    for i, (cls, part) in enumerate(candidates.groupby("prediction", sort=True)):
        fig.add_histogram(x=part["uncertainty"], name=f"predicted {plot_text(cls)}", nbinsx=20, opacity=0.75,
                          marker_color=palette.categorical(i))
    fig.update_layout(barmode="overlay", height=260, margin={"t": 30, "b": 40, "l": 40, "r": 10},
                      xaxis={"title": f"uncertainty ({strategy}; 1 = a coin flip)", "range": [0, 1]},
                      yaxis={"title": "candidates"}, legend={"orientation": "h", "y": 1.15})
    return fig


def queue_figure(counts: Mapping[str, int]) -> go.Figure:
    """One horizontal stacked bar: where the queued predictions are."""
    fig = go.Figure()
    for state, label in STATE_LABELS.items():
        n = int(counts.get(state, 0))
        if n:
            fig.add_bar(y=["queue"], x=[n], name=f"{label} ({n})", orientation="h", text=[n],
                        textposition="inside", marker_color=palette.state_colour(palette.QUEUE_STATE, state))
    fig.update_layout(barmode="stack", height=140, margin={"t": 10, "b": 20, "l": 10, "r": 10},
                      yaxis={"visible": False}, xaxis={"title": "predictions"},
                      legend={"orientation": "h", "y": 1.4})
    return fig


def annotator_figure(progress: pd.DataFrame) -> go.Figure:
    """Per annotator: labelled and skipped tasks (as of the last sync)."""
    fig = go.Figure()
    label = label_map(progress["annotator"])  # Label Studio user names: escaped, clipped labels
    names = [label[str(a)] for a in progress["annotator"]]
    for outcome in ("labelled", "skipped"):  # the queue chart's colours for the same states
        fig.add_bar(x=names, y=progress[outcome], name=outcome, marker_color=palette.QUEUE_STATE[outcome])
    fig.update_layout(barmode="stack", height=260, margin={"t": 30, "b": 40, "l": 40, "r": 10},
                      yaxis={"title": "tasks"}, legend={"orientation": "h", "y": 1.15})
    return fig
