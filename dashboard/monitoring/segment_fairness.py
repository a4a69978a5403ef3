"""Fairness per segment: within each value of a segment column (or pair), a protected attribute's fairness
metric in a 'before' and an 'after' window.

Why: a model fair overall can be unfair inside one segment (women applying for business loans), and a fall
of disparate impact usually starts in one. One GROUP BY over segment x group x predicted class x label
(the Fairness page's own confusion counts, :func:`connectors.queries.fairness.confusion_counts`) gives every
segment's counts in the engine; the metric, its threshold, its verdict and the ``min_group_size`` rule per
segment are the Fairness page's (AIF360's definitions), so a segment's value equals the page's value on that
segment's rows.

Segments with fewer than ``min_rows`` rows in the after window are pooled as "(small segments)" (the
metric of their summed counts), listed last. The others are ranked farthest from the metric's ideal first
(failing ones before passing ones; a segment whose sides are below ``min_group_size`` keeps its value but
ranks after the judged ones): the top segment is where to look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from connectors.queries import fairness as fq
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.fairness import MISSING, attribute_fairness, counts_frame, pick_attributes
from dashboard.monitoring.fairness_metrics import METRIC_KEYS, SPECS, MetricValue
from dashboard.monitoring.segments import MIN_ROWS, SMALL, check_columns, segment_columns, segment_label

__all__ = ["FAIRNESS_METRICS", "RANKING_COLUMNS", "SegmentFairness", "compute_segment_fairness",
           "rank_columns_by_fairness"]

#: The fairness metrics a segment view offers: every AIF360 group metric of the Fairness page.
FAIRNESS_METRICS: tuple[str, ...] = METRIC_KEYS
RANKING_COLUMNS = ["segment", "n_before", "n_after", "value_before", "value_after", "change", "verdict",
                   "n_privileged", "n_unprivileged", "distance", "note"]
_SEGMENT_ALIAS = "__segment_{}"
#: Verdicts that rank no segment: a side below min_group_size rows, or a metric undefined there.
_UNJUDGED = ("too_small", "undefined")


def distance_from_ideal(m: MetricValue) -> float | None:
    """How far a value is from fair: |log(value / ideal)| for ratios (0.5 and 2 are equally far from 1),
    |value - ideal| otherwise; None when undefined."""
    if m.value is None:
        return None
    if SPECS[m.key].kind == "ratio":
        return math.inf if m.value <= 0 else abs(math.log(m.value / (m.ideal or 1.0)))
    return abs(m.value - m.ideal)


@dataclass(frozen=True)
class SegmentFairness:
    """One fairness metric of one protected attribute per segment, in two windows."""

    model: str
    columns: tuple[str, ...]
    attribute: str
    metric: str
    label: str
    before: Window | None  # None: the after window alone (a policy judging one window)
    after: Window
    overall_before: MetricValue | None
    overall_after: MetricValue
    ranking: pd.DataFrame  # RANKING_COLUMNS, farthest from fair first, "(small segments)" last
    min_rows: int
    threshold: str

    @property
    def ideal(self) -> float:
        """The metric's fair value (1 for ratios, 0 for differences and indices)."""
        return self.overall_after.ideal

    @property
    def top(self) -> dict[str, Any] | None:
        """The scored segment farthest from fair, or None when no segment has a value."""
        scored = self.ranking[self.ranking["distance"].notna() & (self.ranking["segment"] != SMALL)]
        return None if scored.empty else {str(k): v for k, v in scored.iloc[0].to_dict().items()}

    def headline(self) -> str:
        """"disparate impact (sex) 0.62 in purpose = business (fail, threshold ...); overall 0.84 -> 0.79"."""
        overall = (f"overall {_fmt(self.overall_after.value)}" if self.overall_before is None
                   else f"overall {_fmt(self.overall_before.value)} -> {_fmt(self.overall_after.value)}")
        top = self.top
        if top is None:
            return (f"{self.label} ({self.attribute}): no segment of {' x '.join(self.columns)} has a value (each "
                    f"needs {self.min_rows} rows and both sides of '{self.attribute}' large enough); {overall}")
        scored = int((self.ranking["distance"].notna() & (self.ranking["segment"] != SMALL)).sum())
        return (f"{self.label} ({self.attribute}) {_fmt(top['value_after'])} in {top['segment']} ({top['verdict']}, "
                f"threshold {self.threshold}), the farthest from fair of {scored} segment{'s' if scored != 1 else ''}; "
                f"{overall}")

    def summary(self) -> dict[str, Any]:
        top = self.top
        return {"model": self.model, "columns": list(self.columns), "metric": self.metric,
                "attribute": self.attribute, "before": None if self.before is None else self.before.label,
                "after": self.after.label,
                "before_value": None if self.overall_before is None else self.overall_before.value,
                "after_value": self.overall_after.value,
                "threshold": self.threshold, "headline": self.headline(),
                "top_segment": None if top is None else top["segment"],
                "top_value": None if top is None else top["value_after"], "min_rows": self.min_rows}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _segment_key(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    aliases = [_SEGMENT_ALIAS.format(i) for i in range(len(columns))]
    values = frame[aliases].astype(object).where(frame[aliases].notna(), MISSING)
    return pd.Series([segment_label(columns, row) for row in values.itertuples(index=False)], index=frame.index,
                     dtype=object)


@progress.step("segments: fairness per segment")
def compute_segment_fairness(ctx: Context, model: str, before: Window | None, after: Window,
                             columns: tuple[str, ...],
                             metric: str = "disparate_impact", attribute: str | None = None,
                             min_rows: int = MIN_ROWS, version: str | None = None) -> SegmentFairness:
    """``metric`` of ``attribute`` (default: the model's first protected attribute) within each segment of
    ``columns``, in ``before`` (None: no comparison) and ``after``."""
    if metric not in FAIRNESS_METRICS:
        raise VigilError(f"segment fairness metric '{metric}' is not one of {', '.join(FAIRNESS_METRICS)}")
    check_columns(ctx, model, columns)
    cfg = ctx.model(model)
    attr = pick_attributes(cfg, attribute)[0]
    if attr.name in columns:
        raise VigilError(f"'{attr.name}' is the protected attribute: segment by another column (its groups are "
                         "the two sides of the metric inside each segment)")
    extra = {_SEGMENT_ALIAS.format(i): fq.category_expr(c) for i, c in enumerate(columns)}
    t, policies = cfg.thresholds, cfg.policies
    frames = {"before": pd.DataFrame(columns=["segment", "n"])}
    for name, w in (("before", before), ("after", after)):
        if w is None:
            continue
        df = counts_frame(ctx, cfg, w, version, [attr], extra_groups=extra)
        if df.empty:
            raise VigilError(f"no successful predictions of model {model} in {w.label}; choose windows with logs")
        df["segment"] = _segment_key(df, columns)
        frames[name] = df
    overall = {name: attribute_fairness(df, attr, attr.privileged, t, policies).metrics[metric]
               for name, df in frames.items() if len(df)}
    rows_after = frames["after"].groupby("segment")["n"].sum()
    rows_before = frames["before"].groupby("segment")["n"].sum()
    small = {s for s, n in rows_after.items() if n < min_rows}
    for df in frames.values():
        df.loc[df["segment"].isin(small), "segment"] = SMALL
    rows: list[dict[str, Any]] = []
    for segment in dict.fromkeys([*frames["after"]["segment"]]):
        parts = {name: df[df["segment"] == segment] for name, df in frames.items()}
        m_after = attribute_fairness(parts["after"], attr, attr.privileged, t, policies).metrics[metric]
        m_before = (attribute_fairness(parts["before"], attr, attr.privileged, t, policies).metrics[metric]
                    if len(parts["before"]) else None)
        value_before = None if m_before is None else m_before.value
        n_before = (int(rows_before[[s for s in rows_before.index if s in small]].sum()) if segment == SMALL
                    else int(rows_before.get(segment, 0)))
        change = (m_after.value - value_before if m_after.value is not None and value_before is not None else None)
        note = m_after.undefined_reason or ""
        if segment == SMALL:
            note = f"{len(small)} segment(s) with fewer than {min_rows} rows in the after window, pooled"
        rows.append({"segment": segment, "n_before": n_before, "n_after": int(parts["after"]["n"].sum()),
                     "value_before": value_before, "value_after": m_after.value, "change": change,
                     "verdict": m_after.verdict, "n_privileged": m_after.n_privileged,
                     "n_unprivileged": m_after.n_unprivileged,
                     "distance": None if segment == SMALL or m_after.verdict in _UNJUDGED
                     else distance_from_ideal(m_after), "note": note})
    ranking = pd.DataFrame(rows, columns=RANKING_COLUMNS)
    for col in ("value_before", "value_after", "change", "distance"):
        ranking[col] = ranking[col].astype(float)
    ranking["failing"] = ranking["verdict"] == "fail"
    ranking["last"] = ranking["segment"] == SMALL
    ranking = ranking.sort_values(["last", "failing", "distance", "n_after"], ascending=[True, False, False, False],
                                  na_position="last", kind="stable").drop(columns=["failing", "last"])
    return SegmentFairness(model=model, columns=columns, attribute=attr.name, metric=metric,
                           label=SPECS[metric].label, before=before, after=after, overall_before=overall.get("before"),
                           overall_after=overall["after"], ranking=ranking.reset_index(drop=True), min_rows=min_rows,
                           threshold=overall["after"].threshold)


def rank_columns_by_fairness(ctx: Context, model: str, before: Window, after: Window,
                             metric: str = "disparate_impact", attribute: str | None = None,
                             min_rows: int = MIN_ROWS, version: str | None = None) -> list[SegmentFairness]:
    """Every segment column's fairness per segment (the protected attributes excepted), the column whose
    top segment is farthest from fair first."""
    attr = pick_attributes(ctx.model(model), attribute)[0].name
    out = [compute_segment_fairness(ctx, model, before, after, (c,), metric, attr, min_rows, version)
           for c in segment_columns(ctx, model) if c != attr]
    return sorted(out, key=lambda s: -(s.top["distance"] if s.top else -1.0))
