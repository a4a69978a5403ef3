"""Fairness of a production model: AIF360 group metrics per protected attribute, over time, intersections.

Why this shape: the database returns per-group confusion counts in one GROUP BY over every protected
attribute at once (a few dozen rows whatever the log size); everything else here is arithmetic over
those rows (:mod:`dashboard.monitoring.fairness_metrics`). The page, the CLI and policy checks call these functions.

Rows: fairness counts the window's successful predictions (``status = 'ok'``); a failed request carries
no usable prediction, so it is left out, and the report says how many were (``n_left_out``) and why
(:data:`LEFT_OUT_REASON`) instead of dropping them silently. "All rows" in a metric's description means
all of these successful predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import pandas as pd

from connectors.queries import fairness as q
from connectors.schema import quote
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.fairness_metrics import (
    INTERVAL_METRICS,
    METRIC_KEYS,
    Counts,
    MetricValue,
    group_rates,
    metric_interval,
    metrics_from_counts,
    rule_for,
    total,
    wilson_interval,
)
from dashboard.settings import ModelConfig, PolicySpec, ProtectedAttribute, Thresholds

__all__ = ["LEFT_OUT_REASON", "METRIC_KEYS", "MISSING", "ROWS_USED", "AttributeFairness", "FairnessReport",
           "Intersection", "MetricValue", "attribute_fairness", "compute_fairness", "counts_frame",
           "fairness_over_time", "metrics_from_counts", "model_versions", "pick_attributes"]

MISSING = "(missing)"
#: Which rows the metrics use, and why the others are left out (said on the page and by the CLI).
ROWS_USED = "successful predictions (status 'ok')"
LEFT_OUT_REASON = "failed requests (status other than 'ok') carry no usable prediction"
RATE_COLUMNS: tuple[str, ...] = ("selection_rate", "base_rate", "tpr", "fpr", "fnr", "precision", "error_rate")


@dataclass(frozen=True)
class AttributeFairness:
    """Fairness of one protected attribute: its groups and the privileged-vs-unprivileged metrics."""

    attribute: str
    privileged: tuple[str, ...]
    unprivileged: tuple[str, ...]
    groups: pd.DataFrame  # one row per group value: counts, rates, privileged flag, too_small
    metrics: dict[str, MetricValue]
    worst_group: str | None  # lowest selection rate among groups large enough to score
    n_privileged: int
    n_unprivileged: int
    n_missing: int
    notes: tuple[str, ...] = ()

    def failing(self) -> list[MetricValue]:
        return [m for m in self.metrics.values() if m.verdict == "fail"]


@dataclass(frozen=True)
class Intersection:
    """Groups formed by two attributes (e.g. sex x age group) with the worst-off one named."""

    attributes: tuple[str, str]
    groups: pd.DataFrame  # columns: both attributes, n, n_labelled, rates, too_small, ratio_to_best
    worst_group: str | None
    worst_selection_rate: float | None
    best_selection_rate: float | None


@dataclass(frozen=True)
class FairnessReport:
    model: str
    version: str | None
    window: Window
    attributes: list[AttributeFairness]
    intersections: list[Intersection]
    n_rows: int
    n_labelled: int
    min_group_size: int
    favourable: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    n_left_out: int = 0  # rows of the window that are not successful predictions (LEFT_OUT_REASON)

    @property
    def left_out_note(self) -> str | None:
        """How many rows of the window the metrics leave out and why (None when none were)."""
        if not self.n_left_out:
            return None
        total = self.n_rows + self.n_left_out
        return (f"{self.n_left_out:,} of the window's {total:,} predictions ({self.n_left_out / total:.2%}) are "
                f"left out because {LEFT_OUT_REASON}; the metrics use the other {self.n_rows:,}, the {ROWS_USED}")

    def attribute(self, name: str) -> AttributeFairness:
        for a in self.attributes:
            if a.attribute == name:
                return a
        raise VigilError(f"attribute '{name}' is not in this report (have: "
                         f"{', '.join(a.attribute for a in self.attributes)})")

    def metrics_table(self) -> pd.DataFrame:
        """One row per attribute x metric, display-ready (no NaN: undefined values carry their reason)."""
        rows = []
        for a in self.attributes:
            for m in a.metrics.values():
                rows.append({"attribute": a.attribute, "metric": m.key, "label": m.label, "value": m.value,
                             "shown": m.display(), "threshold": m.threshold, "verdict": m.verdict,
                             "uses": m.uses, "n_privileged": m.n_privileged,
                             "n_unprivileged": m.n_unprivileged, "undefined_reason": m.undefined_reason})
        return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ groups

def _attribute_expr(cfg: ModelConfig, attr: ProtectedAttribute) -> str:
    if attr.is_binned:
        return q.bucket_expr(attr.name, attr.bins, attr.bucket_labels())
    if cfg.features.get(attr.name) == "numerical":
        return f"CAST({quote(attr.name)} AS VARCHAR)"
    return q.category_expr(attr.name)


def pick_attributes(cfg: ModelConfig, attribute: str | None) -> list[ProtectedAttribute]:
    """The model's protected attributes, or just ``attribute`` (an error names the configured ones)."""
    if not cfg.protected:
        raise VigilError(f"model '{cfg.name}' has no protected attribute; add [[models.\"{cfg.name}\".protected]] "
                         "tables with name and privileged values to vigil.toml")
    if attribute is None:
        return list(cfg.protected)
    for a in cfg.protected:
        if a.name == attribute:
            return [a]
    raise VigilError(f"'{attribute}' is not a protected attribute of model '{cfg.name}' "
                     f"(configured: {', '.join(cfg.protected_names)})")


def counts_frame(ctx: Context, cfg: ModelConfig, window: Window, version: str | None,
                 attrs: Sequence[ProtectedAttribute], bucket: str | None = None,
                 extra_groups: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Confusion counts per group of ``attrs`` (and per ``extra_groups``: alias -> SQL expression, e.g.
    segment columns), over ``window``; a missing attribute value reads as '(missing)'."""
    schema = ctx.schema(cfg.name)
    groups = {a.name: _attribute_expr(cfg, a) for a in attrs}
    groups.update(extra_groups or {})
    where, params = q.window_filter(window.start, window.end, version)
    with ctx.connect(cfg.name) as con:
        ctx.store.ensure_model(schema, con)
        df = q.confusion_counts(con, q.log_relation(schema), groups, cfg.favourable, where=where,
                                params=params, bucket=bucket)
    for a in attrs:
        df[a.name] = df[a.name].astype(object).where(df[a.name].notna(), MISSING)
    return df


def _left_out(ctx: Context, cfg: ModelConfig, window: Window, version: str | None) -> int:
    """Rows of the window (and version) that are not successful predictions."""
    schema = ctx.schema(cfg.name)
    where, params = q.window_filter(window.start, window.end, version)
    with ctx.connect(cfg.name) as con:
        ctx.store.ensure_model(schema, con)
        return q.left_out(con, schema, where, params)


def _sum(df: pd.DataFrame) -> Counts:
    if df.empty:
        return Counts()
    return Counts.from_mapping(df[list(q.COUNT_COLUMNS)].sum())


def _rates_row(c: Counts, min_size: int) -> dict[str, Any]:
    rates = group_rates(c)
    row: dict[str, Any] = {"n": c.n, "n_labelled": c.n_labelled,
                           "favourable_predictions": c.n_pred_pos,
                           "too_small": c.n < min_size}
    for k in RATE_COLUMNS:
        row[k] = rates[k].value
    return row


def _split(values: Sequence[str], privileged: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    priv = tuple(v for v in values if v in privileged)
    unpriv = tuple(v for v in values if v not in privileged and v != MISSING)
    return priv, unpriv


def attribute_fairness(df: pd.DataFrame, attr: ProtectedAttribute, privileged: Sequence[str],
                       t: Thresholds, policies: Sequence[PolicySpec] = ()) -> AttributeFairness:
    """One attribute's groups and metrics from the counts of :func:`counts_frame` (summed over other keys)."""
    by = df.groupby(attr.name, dropna=False)[list(q.COUNT_COLUMNS)].sum()
    counts = {str(v): Counts.from_mapping(r) for v, r in by.iterrows()}
    order = list(attr.bucket_labels()) if attr.is_binned else sorted(counts, key=lambda v: (v == MISSING, v))
    values = [v for v in order if v in counts] + [v for v in counts if v not in order]
    priv_vals, unpriv_vals = _split(values, privileged)
    cp = total([counts[v] for v in priv_vals])
    cu = total([counts[v] for v in unpriv_vals])
    everyone = total(list(counts.values()))
    metrics = metrics_from_counts(cu, cp, everyone, t, policies, attr.name)
    rows = []
    for v in values:
        row = {"group": v, "privileged": v in priv_vals, **_rates_row(counts[v], t.min_group_size)}
        rows.append(row)
    groups = pd.DataFrame(rows, columns=["group", "privileged", "n", "n_labelled", "favourable_predictions",
                                         "too_small", *RATE_COLUMNS])
    notes: list[str] = []
    if not priv_vals or cp.n == 0:
        notes.append(f"no row of the privileged group ({', '.join(privileged)}) in this window")
    if not unpriv_vals or cu.n == 0:
        notes.append("no row of an unprivileged group in this window")
    missing = counts.get(MISSING, Counts()).n
    if missing:
        notes.append(f"{missing} row(s) have no value for '{attr.name}' (or fall outside its bins) "
                     "and belong to neither side")
    worst = _worst(groups[(groups["group"] != MISSING)], "group")
    return AttributeFairness(attribute=attr.name, privileged=tuple(privileged), unprivileged=unpriv_vals,
                             groups=groups, metrics=metrics, worst_group=worst, n_privileged=cp.n,
                             n_unprivileged=cu.n, n_missing=missing, notes=tuple(notes))


def _worst(groups: pd.DataFrame, name_col: str) -> str | None:
    ok = groups[~groups["too_small"] & groups["selection_rate"].notna()]
    if ok.empty:
        return None
    pos = int(ok["selection_rate"].astype(float).to_numpy().argmin())
    return str(ok[name_col].iloc[pos])


def _intersection(df: pd.DataFrame, a: str, b: str, t: Thresholds) -> Intersection:
    by = df.groupby([a, b], dropna=False)[list(q.COUNT_COLUMNS)].sum()
    rows = []
    for key, r in by.iterrows():
        va, vb = (str(k) for k in key)  # type: ignore[attr-defined]
        if MISSING in (va, vb):
            continue
        rows.append({a: va, b: vb, "group": f"{a}={va} × {b}={vb}",
                     **_rates_row(Counts.from_mapping(r), t.min_group_size)})
    groups = pd.DataFrame(rows, columns=[a, b, "group", "n", "n_labelled", "favourable_predictions", "too_small",
                                         *RATE_COLUMNS])
    scored = groups[~groups["too_small"] & groups["selection_rate"].notna()]
    best = float(scored["selection_rate"].max()) if len(scored) else None
    groups["ratio_to_best"] = [
        (float(sr) / best) if (best and not small and sr is not None and pd.notna(sr)) else None
        for sr, small in zip(groups["selection_rate"], groups["too_small"], strict=True)]
    worst = _worst(groups, "group")
    worst_rate = float(scored["selection_rate"].min()) if len(scored) else None
    return Intersection(attributes=(a, b), groups=groups, worst_group=worst, worst_selection_rate=worst_rate,
                        best_selection_rate=best)


def _privileged_for(attr: ProtectedAttribute, attribute: str | None,
                    privileged: Sequence[str] | None) -> tuple[str, ...]:
    if privileged is not None and attribute == attr.name:
        return tuple(str(p) for p in privileged)
    return attr.privileged


# ------------------------------------------------------------------------------------------ public API

@progress.step("fairness: confusion counts per group")
def compute_fairness(ctx: Context, model: str, window: Window, attribute: str | None = None,
                     version: str | None = None, privileged: Sequence[str] | None = None) -> FairnessReport:
    """Fairness metrics of ``model`` over ``window`` per protected attribute (or just ``attribute``).

    ``privileged`` overrides the configured privileged values of ``attribute`` (needs ``attribute``);
    ``version`` restricts to one model version. Intersections cover every pair of the model's attributes.
    """
    cfg = ctx.model(model)
    if privileged is not None and attribute is None:
        raise VigilError("privileged values apply to one attribute: choose the attribute too")
    if privileged is not None and not privileged:
        raise VigilError("choose at least one privileged value")
    chosen = pick_attributes(cfg, attribute)
    t = cfg.thresholds
    df = counts_frame(ctx, cfg, window, version, cfg.protected)
    attrs = [attribute_fairness(df, a, _privileged_for(a, attribute, privileged), t, cfg.policies)
             for a in chosen]
    inters = [_intersection(df, a.name, b.name, t) for a, b in combinations(cfg.protected, 2)]
    everyone = _sum(df)
    return FairnessReport(model=model, version=version, window=window, attributes=attrs, intersections=inters,
                          n_rows=everyone.n, n_labelled=everyone.n_labelled, min_group_size=t.min_group_size,
                          favourable=cfg.favourable, thresholds=t,
                          n_left_out=_left_out(ctx, cfg, window, version))


def fairness_over_time(ctx: Context, model: str, window: Window, attribute: str, bucket: str = "day",
                       version: str | None = None, privileged: Sequence[str] | None = None,
                       metrics: Sequence[str] = INTERVAL_METRICS) -> pd.DataFrame:
    """Metrics per day or week with 95% intervals (Newcombe/Wilson for differences, Katz for ratios).

    Long format: bucket, metric, value, lower, upper, n_privileged, n_unprivileged, verdict,
    undefined_reason, band_low, band_high. Undefined values are None with their reason.
    """
    if bucket not in q.BUCKETS:
        raise VigilError(f"bucket must be one of {', '.join(q.BUCKETS)}, got '{bucket}'")
    cfg = ctx.model(model)
    attr = pick_attributes(cfg, attribute)[0]
    priv = tuple(privileged) if privileged is not None else attr.privileged
    t = cfg.thresholds
    df = counts_frame(ctx, cfg, window, version, [attr], bucket=bucket)
    rows = []
    for when, part in df.groupby("bucket"):
        values = [str(v) for v in part[attr.name]]
        pv, uv = _split(values, priv)
        cp = _sum(part[part[attr.name].isin(pv)])
        cu = _sum(part[part[attr.name].isin(uv)])
        vals = metrics_from_counts(cu, cp, _sum(part), t, cfg.policies, attr.name)
        for key in metrics:
            m = vals[key]
            ci = metric_interval(key, cu, cp) if m.value is not None else None
            _, band, _policy = rule_for(key, t, cfg.policies, attr.name)
            rows.append({"bucket": pd.Timestamp(str(when)), "metric": key, "label": m.label, "value": m.value,
                         "lower": ci[0] if ci else None, "upper": ci[1] if ci else None,
                         "n_privileged": m.n_privileged, "n_unprivileged": m.n_unprivileged,
                         "verdict": m.verdict, "undefined_reason": m.undefined_reason,
                         "band_low": band[0] if band else None, "band_high": band[1] if band else None})
    cols = ["bucket", "metric", "label", "value", "lower", "upper", "n_privileged", "n_unprivileged", "verdict",
            "undefined_reason", "band_low", "band_high"]
    return pd.DataFrame(rows, columns=cols).sort_values(["metric", "bucket"], ignore_index=True)


def group_rates_over_time(ctx: Context, model: str, window: Window, attribute: str, bucket: str = "day",
                          version: str | None = None) -> pd.DataFrame:
    """Selection rate per group and bucket with Wilson intervals (for the per-group trend chart)."""
    cfg = ctx.model(model)
    attr = pick_attributes(cfg, attribute)[0]
    df = counts_frame(ctx, cfg, window, version, [attr], bucket=bucket)
    rows = []
    for key, part in df.groupby(["bucket", attr.name]):
        when, group = key
        c = _sum(part)
        ci = wilson_interval(c.n_pred_pos, c.n)
        rows.append({"bucket": pd.Timestamp(str(when)), "group": str(group), "n": c.n,
                     "selection_rate": c.w_pred_pos / c.w_n if c.w_n else None,
                     "lower": ci[0] if ci else None, "upper": ci[1] if ci else None})
    return pd.DataFrame(rows, columns=["bucket", "group", "n", "selection_rate", "lower", "upper"])


def model_versions(ctx: Context, model: str) -> list[str]:
    """Model versions present in the log (for the version filter)."""
    schema = ctx.schema(model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        return q.model_versions(con, schema)


def attribute_values(cfg: ModelConfig, attribute: str) -> tuple[str, ...]:
    """Known group values of a binned attribute (empty for categorical ones: read them from a report)."""
    attr = pick_attributes(cfg, attribute)[0]
    return attr.bucket_labels() if attr.is_binned else ()
