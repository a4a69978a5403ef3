"""Plotly figures of the Drift page: distribution overlay, feature × time heatmap, drifted share over time.

Scores of different tests live on different scales (p-values vs distances), so the heatmap colours each
cell by its severity: the score relative to the column's own threshold (score ÷ threshold for distances,
threshold ÷ p for p-values), so 1 is the threshold, the white midpoint of a diverging scale. Cells past
it are red from the first step, whatever the distance, so a drifted cell never reads as white.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.text import label_map, plot_text

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


#: Severity 0..2 (1 = the threshold) to colour: blue far below, white up to the threshold, red from just past it.
SEVERITY_SCALE = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.5, "#ef3b2c"], [1.0, "#67000d"]]
SEVERITY_MAX = 2.0
TOO_FEW_COLOUR = "#bdbdbd"  # no verdict: fewer current values than thresholds.min_drift_rows
UNTESTED_COLOUR = "#636363"  # no score at all (e.g. a bucket where the column is all missing)
_JUST_PAST = 1e-6  # keeps every drifted cell in the red half and every other one in the white-blue half


def heatmap_figure(over_time: pd.DataFrame) -> go.Figure:
    """Feature × time from :func:`dashboard.monitoring.drift.drift_over_time`: one trace of severities
    (white at each column's threshold, red past it), one of grey cells without a verdict (too few rows;
    darker: not tested). The hover gives the verdict, method, raw score, threshold and current rows."""
    fig = go.Figure()
    if over_time.empty:
        fig.update_layout(title="No data in the range")
        return fig
    df = over_time.assign(z=_severity_z(over_time), grey=_grey_z(over_time),
                          hover=[_hover(r) for r in over_time.to_dict(orient="records")])
    order = list(dict.fromkeys(df["column"]))
    z, grey, hover = (df.pivot(index="column", columns="bucket", values=v).reindex(order)
                      for v in ("z", "grey", "hover"))
    x, y = list(z.columns), [plot_text(c) for c in z.index]
    text = hover.to_numpy(dtype=object)
    fig.add_heatmap(z=z.to_numpy(dtype=float), x=x, y=y, text=text, name="verdict", zmin=0, zmax=SEVERITY_MAX,
                    colorscale=SEVERITY_SCALE, hoverongaps=False, hovertemplate="%{text}<extra></extra>",
                    colorbar={"title": "score vs threshold", "tickvals": [0, 0.5, 1, 1.5, 2],
                              "ticktext": ["0", "½×", "threshold", "1.5×", "≥ 2×"]})
    fig.add_heatmap(z=grey.to_numpy(dtype=float), x=x, y=y, text=text, name="no verdict", zmin=0, zmax=1,
                    colorscale=[[0, TOO_FEW_COLOUR], [1, UNTESTED_COLOUR]], showscale=False, hoverongaps=False,
                    hovertemplate="%{text}<extra></extra>")
    fig.update_layout(title="Drift per feature over time (red = past the threshold, grey = too few rows)",
                      yaxis_autorange="reversed", plot_bgcolor="white",
                      height=max(300, 26 * len(order) + 120), margin={"t": 50, "b": 40, "l": 140, "r": 20})
    return fig


def _severity_z(df: pd.DataFrame) -> pd.Series:
    """Severity clipped to 0..2 on the side of 1 its verdict is on; NaN where there is no verdict."""
    sev = df["severity"].astype(float).clip(0, SEVERITY_MAX)
    drifted = df["drifted"].astype(bool)
    z = sev.where(~drifted, sev.clip(lower=1 + _JUST_PAST)).where(drifted, sev.clip(upper=1 - _JUST_PAST))
    return z.where(df["score"].notna() & ~df["too_few_rows"].astype(bool))


def _grey_z(df: pd.DataFrame) -> pd.Series:
    """0 for too few rows, 1 for not tested, NaN where the cell has a verdict."""
    untested = df["score"].isna()
    return pd.Series(np.where(untested, 1.0, np.where(df["too_few_rows"].astype(bool), 0.0, np.nan)),
                     index=df.index)


def _hover(r: Mapping[Hashable, Any]) -> str:
    """Verdict, method, raw score vs threshold and rows of one cell (log-derived text escaped for plotly)."""
    head = f"{plot_text(r['column'])} · {pd.Timestamp(r['bucket']):%Y-%m-%d %H:%M}"
    score = r["score"]
    if score is None or not np.isfinite(score):
        return f"{head}<br>not tested: {plot_text(r.get('note') or 'no score')}"
    lines = [head, _verdict_text(r), f"{r['method_label']}: {score:.4g} (threshold {r['threshold']:g})",
             f"{int(r['n_current']):,} current rows"]
    if r["too_few_rows"] and r["evidently_drifted"]:
        lines.append(f"Evidently would flag this: {int(r['n_current']):,} rows")
    if r.get("note"):
        lines.append(plot_text(r["note"]))
    return "<br>".join(lines)


def _verdict_text(r: Mapping[Hashable, Any]) -> str:
    if r["too_few_rows"]:
        return f"too few rows (fewer than {int(r['min_rows']):,}): no verdict"
    return "<b>drift</b>" if r["drifted"] else "no drift"


def share_figure(shares: pd.DataFrame, threshold: float) -> go.Figure:
    """Share of drifted columns per bucket (among the columns with a verdict), with the dataset-drift
    threshold; buckets where no column had enough rows are a gap in the line and a grey mark at 0."""
    fig = go.Figure()
    fig.add_scatter(x=shares["bucket"], y=shares["share_drifted"], mode="lines+markers", name="drifted share",
                    line_color=CUR_COLOUR)
    if "n_judged" in shares:
        none = shares[shares["n_judged"] == 0]
        fig.add_scatter(x=none["bucket"], y=[0.0] * len(none), mode="markers", name="too few rows",
                        marker={"color": TOO_FEW_COLOUR, "symbol": "square"},
                        hovertemplate="%{x}: too few rows, no verdict<extra></extra>")
    fig.add_hline(y=threshold, line_dash="dash", line_color="#d62728",
                  annotation_text=f"dataset drift at {threshold:.0%}")
    fig.update_layout(title="Share of drifted columns", yaxis_tickformat=".0%", yaxis_range=[-0.05, 1.05],
                      height=300, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig
