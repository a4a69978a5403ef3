"""Drift share per segment: within each value of a segment column (or pair), the share of features that drift
from the 'before' window (the reference) to the 'after' window.

Why: a dataset that drifts a little overall may drift a lot inside one segment (business loans whose
applicants changed), and a change in one segment's mix can hide behind stable marginals. The metric is
Vigil's own drift (:func:`dashboard.monitoring.drift.compute_drift`): the same tests, thresholds and
``thresholds.min_drift_rows`` rule, run inside the engine on the segment's rows of both windows (a row
filter on the same queries), over the model's features except the segment columns themselves (constant
inside a segment). The share counts the features with a verdict, as the dataset's drift share does.

Segments with fewer than ``min_rows`` rows in either window have no drift share and are pooled as
"(small segments)", listed last; segments are ranked by their drift share, the highest first, so the
top segment is where the features changed most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from connectors.queries import segments as q
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.segments import MIN_ROWS, SMALL, check_columns, segment_columns, segment_label

__all__ = ["DRIFT_SHARE", "SegmentDrift", "compute_segment_drift", "rank_columns_by_drift"]

DRIFT_SHARE = "drift_share"
RANKING_COLUMNS = ["segment", "n_before", "n_after", "drift_share", "n_drifted", "n_judged", "dataset_drift",
                   "drifted", "note"]


@dataclass(frozen=True)
class SegmentDrift:
    """Per segment: rows in both windows and the share of its features that drift between them."""

    model: str
    columns: tuple[str, ...]
    before: Window
    after: Window
    features: tuple[str, ...]  # the features tested inside each segment
    ranking: pd.DataFrame  # RANKING_COLUMNS, highest drift share first, "(small segments)" last
    min_rows: int
    drift_share_threshold: float
    metric: str = DRIFT_SHARE

    @property
    def top(self) -> dict[str, Any] | None:
        """The segment with the highest drift share (with a verdict), or None."""
        scored = self.ranking[self.ranking["drift_share"].notna()]
        return None if scored.empty else {str(k): v for k, v in scored.iloc[0].to_dict().items()}

    def headline(self) -> str:
        """"drift share 0.60 in purpose = business (6 of 10 features drift), the most of 4 segments"."""
        top = self.top
        if top is None:
            return (f"no segment of {' x '.join(self.columns)} has a drift verdict (segments need {self.min_rows} "
                    "rows in both windows, and each feature its thresholds.min_drift_rows current values)")
        scored = int(self.ranking["drift_share"].notna().sum())
        return (f"drift share {top['drift_share']:.2f} in {top['segment']} ({top['n_drifted']} of {top['n_judged']} "
                f"features drift), the most of {scored} segment{'s' if scored != 1 else ''}")

    def summary(self) -> dict[str, Any]:
        top = self.top
        return {"model": self.model, "columns": list(self.columns), "metric": self.metric,
                "before": self.before.label, "after": self.after.label, "features": list(self.features),
                "headline": self.headline(), "top_segment": None if top is None else top["segment"],
                "top_drift_share": None if top is None else top["drift_share"], "min_rows": self.min_rows,
                "drift_share_threshold": self.drift_share_threshold}


def _segments(counts: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    keys = [f"s{i}" for i in range(len(columns))]
    out = counts[[*keys, "n"]].copy()
    out["values"] = [tuple(str(v) for v in vals) for vals in out[keys].itertuples(index=False)]
    out["segment"] = [segment_label(columns, vals) for vals in out["values"]]
    return out[["segment", "values", "n"]]


@progress.step("segments: drift share per segment")
def compute_segment_drift(ctx: Context, model: str, before: Window, after: Window, columns: tuple[str, ...],
                          min_rows: int = MIN_ROWS, version: str | None = None) -> SegmentDrift:
    """Drift share of ``model``'s features within each segment of ``columns``, ``before`` as the reference
    and ``after`` as the current window."""
    from dashboard.errors import VigilError

    check_columns(ctx, model, columns)
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    features = tuple(c for c in cfg.features if c not in columns)
    if not features:
        raise VigilError(f"{model} has no feature besides {', '.join(columns)} to test for drift within a segment")
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        cb = q.segment_counts(con, schema, columns, before.start, before.end, cfg.favourable, version)
        ca = q.segment_counts(con, schema, columns, after.start, after.end, cfg.favourable, version)
    for w, c in ((before, cb), (after, ca)):
        if c.empty:
            raise VigilError(f"no predictions of model {model} in {w.label}; choose windows with logs")
    seg = _segments(cb, columns).merge(_segments(ca, columns), on=["segment", "values"], how="outer",
                                       suffixes=("_before", "_after"))
    seg[["n_before", "n_after"]] = seg[["n_before", "n_after"]].fillna(0).astype("int64")
    small = (seg["n_before"] < min_rows) | (seg["n_after"] < min_rows)
    rows: list[dict[str, Any]] = []
    for rec in seg[~small].to_dict(orient="records"):
        r = compute_drift(ctx, model, after, before, version=version, rows=q.segment_filter(columns, rec["values"]),
                          columns=features)
        judged = r.n_judged
        rows.append({"segment": rec["segment"], "n_before": rec["n_before"], "n_after": rec["n_after"],
                     "drift_share": r.share_drifted if judged else np.nan, "n_drifted": r.n_drifted,
                     "n_judged": judged, "dataset_drift": bool(r.dataset_drift) if judged else None,
                     "drifted": ", ".join(c.column for c in r.columns if c.drifted),
                     "note": "" if judged else f"too few rows: no feature has {r.min_drift_rows} current values "
                                               "(thresholds.min_drift_rows)"})
    ranking = pd.DataFrame(rows, columns=RANKING_COLUMNS)
    if len(ranking):
        ranking = ranking.sort_values(["drift_share", "n_after"], ascending=[False, False], na_position="last",
                                      kind="stable")
    if small.any():
        pooled = seg[small]
        ranking = pd.concat([ranking, pd.DataFrame([{
            "segment": SMALL, "n_before": int(pooled["n_before"].sum()), "n_after": int(pooled["n_after"].sum()),
            "drift_share": np.nan, "n_drifted": 0, "n_judged": 0, "dataset_drift": None, "drifted": "",
            "note": f"{len(pooled)} segment(s) with fewer than {min_rows} rows in a window"}], columns=RANKING_COLUMNS)],
            ignore_index=True)
    ranking["drift_share"] = ranking["drift_share"].astype(float)
    return SegmentDrift(model=model, columns=columns, before=before, after=after, features=features,
                        ranking=ranking.reset_index(drop=True), min_rows=min_rows,
                        drift_share_threshold=cfg.thresholds.drift_share)


def rank_columns_by_drift(ctx: Context, model: str, before: Window, after: Window, min_rows: int = MIN_ROWS,
                          version: str | None = None) -> list[SegmentDrift]:
    """Every segment column's drift shares, the column whose top segment drifts most first."""
    out = [compute_segment_drift(ctx, model, before, after, (c,), min_rows, version)
           for c in segment_columns(ctx, model)]
    return sorted(out, key=lambda s: -float(s.top["drift_share"]) if s.top else 1.0)
