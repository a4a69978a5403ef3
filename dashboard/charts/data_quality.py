"""Plotly figure of the Data quality page: the status of each (column, check) per time bucket.

Statuses, not scores, are coloured: checks live on different scales (shares, means, counts), and what a
reader needs is where and since when a check fails. Cells without a verdict are grey (too few rows) or
dark grey (not applicable, unsupported, a column missing), never green.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.text import plot_text

PASS_COLOUR = "#d9f0d3"
FAIL_COLOUR = "#d73027"
TOO_FEW_COLOUR = "#bdbdbd"
OTHER_COLOUR = "#636363"
#: status -> (z value, meaning in the legend)
STATUS_Z: dict[str, float] = {"pass": 0.0, "fail": 1.0, "too few rows": 2.0}
SCALE = [[0.0, PASS_COLOUR], [1 / 3, PASS_COLOUR], [1 / 3, FAIL_COLOUR], [2 / 3, FAIL_COLOUR],
         [2 / 3, TOO_FEW_COLOUR], [1.0, OTHER_COLOUR]]


def status_heatmap(over_time: pd.DataFrame) -> go.Figure:
    """(column · check) × bucket from :func:`dashboard.monitoring.data_quality.data_quality_over_time`:
    green pass, red fail, grey too few rows, dark grey anything else; the hover gives value, rows, detail."""
    fig = go.Figure()
    if over_time.empty:
        fig.update_layout(title="No data in the range")
        return fig
    df = over_time.assign(row=[f"{plot_text(c)} · {plot_text(k)}" for c, k in zip(over_time["column"],
                                                                                   over_time["check"], strict=True)],
                          z=[STATUS_Z.get(s, 3.0) for s in over_time["status"]],
                          hover=[_hover(r) for r in over_time.to_dict(orient="records")])
    order = list(dict.fromkeys(df.sort_values(["column", "check"])["row"]))
    z, hover = (df.pivot_table(index="row", columns="bucket", values=v, aggfunc="first").reindex(order)
                for v in ("z", "hover"))
    fig.add_heatmap(z=z.to_numpy(dtype=float), x=list(z.columns), y=order, text=hover.to_numpy(dtype=object),
                    zmin=0, zmax=3, colorscale=SCALE, hoverongaps=False, hovertemplate="%{text}<extra></extra>",
                    xgap=1, ygap=1,
                    colorbar={"title": "status", "tickvals": [0.375, 1.125, 1.875, 2.625],
                              "ticktext": ["pass", "fail", "too few rows", "n/a"]})
    fig.update_layout(title="Data quality per column over time (red = failing)", yaxis_autorange="reversed",
                      plot_bgcolor="white", height=max(300, 22 * len(order) + 120),
                      margin={"t": 50, "b": 40, "l": 260, "r": 20})
    return fig


def _hover(r: Mapping[Hashable, Any]) -> str:
    value = r.get("value")
    shown = "n/a" if value is None or not np.isfinite(value) else (f"{value:.2%}" if abs(value) <= 1 else f"{value:.4g}")
    lines = [f"{plot_text(r['column'])} · {plot_text(r['check'])} · {pd.Timestamp(r['bucket']):%Y-%m-%d %H:%M}",
             f"{plot_text(r['status'])}: {shown} on {int(r['rows'] or 0):,} rows"]
    if r.get("detail"):
        lines.append(plot_text(r["detail"]))
    return "<br>".join(lines)
