"""Metric providers for the policy engine: each turns one analytics result into measured values.

Why a separate module: the analytics (drift, fairness, operations, quality) each own their maths; a
provider only calls the module's public ``compute_*`` function once per evaluation (memoised) and picks
the numbers out; it never invents a value. The analytics are imported inside each provider, so a
policy set that uses only latency never loads the drift code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.windows import Window
from dashboard.context import Context
from dashboard.settings import PolicySpec


@dataclass(frozen=True)
class Measurement:
    """One measured value (``None`` when it cannot be measured, with ``detail`` saying why)."""

    value: float | None
    rows: int
    detail: str = ""
    subject: str | None = None  # the column or protected attribute the value is about


@dataclass
class EvalInput:
    """What every provider needs, plus a memo so one evaluation computes each analysis once."""

    ctx: Context
    model: str
    version: str | None
    window: Window
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def cached(self, key: tuple[Any, ...], fn: Callable[[], Any]) -> Any:
        if key not in self.memo:
            try:
                self.memo[key] = ("ok", fn())
            except Exception as exc:  # remembered so a failing analysis is not retried per policy
                self.memo[key] = ("error", exc)
        kind, value = self.memo[key]
        if kind == "error":
            raise value
        return value


def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v and v not in (float("inf"), float("-inf")) else None


# ----------------------------------------------------------------------------------------- drift

def _drift(ev: EvalInput, spec: PolicySpec) -> Any:
    reference = str(spec.params.get("reference", "config"))
    from dashboard.monitoring.drift import compute_drift

    return ev.cached(("drift", ev.window, ev.version, reference),
                     lambda: compute_drift(ev.ctx, ev.model, ev.window, reference=reference, version=ev.version))


def drift_share(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _drift(ev, spec)
    tested = [c for c in r.columns if getattr(c, "tested", True)]
    drifted = [c.column for c in tested if c.drifted]
    return [Measurement(_f(r.share_drifted), int(r.n_current),
                        f"{len(drifted)} of {len(tested)} columns drifted"
                        + (f" ({', '.join(drifted)})" if drifted else "") + f"; reference {r.reference_label}")]


def drifted_features(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _drift(ev, spec)
    drifted = [c.column for c in r.columns if c.drifted]
    return [Measurement(float(len(drifted)), int(r.n_current), ", ".join(drifted) or "none")]


def feature_drift(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """1 when the column drifted by its own method and threshold, else 0 (score in the detail)."""
    r = _drift(ev, spec)
    wanted = spec.params.get("column")
    out = []
    for c in r.columns:
        if wanted and c.column != wanted:
            continue
        if c.column in ("prediction", "label") and not wanted:
            continue
        if not getattr(c, "tested", c.method is not None):
            out.append(Measurement(None, int(c.n_current), c.note or "not tested", c.column))
            continue
        score = "n/a" if c.score is None else f"{c.score:.4g}"
        out.append(Measurement(1.0 if c.drifted else 0.0, int(c.n_current),
                               f"{c.method} {score} (threshold {c.threshold})", c.column))
    if wanted and not out:
        out.append(Measurement(None, 0, f"column '{wanted}' is not in the drift report", str(wanted)))
    return out


# -------------------------------------------------------------------------------------- fairness

def fairness_metric(key: str) -> Callable[[EvalInput, PolicySpec], list[Measurement]]:
    def provider(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
        from dashboard.monitoring.fairness import compute_fairness

        report = ev.cached(("fairness", ev.window, ev.version),
                           lambda: compute_fairness(ev.ctx, ev.model, ev.window, version=ev.version))
        wanted = spec.params.get("attribute")
        out = []
        for attr in report.attributes:
            if wanted and attr.attribute != wanted:
                continue
            m = attr.metrics.get(key)
            if m is None:
                out.append(Measurement(None, 0, f"{key} is not computed", attr.attribute))
                continue
            rows = int(m.n_privileged) + int(m.n_unprivileged)
            detail = (f"{m.uses}; privileged {', '.join(attr.privileged)} (n={m.n_privileged}) vs "
                      f"{', '.join(attr.unprivileged)} (n={m.n_unprivileged})")
            if m.value is None:
                detail = f"undefined: {m.undefined_reason}"
            out.append(Measurement(_f(m.value), rows, detail, attr.attribute))
        if not out:
            out.append(Measurement(None, 0, f"no protected attribute '{wanted}'" if wanted
                                   else "the model has no protected attributes"))
        return out

    return provider


# ------------------------------------------------------------------------------------ operations

def _ops(ev: EvalInput) -> Any:
    from dashboard.monitoring.operations import compute_operations

    return ev.cached(("ops", ev.window, ev.version),
                     lambda: compute_operations(ev.ctx, ev.model, ev.window, bucket="day", version=ev.version))


def latency_p95(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _ops(ev)
    n = int(r.requests) - int(r.rows_without_latency)
    return [Measurement(_f(r.latency_p95_ms), n, f"p50 {_ms(r.latency_p50_ms)}, p99 {_ms(r.latency_p99_ms)}"
                        if r.latency_p95_ms is not None else "no latency values")]


def _ms(x: Any) -> str:
    v = _f(x)
    return "n/a" if v is None else f"{v:.1f} ms"


def latency_p99(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _ops(ev)
    return [Measurement(_f(r.latency_p99_ms), int(r.requests) - int(r.rows_without_latency))]


def error_rate(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _ops(ev)
    return [Measurement(_f(r.error_rate), int(r.requests), f"{r.errors} errors of {r.requests} requests")]


# --------------------------------------------------------------------------------------- quality

def _quality(ev: EvalInput) -> Any:
    from dashboard.monitoring.quality import compute_quality

    return ev.cached(("quality", ev.window, ev.version),
                     lambda: compute_quality(ev.ctx, ev.model, ev.window, version=ev.version))


def accuracy(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _quality(ev)
    a = r.actual
    return [Measurement(_f(a.accuracy), int(a.n_labelled),
                        a.reason or f"{a.n_labelled} labelled of {r.n_rows} predictions")]


def quality_field(name: str) -> Callable[[EvalInput, PolicySpec], list[Measurement]]:
    def provider(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
        a = _quality(ev).actual
        return [Measurement(_f(getattr(a, name)), int(a.n_labelled), a.reason or "")]

    return provider


def estimated_accuracy(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _quality(ev)
    unlabelled = int(r.n_rows) - int(r.n_labelled)
    return [Measurement(_f(r.estimated_accuracy), unlabelled,
                        r.estimate_reason or "confidence-based estimate over the unlabelled predictions")]


def label_coverage(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _quality(ev)
    return [Measurement(_f(r.label_coverage), int(r.n_rows), f"{r.n_labelled} of {r.n_rows} predictions labelled")]


# ------------------------------------------------------------------------- card and ingestion

def card_completeness(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    from dashboard.governance import cards

    version = ev.version or cards.champion_version(ev.ctx, ev.model)
    if version is None:
        return [Measurement(None, 0, "no version given and no champion alias")]
    card = ev.cached(("card", version), lambda: cards.load_card(ev.ctx, ev.model, version))
    missing = card.missing_sections()
    return [Measurement(card.completeness(), len(cards.AUTHORED),
                        f"version {version}; missing: {', '.join(missing)}" if missing else f"version {version}; "
                        "every section filled")]


def ingest_rejects(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """Files rejected at ingestion whose rejection falls in the window (wall-clock times)."""
    with ev.ctx.store.connect() as con:
        rej = con.execute("SELECT count(*) FROM ingest_rejects WHERE model = ? AND rejected_at >= ? "
                          "AND rejected_at < ?", [ev.model, ev.window.start, ev.window.end]).fetchone()
        ok = con.execute("SELECT count(*) FROM ingest_manifest WHERE model = ? AND ingested_at >= ? "
                         "AND ingested_at < ?", [ev.model, ev.window.start, ev.window.end]).fetchone()
    n_rej, n_ok = int(rej[0]) if rej else 0, int(ok[0]) if ok else 0
    return [Measurement(float(n_rej), n_rej + n_ok, f"{n_rej} rejected of {n_rej + n_ok} files")]


Provider = Callable[[EvalInput, PolicySpec], list[Measurement]]


def providers() -> dict[str, tuple[Provider, str, str]]:
    """metric name -> (provider, description, time basis: "data" = log time, "wall" = wall-clock)."""
    table: dict[str, tuple[Provider, str, str]] = {
        "drift_share": (drift_share, "share of tested columns that drifted", "data"),
        "drifted_features": (drifted_features, "number of drifted columns", "data"),
        "feature_drift": (feature_drift, "1 if a column drifted by its method and threshold, else 0", "data"),
        "latency_p95_ms": (latency_p95, "95th percentile latency in ms", "data"),
        "latency_p95": (latency_p95, "95th percentile latency in ms", "data"),
        "latency_p99_ms": (latency_p99, "99th percentile latency in ms", "data"),
        "error_rate": (error_rate, "share of predictions with status error", "data"),
        "accuracy": (accuracy, "accuracy on labelled predictions", "data"),
        "actual_accuracy": (accuracy, "accuracy on labelled predictions", "data"),
        "f1": (quality_field("f1"), "F1 on labelled predictions", "data"),
        "roc_auc": (quality_field("roc_auc"), "ROC AUC on labelled predictions", "data"),
        "estimated_accuracy": (estimated_accuracy, "confidence-based accuracy estimate (unlabelled rows)", "data"),
        "label_coverage": (label_coverage, "share of predictions with a label", "data"),
        "card_completeness": (card_completeness, "share of model card sections filled", "data"),
        "ingest_rejects": (ingest_rejects, "files rejected at ingestion", "wall"),
    }
    from dashboard.monitoring.fairness_metrics import METRIC_KEYS

    for key in METRIC_KEYS:
        table[key] = (fairness_metric(key), f"fairness: {key.replace('_', ' ')} per protected attribute", "data")
    return table
