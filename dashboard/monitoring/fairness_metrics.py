"""AIF360's group-fairness metrics as pure functions of per-group confusion counts.

Why counts: every metric AIF360's ``ClassificationMetric`` and ``BinaryLabelDatasetMetric`` offer for a
binary classifier is a function of a few sums per group, which the database computes in one GROUP BY.
Definitions follow aif360 0.6.1 exactly (u = unprivileged, p = privileged; "difference" = u - p, "ratio"
= u / p; weighted counts except the entropy indices, which AIF360 computes unweighted). Where AIF360
divides by zero (inf/NaN) or silently substitutes 0 (precision, accuracy), Vigil returns ``None`` with
the reason instead, so no NaN ever reaches a screen.

Prediction-only metrics (selection rate, disparate impact, statistical parity) use every row; label-based
ones use labelled rows only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from dashboard.settings import PolicySpec, Thresholds, compare

Verdict = Literal["pass", "fail", "undefined", "too_small", "info"]
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Counts:
    """Sums over one group. ``w_*`` are weighted; ``n*``/``tp``.. are row counts (labelled rows for tp..fn)."""

    n: int = 0
    w_n: float = 0.0
    w_pred_pos: float = 0.0
    n_pred_pos: int = 0
    n_labelled: int = 0
    w_labelled: float = 0.0
    w_tp: float = 0.0
    w_fp: float = 0.0
    w_tn: float = 0.0
    w_fn: float = 0.0
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any] | Any) -> Counts:
        """From a row (mapping or Series) of :func:`connectors.queries.fairness.confusion_counts`."""
        values: dict[str, Any] = {f.name: (int(row[f.name]) if f.type in ("int", int) else float(row[f.name]))
                                  for f in fields(cls)}
        return cls(**values)

    @property
    def w_pos(self) -> float:  # labelled favourable outcomes (P)
        return self.w_tp + self.w_fn

    @property
    def w_neg(self) -> float:  # labelled unfavourable outcomes (N)
        return self.w_tn + self.w_fp


def total(counts: list[Counts]) -> Counts:
    out = Counts()
    for c in counts:
        out = out + c
    return out


@dataclass(frozen=True)
class Rate:
    """A rate with its reason when undefined."""

    value: float | None
    undefined_reason: str | None = None


def _ratio(num: float, den: float, why: str) -> Rate:
    return Rate(num / den) if den > 0 else Rate(None, why)


def group_rates(c: Counts) -> dict[str, Rate]:
    """Per-group rates: base_rate (labels), selection_rate (predictions), tpr, fpr, fnr, precision, error_rate."""
    return {
        "selection_rate": _ratio(c.w_pred_pos, c.w_n, "no rows"),
        "base_rate": _ratio(c.w_pos, c.w_labelled, "no labelled rows"),
        "tpr": _ratio(c.w_tp, c.w_pos, "no labelled favourable outcomes"),
        "fpr": _ratio(c.w_fp, c.w_neg, "no labelled unfavourable outcomes"),
        "fnr": _ratio(c.w_fn, c.w_pos, "no labelled favourable outcomes"),
        "precision": _ratio(c.w_tp, c.w_tp + c.w_fp, "no favourable predictions among labelled rows"),
        "error_rate": _ratio(c.w_fp + c.w_fn, c.w_labelled, "no labelled rows"),
    }


@dataclass(frozen=True)
class MetricValue:
    """One fairness metric: value (or the reason it is undefined), its threshold and the verdict."""

    key: str
    label: str
    value: float | None
    undefined_reason: str | None
    threshold: str
    verdict: Verdict
    uses: str  # "all rows" or "labelled rows"
    n_privileged: int
    n_unprivileged: int
    ideal: float = 0.0

    def display(self) -> str:
        if self.value is None:
            return f"undefined: {self.undefined_reason}"
        return f"{self.value:.4f}"


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    uses: Literal["all rows", "labelled rows"]
    kind: Literal["ratio", "difference", "abs", "index"]


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("disparate_impact", "Disparate impact (selection rate ratio)", "all rows", "ratio"),
    MetricSpec("statistical_parity_difference", "Statistical parity difference", "all rows", "difference"),
    MetricSpec("equal_opportunity_difference", "Equal opportunity difference (TPR)", "labelled rows", "difference"),
    MetricSpec("average_odds_difference", "Average odds difference", "labelled rows", "difference"),
    MetricSpec("average_abs_odds_difference", "Average absolute odds difference", "labelled rows", "abs"),
    MetricSpec("false_positive_rate_difference", "False positive rate difference", "labelled rows", "difference"),
    MetricSpec("false_negative_rate_difference", "False negative rate difference", "labelled rows", "difference"),
    MetricSpec("error_rate_difference", "Error rate difference", "labelled rows", "difference"),
    MetricSpec("base_rate_disparate_impact", "Disparate impact of true labels (base rate ratio)",
               "labelled rows", "ratio"),
    MetricSpec("base_rate_parity_difference", "Statistical parity difference of true labels",
               "labelled rows", "difference"),
    MetricSpec("generalized_entropy_index", "Generalized entropy index (alpha=2)", "labelled rows", "index"),
    MetricSpec("theil_index", "Theil index", "labelled rows", "index"),
    MetricSpec("between_group_theil_index", "Between-group Theil index", "labelled rows", "index"),
)
METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS)
SPECS: dict[str, MetricSpec] = {m.key: m for m in METRICS}

_SIDE = {"u": "unprivileged", "p": "privileged"}


def _diff(ru: Rate, rp: Rate) -> Rate:
    if ru.value is None:
        return Rate(None, f"unprivileged group has {ru.undefined_reason}")
    if rp.value is None:
        return Rate(None, f"privileged group has {rp.undefined_reason}")
    return Rate(ru.value - rp.value)


def _quot(ru: Rate, rp: Rate, what: str) -> Rate:
    if ru.value is None:
        return Rate(None, f"unprivileged group has {ru.undefined_reason}")
    if rp.value is None:
        return Rate(None, f"privileged group has {rp.undefined_reason}")
    if rp.value == 0:
        return Rate(None, f"privileged group has no {what}")
    return Rate(ru.value / rp.value)


def benefit_entropy(tp: float, fp: float, tn: float, fn: float, alpha: float) -> Rate:
    """Generalized entropy index of the benefits b = y_hat - y + 1 (FN 0, TP/TN 1, FP 2), from counts."""
    n = tp + fp + tn + fn
    if n == 0:
        return Rate(None, "no labelled rows")
    mu = (tp + tn + 2 * fp) / n
    if mu == 0:
        return Rate(None, "every labelled row is a false negative (mean benefit 0)")
    ones, twos = (tp + tn), fp  # rows with benefit 1 and 2; benefit-0 rows (FN) add 0 (alpha=1) or -1
    if alpha == 1:
        s = ones * (1 / mu) * math.log(1 / mu) + (twos * (2 / mu) * math.log(2 / mu) if twos else 0.0)
        return Rate(s / n)
    if alpha == 0:
        if fn:
            return Rate(None, "a false negative has benefit 0 (log of 0)")
        return Rate(-(ones * math.log(1 / mu) + twos * math.log(2 / mu)) / n)
    s = ones * (1 / mu) ** alpha + twos * (2 / mu) ** alpha - n  # FN rows add 0 ** alpha - 1 = -1
    return Rate(s / (n * alpha * (alpha - 1)))


def between_group_theil(groups: list[Counts], n_total: int) -> Rate:
    """AIF360's between-group Theil index: each row gets its group's mean benefit; others get 0."""
    if n_total == 0:
        return Rate(None, "no labelled rows")
    parts: list[tuple[int, float]] = []
    for g in groups:
        if g.n_labelled:
            parts.append((g.n_labelled, (g.tp + g.tn + 2 * g.fp) / g.n_labelled))
    mu = sum(n * m for n, m in parts) / n_total
    if mu == 0:
        return Rate(None, "mean benefit is 0 (no correct or favourable-error predictions)")
    s = sum(n * (m / mu) * math.log(m / mu) for n, m in parts if m > 0)
    return Rate(s / n_total)


def metric_rates(unpriv: Counts, priv: Counts, everyone: Counts | None = None) -> dict[str, Rate]:
    """Every metric in :data:`METRIC_KEYS` (value or reason) from the two sides' counts.

    ``everyone`` are the counts over all rows considered (including rows in neither group, e.g. a missing
    attribute value); it defaults to ``unpriv + priv`` and feeds the entropy indices.
    """
    everyone = everyone if everyone is not None else unpriv + priv
    ru, rp = group_rates(unpriv), group_rates(priv)
    d = {k: _diff(ru[k], rp[k]) for k in ("selection_rate", "base_rate", "tpr", "fpr", "fnr", "error_rate")}
    out: dict[str, Rate] = {
        "disparate_impact": _quot(ru["selection_rate"], rp["selection_rate"], "favourable predictions"),
        "statistical_parity_difference": d["selection_rate"],
        "equal_opportunity_difference": d["tpr"],
        "false_positive_rate_difference": d["fpr"],
        "false_negative_rate_difference": d["fnr"],
        "error_rate_difference": d["error_rate"],
        "base_rate_disparate_impact": _quot(ru["base_rate"], rp["base_rate"], "labelled favourable outcomes"),
        "base_rate_parity_difference": d["base_rate"],
    }
    if d["fpr"].value is not None and d["tpr"].value is not None:
        out["average_odds_difference"] = Rate(0.5 * (d["fpr"].value + d["tpr"].value))
        out["average_abs_odds_difference"] = Rate(0.5 * (abs(d["fpr"].value) + abs(d["tpr"].value)))
    else:
        why = d["fpr"].undefined_reason or d["tpr"].undefined_reason
        out["average_odds_difference"] = Rate(None, why)
        out["average_abs_odds_difference"] = Rate(None, why)
    e = everyone
    out["generalized_entropy_index"] = benefit_entropy(e.tp, e.fp, e.tn, e.fn, 2)
    out["theil_index"] = benefit_entropy(e.tp, e.fp, e.tn, e.fn, 1)
    out["between_group_theil_index"] = between_group_theil([unpriv, priv], e.n_labelled)
    return {k: out[k] for k in METRIC_KEYS}


def threshold_of(key: str, t: Thresholds) -> tuple[str, tuple[float | None, float | None] | None]:
    """Description and acceptable [low, high] band of one metric (None: no threshold, informative)."""
    spec = SPECS[key]
    if spec.kind == "ratio":
        return f"within [{t.disparate_impact_low:g}, {t.disparate_impact_high:g}]", (
            t.disparate_impact_low, t.disparate_impact_high)
    if spec.kind == "difference":
        return f"|value| ≤ {t.parity_difference:g}", (-t.parity_difference, t.parity_difference)
    if spec.kind == "abs":
        return f"≤ {t.parity_difference:g}", (0.0, t.parity_difference)
    return "none (0 = even)", None


def policy_for(key: str, policies: Sequence[PolicySpec], attribute: str | None = None) -> PolicySpec | None:
    """The model's policy on metric ``key`` (one scoped to ``attribute`` wins over an unscoped one)."""
    scoped = [p for p in policies if p.metric == key and p.params.get("attribute") == attribute and attribute]
    general = [p for p in policies if p.metric == key and not p.params.get("attribute")]
    found = scoped or general
    return found[0] if found else None


def policy_band(spec: PolicySpec) -> tuple[float | None, float | None]:
    """The acceptable band a policy describes (None: unbounded on that side; 'outside' has no band)."""
    t = spec.threshold
    if spec.comparator == "within" and isinstance(t, tuple):
        return t[0], t[1]
    if spec.comparator in ("<", "<=") and not isinstance(t, tuple):
        return None, float(t)
    if spec.comparator in (">", ">=") and not isinstance(t, tuple):
        return float(t), None
    return None, None


def rule_for(key: str, t: Thresholds, policies: Sequence[PolicySpec] = (),
             attribute: str | None = None) -> tuple[str, tuple[float | None, float | None] | None, PolicySpec | None]:
    """Threshold description, band and deciding policy of a metric: a declared policy, else the defaults."""
    spec = policy_for(key, policies, attribute)
    if spec is not None:
        shown = (f"[{spec.threshold[0]:g}, {spec.threshold[1]:g}]" if isinstance(spec.threshold, tuple)
                 else f"{spec.threshold:g}")
        return f"{spec.comparator} {shown} (policy '{spec.name}')", policy_band(spec), spec
    desc, band = threshold_of(key, t)
    return desc, band, None


def metrics_from_counts(unpriv: Counts, priv: Counts, everyone: Counts | None = None,
                        thresholds: Thresholds | None = None, policies: Sequence[PolicySpec] = (),
                        attribute: str | None = None) -> dict[str, MetricValue]:
    """Metric values with thresholds and verdicts; a side below ``min_group_size`` rows gives "too_small".

    Label-based metrics judge size by labelled rows, prediction-only ones by all rows. A policy of the
    model on a metric (``metric = "disparate_impact"``, optionally ``attribute = ...``) replaces the
    default threshold of that metric.
    """
    t = thresholds or Thresholds()
    rates = metric_rates(unpriv, priv, everyone)
    out: dict[str, MetricValue] = {}
    for key, rate in rates.items():
        spec = SPECS[key]
        labelled = spec.uses == "labelled rows"
        nu = unpriv.n_labelled if labelled else unpriv.n
        np_ = priv.n_labelled if labelled else priv.n
        desc, band, policy = rule_for(key, t, policies, attribute)
        verdict: Verdict
        if rate.value is None:
            verdict = "undefined"
        elif (nu + np_ if spec.kind == "index" else min(nu, np_)) < t.min_group_size:
            verdict = "too_small"
        elif policy is not None:
            verdict = "pass" if compare(rate.value, policy.comparator, policy.threshold) else "fail"
        elif band is None:
            verdict = "info"
        else:
            lo, hi = band
            verdict = "pass" if (lo is None or lo <= rate.value) and (hi is None or rate.value <= hi) else "fail"
        out[key] = MetricValue(key=key, label=spec.label, value=rate.value, undefined_reason=rate.undefined_reason,
                               threshold=desc, verdict=verdict, uses=spec.uses, n_privileged=np_,
                               n_unprivileged=nu, ideal=1.0 if spec.kind == "ratio" else 0.0)
    return out


# ------------------------------------------------------------------------------------ confidence intervals

def wilson_interval(x: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion x/n (None when n == 0)."""
    if n <= 0:
        return None
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(x1: float, n1: float, x2: float, n2: float,
                        z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval of p1 - p2 (well-behaved at 0 and 1, unlike Wald)."""
    a, b = wilson_interval(x1, n1, z), wilson_interval(x2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    return (d - math.sqrt((p1 - a[0]) ** 2 + (b[1] - p2) ** 2),
            d + math.sqrt((a[1] - p1) ** 2 + (p2 - b[0]) ** 2))


def log_ratio_interval(x1: float, n1: float, x2: float, n2: float,
                       z: float = Z95) -> tuple[float, float] | None:
    """Katz log interval of (x1/n1)/(x2/n2); None when a count is 0 (the log is unbounded)."""
    if min(x1, x2, n1, n2) <= 0:
        return None
    r = (x1 / n1) / (x2 / n2)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return r * math.exp(-z * se), r * math.exp(z * se)


def wald_half_width(p: float, n: float) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.inf


def metric_interval(key: str, unpriv: Counts, priv: Counts, z: float = Z95) -> tuple[float, float] | None:
    """A 95% interval for the main metrics from row counts (weights ignored: the log has none)."""
    u, p = unpriv, priv
    if key == "disparate_impact":
        return log_ratio_interval(u.n_pred_pos, u.n, p.n_pred_pos, p.n, z)
    if key == "statistical_parity_difference":
        return newcombe_difference(u.n_pred_pos, u.n, p.n_pred_pos, p.n, z)
    if key == "equal_opportunity_difference":
        return newcombe_difference(u.tp, u.tp + u.fn, p.tp, p.tp + p.fn, z)
    if key == "false_positive_rate_difference":
        return newcombe_difference(u.fp, u.fp + u.tn, p.fp, p.fp + p.tn, z)
    if key == "average_odds_difference":
        pos_u, pos_p, neg_u, neg_p = u.tp + u.fn, p.tp + p.fn, u.fp + u.tn, p.fp + p.tn
        if min(pos_u, pos_p, neg_u, neg_p) <= 0:
            return None
        tpr_u, tpr_p, fpr_u, fpr_p = u.tp / pos_u, p.tp / pos_p, u.fp / neg_u, p.fp / neg_p
        centre = 0.5 * ((fpr_u - fpr_p) + (tpr_u - tpr_p))
        var = 0.25 * (wald_half_width(tpr_u, pos_u) ** 2 + wald_half_width(tpr_p, pos_p) ** 2
                      + wald_half_width(fpr_u, neg_u) ** 2 + wald_half_width(fpr_p, neg_p) ** 2)
        return centre - z * math.sqrt(var), centre + z * math.sqrt(var)
    return None


INTERVAL_METRICS: tuple[str, ...] = ("disparate_impact", "statistical_parity_difference",
                                     "equal_opportunity_difference", "average_odds_difference",
                                     "false_positive_rate_difference")
