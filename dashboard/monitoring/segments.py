"""Segments: metrics per value of a segment column (or pair), and which segments explain a change.

Why: "accuracy fell 4 points" is a fact; "3 of them from purpose = business" is where to look. A
window's metric is a weighted mean over its segments, M = Σ w_s·m_s (w_s = the segment's share of the
rows the metric counts: labelled rows for accuracy, scored rows for estimated accuracy, all rows for the
error rate, successful rows for the selection rate). Between a before and an after window each segment
contributes exactly

    c_s = w1·m1 − w0·m0 = Δw·(m̄ − M̄)  [mix: the segment grew or shrank]  +  w̄·Δm  [its own metric moved]

(bars = the mean of the two windows, M̄ of the overall metric; a segment absent from a window has w = 0
there), and the contributions add up to the overall change ΔM. Segments are ranked by |c_s|.

Segments with fewer than ``min_rows`` rows (in both windows) are shown pooled as "(small segments)",
so the sum still holds but no tiny segment tops the ranking by noise.

The drift share per segment, which is not a weighted mean of segment values and so has no such
decomposition, is :mod:`dashboard.monitoring.segment_drift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from connectors.queries import segments as q
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError

__all__ = ["METRICS", "MIN_ROWS", "SMALL", "SegmentChange", "check_columns", "compute_segment_change",
           "segment_columns", "segment_label", "segment_metrics"]

#: metric -> (numerator count, denominator count): the metric is num / den, its weight den / Σ den.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("n_correct", "n_labelled"),
    "error_rate": ("n_error", "n"),
    "estimated_accuracy": ("sum_conf", "n_conf"),
    "selection_rate": ("n_favourable", "n_ok"),
}
MIN_ROWS = 100
SMALL = "(small segments)"


def segment_columns(ctx: Context, model: str) -> list[str]:
    """Columns a model can be segmented by: its categorical features and protected attributes."""
    schema = ctx.schema(model)
    return [c for c, t in schema.columns.items() if t == "categorical"]


def check_columns(ctx: Context, model: str, columns: tuple[str, ...]) -> None:
    """One or two categorical columns of the model, else a message naming the choices."""
    allowed = segment_columns(ctx, model)
    if not 1 <= len(columns) <= 2:
        raise VigilError("segment by one column or a pair of columns (--column A [--column B])")
    bad = [c for c in columns if c not in allowed]
    if bad:
        raise VigilError(f"cannot segment {model} by {', '.join(bad)}: choose categorical columns among "
                         f"{', '.join(allowed)}")


def segment_label(columns: Sequence[str], values: Sequence[Any]) -> str:
    """A segment's name, "purpose = business, housing = rent": the same in every segment view and policy."""
    return ", ".join(f"{c} = {v}" for c, v in zip(columns, values, strict=True))


def segment_metrics(counts: pd.DataFrame, columns: tuple[str, ...], min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Per segment: its label, rows, share of rows and each metric (None below ``min_rows`` rows)."""
    keys = [f"s{i}" for i in range(len(columns))]
    df = counts.copy()
    df["segment"] = [segment_label(columns, vals) for vals in df[keys].itertuples(index=False)]
    total = df["n"].sum()
    df["share"] = df["n"] / total if total else np.nan
    df["small"] = df["n"] < min_rows
    for m, (num, den) in METRICS.items():
        df[m] = (df[num] / df[den].where(df[den] > 0)).where(~df["small"])
    return df.drop(columns=keys)


@dataclass(frozen=True)
class SegmentChange:
    """Segment metrics in two windows and each segment's contribution to the change of ``metric``."""

    model: str
    columns: tuple[str, ...]
    metric: str
    before: Window
    after: Window
    before_value: float | None
    after_value: float | None
    ranking: pd.DataFrame  # segment, n_before, n_after, w_before, w_after, m_before, m_after, mix, performance,
    #                        contribution, share_of_change
    before_segments: pd.DataFrame
    after_segments: pd.DataFrame
    min_rows: int

    @property
    def change(self) -> float | None:
        if self.before_value is None or self.after_value is None:
            return None
        return self.after_value - self.before_value

    @property
    def top(self) -> dict[str, Any] | None:
        """The segment contributing most to the change (in the change's direction), or None."""
        if self.ranking.empty or self.change is None:
            return None
        same = self.ranking[np.sign(self.ranking["contribution"]) == np.sign(self.change)]
        same = same[same["segment"] != SMALL]
        return None if same.empty else {str(k): v for k, v in same.iloc[0].to_dict().items()}

    def headline(self) -> str:
        """"accuracy fell 4.1 points (0.812 -> 0.771); 3.0 of them from purpose = business"."""
        if self.change is None:
            return f"{self.metric} is unknown in one of the windows (no rows it counts)"
        verb = "fell" if self.change < 0 else "rose"
        text = (f"{self.metric} {verb} {abs(self.change) * 100:.1f} points ({self.before_value:.3f} -> "
                f"{self.after_value:.3f})")
        top = self.top
        if top is not None:
            text += f"; {abs(top['contribution']) * 100:.1f} of them from {top['segment']}"
        return text

    def summary(self) -> dict[str, Any]:
        top = self.top
        return {"model": self.model, "columns": list(self.columns), "metric": self.metric,
                "before": self.before.label, "after": self.after.label, "before_value": self.before_value,
                "after_value": self.after_value, "change": self.change, "headline": self.headline(),
                "top_segment": None if top is None else top["segment"],
                "top_contribution": None if top is None else top["contribution"], "min_rows": self.min_rows}


def _pool_small(df: pd.DataFrame, small: set[str]) -> pd.DataFrame:
    if not small:
        return df
    counts = [c for c in df.columns if c.startswith(("n", "sum_"))]
    keep = df[~df["segment"].isin(small)]
    pooled = df[df["segment"].isin(small)][counts].sum().to_frame().T
    pooled["segment"] = SMALL
    return pd.concat([keep, pooled], ignore_index=True)


def decompose(before: pd.DataFrame, after: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, float | None,
                                                                                  float | None]:
    """Each segment's contribution (mix + performance) to the change of ``metric``; overall values."""
    num, den = METRICS[metric]
    cols = list(dict.fromkeys([num, den, "n"]))
    b = before.set_index("segment")[cols]
    a = after.set_index("segment")[cols]
    seg = b.join(a, how="outer", lsuffix="_b", rsuffix="_a").fillna(0)
    tb, ta = float(seg[f"{den}_b"].sum()), float(seg[f"{den}_a"].sum())
    mb_all = float(seg[f"{num}_b"].sum()) / tb if tb else None
    ma_all = float(seg[f"{num}_a"].sum()) / ta if ta else None
    if mb_all is None or ma_all is None:
        return pd.DataFrame(), mb_all, ma_all
    wb, wa = seg[f"{den}_b"] / tb, seg[f"{den}_a"] / ta
    mb = seg[f"{num}_b"] / seg[f"{den}_b"].where(seg[f"{den}_b"] > 0)
    ma = seg[f"{num}_a"] / seg[f"{den}_a"].where(seg[f"{den}_a"] > 0)
    # a segment seen in one window only: its metric there stands for both (all of its effect is mix)
    mb_f, ma_f = mb.fillna(ma).fillna(0.0), ma.fillna(mb).fillna(0.0)
    m_bar, w_bar, big_m = (mb_f + ma_f) / 2, (wb + wa) / 2, (mb_all + ma_all) / 2
    mix = (wa - wb) * (m_bar - big_m)
    perf = w_bar * (ma_f - mb_f)
    change = ma_all - mb_all
    out = pd.DataFrame({"segment": seg.index, "n_before": seg["n_b"].astype("int64").to_numpy(),
                        "n_after": seg["n_a"].astype("int64").to_numpy(), "w_before": wb.to_numpy(),
                        "w_after": wa.to_numpy(), "m_before": mb.to_numpy(), "m_after": ma.to_numpy(),
                        "mix": mix.to_numpy(), "performance": perf.to_numpy()})
    out["contribution"] = out["mix"] + out["performance"]
    out["share_of_change"] = out["contribution"] / change if change else np.nan
    out = out.reindex(out["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    return out, mb_all, ma_all


@progress.step("segments: metric per segment in both windows")
def compute_segment_change(ctx: Context, model: str, before: Window, after: Window,
                           columns: tuple[str, ...], metric: str = "accuracy", min_rows: int = MIN_ROWS,
                           version: str | None = None) -> SegmentChange:
    """Segment metrics of ``model`` in ``before`` and ``after`` and the ranking of segments by their
    contribution to the change of ``metric``."""
    if metric not in METRICS:
        raise VigilError(f"segment metric '{metric}' is not one of {', '.join(METRICS)}")
    check_columns(ctx, model, columns)
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        cb = q.segment_counts(con, schema, columns, before.start, before.end, cfg.favourable, version)
        ca = q.segment_counts(con, schema, columns, after.start, after.end, cfg.favourable, version)
    for w, c in ((before, cb), (after, ca)):
        if c.empty:
            raise VigilError(f"no predictions of model {model} in {w.label}; choose windows with logs")
    sb, sa = segment_metrics(cb, columns, min_rows), segment_metrics(ca, columns, min_rows)
    small = set(sb.loc[sb["small"], "segment"]) & set(sa.loc[sa["small"], "segment"])
    small |= set(sb.loc[sb["small"], "segment"]) - set(sa["segment"])
    small |= set(sa.loc[sa["small"], "segment"]) - set(sb["segment"])
    ranking, vb, va = decompose(_pool_small(sb, small), _pool_small(sa, small), metric)
    return SegmentChange(model=model, columns=columns, metric=metric, before=before, after=after, before_value=vb,
                         after_value=va, ranking=ranking, before_segments=sb, after_segments=sa, min_rows=min_rows)


def rank_columns(ctx: Context, model: str, before: Window, after: Window, metric: str = "accuracy",
                 min_rows: int = MIN_ROWS, version: str | None = None) -> list[SegmentChange]:
    """Every segment column's decomposition, the column whose top segment explains most first."""
    changes = [compute_segment_change(ctx, model, before, after, (c,), metric, min_rows, version)
               for c in segment_columns(ctx, model)]
    return sorted(changes, key=lambda s: -abs(s.top["contribution"]) if s.top else 0.0)
