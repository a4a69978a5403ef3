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

import pandas as pd

from connectors.windows import Window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.settings import PolicySpec


@dataclass(frozen=True)
class Measurement:
    """One measured value (``None`` when it cannot be measured, with ``detail`` saying why)."""

    value: float | None
    rows: int
    detail: str = ""
    subject: str | None = None  # the column or protected attribute the value is about
    window: str | None = None  # the rows measured, when not the policy's time window (gate evidence)


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


def _too_few(r: Any) -> str:
    return (f"too few rows for a drift verdict ({int(r.n_current):,} current, at least {r.min_drift_rows:,} "
            "needed: thresholds.min_drift_rows)")


def drift_share(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """Share of drifted columns among those with a verdict; no value when no column had enough rows."""
    r = _drift(ev, spec)
    judged = [c for c in r.columns if c.judged]
    if not judged:
        return [Measurement(None, int(r.n_current), _too_few(r) if r.n_too_few else "no column could be tested")]
    drifted = [c.column for c in judged if c.drifted]
    return [Measurement(_f(r.share_drifted), int(r.n_current),
                        f"{len(drifted)} of {len(judged)} columns drifted"
                        + (f" ({', '.join(drifted)})" if drifted else "") + f"; reference {r.reference_label}")]


def drifted_features(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _drift(ev, spec)
    if not r.n_judged:
        return [Measurement(None, int(r.n_current), _too_few(r) if r.n_too_few else "no column could be tested")]
    drifted = [c.column for c in r.columns if c.drifted]
    return [Measurement(float(len(drifted)), int(r.n_current), ", ".join(drifted) or "none")]


def feature_drift(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """1 when the column drifted by its own method and threshold, else 0 (score in the detail); no value
    when it was not tested or had too few current rows for a verdict."""
    r = _drift(ev, spec)
    wanted = spec.params.get("column")
    out = []
    for c in r.columns:
        if wanted and c.column != wanted:
            continue
        if c.column in ("prediction", "label") and not wanted:
            continue
        if not c.tested:
            out.append(Measurement(None, int(c.n_current), c.note or "not tested", c.column))
            continue
        score = "n/a" if c.score is None else f"{c.score:.4g}"
        if c.too_few_rows:
            out.append(Measurement(None, int(c.n_current), f"{c.method} {score} on {c.verdict}: no verdict",
                                   c.column))
            continue
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
            value = _f(m.value)
            if m.value is None:
                detail = f"undefined: {m.undefined_reason}"
            elif m.verdict == "too_small":
                value = None  # a ratio of a handful of rows proves nothing either way
                detail = (f"groups too small to judge (min_group_size {ev.ctx.model(ev.model).thresholds.min_group_size}"
                          f"): {detail}")
            out.append(Measurement(value, rows, detail, attr.attribute))
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


# ------------------------------------------------------- estimated performance, multivariate, segments

def _window_param(ev: EvalInput, spec: PolicySpec, key: str) -> Window | None:
    from connectors.windows import WindowError, parse_window

    text = spec.params.get(key)
    if text is None:
        return None
    try:
        return parse_window(str(text))
    except WindowError as exc:
        raise VigilError(f"policy {spec.name}: {key} = {text!r} is not a window: {exc}") from None


def _estimation(ev: EvalInput, spec: PolicySpec) -> Any:
    from dashboard.monitoring.estimation import compute_estimation

    ref = _window_param(ev, spec, "reference")
    bucket = str(spec.params.get("bucket", "day"))
    return ev.cached(("estimation", ev.window, ev.version, ref, bucket),
                     lambda: compute_estimation(ev.ctx, ev.model, ev.window, reference=ref, bucket=bucket,
                                                version=ev.version))


def cbpe_metric(key: str) -> Callable[[EvalInput, PolicySpec], list[Measurement]]:
    """The CBPE estimate of ``key`` over the window, its band in the detail."""
    def provider(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
        r = _estimation(ev, spec)
        m = r.metric(key)
        return [Measurement(_f(m["estimated"]), int(r.n_rows),
                            f"CBPE estimate, band {_f(m['lower'])}..{_f(m['upper'])}, realised {_f(m['realised'])}; "
                            f"reference {r.reference.label}; {r.calibration.text}")]

    return provider


def cbpe_alerts(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """Buckets whose CBPE estimate of some metric falls outside the reference thresholds."""
    r = _estimation(ev, spec)
    hit = r.buckets[r.buckets["alert"]]
    buckets = sorted({str(b)[:16] for b in hit["bucket"]})
    return [Measurement(float(len(buckets)), int(r.n_rows),
                        f"{len(buckets)} {r.bucket}(s) alert: " + (", ".join(sorted(set(hit["metric"]))) or "none"))]


def _reconstruction(ev: EvalInput, spec: PolicySpec) -> Any:
    from dashboard.monitoring.multivariate import compute_reconstruction

    ref = _window_param(ev, spec, "reference")
    bucket = str(spec.params.get("bucket", "day"))
    return ev.cached(("reconstruction", ev.window, ev.version, ref, bucket),
                     lambda: compute_reconstruction(ev.ctx, ev.model, ev.window, reference=ref, bucket=bucket,
                                                    version=ev.version))


def reconstruction_error(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _reconstruction(ev, spec)
    s = r.summary()
    return [Measurement(_f(s["reconstruction_error"]), int(r.buckets["n"].sum()),
                        f"PCA reconstruction error over the window; thresholds {_f(r.lower_threshold)}.."
                        f"{_f(r.upper_threshold)} per {r.bucket}; reference {r.reference.label}")]


def multivariate_alert_share(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _reconstruction(ev, spec)
    s = r.summary()
    return [Measurement(_f(s["alert_share"]), int(r.buckets["n"].sum()),
                        f"{s['alerting_buckets']} of {s['buckets']} {r.bucket}s outside the reconstruction-error "
                        f"thresholds" + (f", first {s['first_alert']}" if s["first_alert"] else ""))]


def _classifier(ev: EvalInput, spec: PolicySpec) -> Any:
    from dashboard.monitoring.domain_classifier import MAX_BUCKET_ROWS, MAX_REFERENCE_ROWS, compute_classifier

    ref = _window_param(ev, spec, "reference")
    bucket = str(spec.params.get("bucket", "day"))
    try:
        max_rows = int(spec.params.get("max_rows", MAX_BUCKET_ROWS))
        max_ref = int(spec.params.get("max_reference_rows", MAX_REFERENCE_ROWS))
    except (TypeError, ValueError):
        raise VigilError(f"policy {spec.name}: max_rows and max_reference_rows are numbers of rows") from None
    return ev.cached(("domain_classifier", ev.window, ev.version, ref, bucket, max_rows, max_ref),
                     lambda: compute_classifier(ev.ctx, ev.model, ev.window, reference=ref, bucket=bucket,
                                                version=ev.version, max_rows=max_rows, max_reference_rows=max_ref))


def domain_classifier_auroc(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """The highest domain-classifier ROC AUC of the window's buckets (the subject names that bucket)."""
    r = _classifier(ev, spec)
    s = r.summary()
    rows = int(r.buckets["n_sampled"].sum())
    if s["max_auroc"] is None:
        return [Measurement(None, rows, "no bucket had enough rows for the domain classifier; " + r.sample_note)]
    return [Measurement(_f(s["max_auroc"]), rows, f"highest of {s['scored_buckets']} {r.bucket}s' ROC AUC; "
                        f"reference {r.reference.label}; {r.sample_note}", subject=str(s["max_auroc_bucket"])[:16])]


def domain_classifier_alert_share(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _classifier(ev, spec)
    s = r.summary()
    return [Measurement(_f(s["alert_share"]), int(r.buckets["n_sampled"].sum()),
                        f"{s['alerting_buckets']} of {s['scored_buckets']} {r.bucket}s outside the domain classifier's "
                        f"ROC AUC thresholds {r.lower_threshold}..{r.upper_threshold}"
                        + (f", first {s['first_alert']}" if s["first_alert"] else "") + f"; {r.sample_note}")]


def segment_contribution(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """The largest contribution of one segment of ``column`` to the change of ``segment_metric`` (default
    accuracy) from the preceding window of the same length (or ``before``) to the policy's window."""
    from dashboard.monitoring.segments import compute_segment_change

    column = spec.params.get("column")
    if not column:
        raise VigilError(f"policy {spec.name}: segment_contribution needs column = \"<a categorical column>\"")
    before = _window_param(ev, spec, "before") or Window(ev.window.start - (ev.window.end - ev.window.start),
                                                         ev.window.start)
    metric = str(spec.params.get("segment_metric", "accuracy"))
    ch = ev.cached(("segments", ev.window, ev.version, before, str(column), metric),
                   lambda: compute_segment_change(ev.ctx, ev.model, before, ev.window, (str(column),), metric,
                                                  version=ev.version))
    top = ch.top
    if top is None:
        return [Measurement(None, 0, ch.headline(), subject=str(column))]
    return [Measurement(_f(abs(float(top["contribution"]))), int(top["n_after"]), ch.headline(),
                        subject=str(top["segment"]))]


def segment_fairness(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """A fairness metric (``fairness_metric``, default disparate impact) of ``attribute`` (default: the first
    protected one) within each segment of ``column`` over the policy's window: one measurement per segment
    with a verdict, the segment as subject, so every segment is held to the threshold. Segments below
    ``min_rows`` (default 100) rows or with a side under ``min_group_size`` are left out and counted in the
    detail; with none left, the measurement is "no data"."""
    from dashboard.monitoring.segment_fairness import compute_segment_fairness

    column = spec.params.get("column")
    if not column:
        raise VigilError(f"policy {spec.name}: segment_fairness needs column = \"<a categorical column>\"")
    metric = str(spec.params.get("fairness_metric", "disparate_impact"))
    attribute = spec.params.get("attribute")
    min_rows = int(spec.params.get("min_rows", 100))
    sf = ev.cached(("segment_fairness", ev.window, ev.version, str(column), metric, attribute, min_rows),
                   lambda: compute_segment_fairness(ev.ctx, ev.model, None, ev.window, (str(column),), metric,
                                                    None if attribute is None else str(attribute), min_rows,
                                                    ev.version))
    judged = sf.ranking[sf.ranking["distance"].notna()]
    left = len(sf.ranking) - len(judged)
    tail = f"; {left} segment(s) too small to judge" if left else ""
    if judged.empty:
        return [Measurement(None, 0, sf.headline() + tail, subject=f"{sf.attribute} by {column}")]
    return [Measurement(_f(r["value_after"]), int(r["n_after"]),
                        f"{sf.label} of '{sf.attribute}' within {r['segment']}: {r['n_privileged']} privileged, "
                        f"{r['n_unprivileged']} unprivileged rows{tail}", subject=f"{sf.attribute} in {r['segment']}")
            for r in judged.to_dict(orient="records")]


# ---------------------------------------------------------------------------------- data quality

def _data_quality(ev: EvalInput) -> Any:
    from dashboard.monitoring.data_quality import compute_data_quality

    return ev.cached(("data_quality", ev.window, ev.version),
                     lambda: compute_data_quality(ev.ctx, ev.model, ev.window, version=ev.version, examples=False))


def data_quality_monitor(monitor: str, over_reference: bool = False) -> Callable[[EvalInput, PolicySpec],
                                                                                 list[Measurement]]:
    """A monitor's share per column (``column = "..."`` picks one); ``over_reference``: minus the reference's
    share. No value on too few rows, a column without a reference, or a column missing from the logs."""
    def provider(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
        r = _data_quality(ev)
        wanted = spec.params.get("column")
        out = []
        for m in r.monitors:
            if m.monitor != monitor or (wanted and m.column != wanted):
                continue
            if m.value is None or m.status in ("too few rows", "not applicable", "missing column"):
                why = (f"too few rows ({m.rows:,} < {r.min_rows:,}: quality.min_rows)" if m.status == "too few rows"
                       else m.note or m.status)
                out.append(Measurement(None, m.rows, why, m.column))
                continue
            value = m.value - (m.reference_value or 0.0) if over_reference else m.value
            ref = "" if m.reference_value is None else f"; reference {m.reference_value:.2%}"
            out.append(Measurement(value, m.rows, f"{m.count:,} of {m.rows:,} rows ({m.value:.2%}){ref}"
                                   + (f"; {m.note}" if m.note else ""), m.column))
        if not out:
            out.append(Measurement(None, 0, f"no {monitor} monitor" + (f" for column '{wanted}'" if wanted else ""),
                                   str(wanted) if wanted else None))
        return out

    return provider


def expectation_success(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """1 when the configured expectation (``expectation = "<name>"``) succeeds by GX's rules, else 0. An
    unsupported or invalid one is an error (never a pass); no rows to consider measures nothing."""
    name = spec.params.get("expectation")
    found = [e for e in _data_quality(ev).expectations if e.name == name]
    if not found:
        raise VigilError(f"no expectation named '{name}' in [[models.{ev.model}.expectations]]")
    e = found[0]
    if e.status in ("unsupported", "invalid"):
        raise VigilError(e.note)
    if e.success is None or e.considered == 0:
        return [Measurement(None, e.considered, e.note or f"no values to judge ({e.element_count:,} rows, "
                                                          f"{e.missing_count:,} missing)", e.column)]
    detail = (f"{e.unexpected_count:,} unexpected of {e.considered:,} ({(e.unexpected_percent or 0):.2f}%)"
              if e.unexpected_count is not None else f"observed {e.observed_value}")
    return [Measurement(1.0 if e.success else 0.0, e.considered, detail, e.column)]


def data_quality_failures(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    r = _data_quality(ev)
    failed = r.failures
    return [Measurement(float(len(failed)), r.n_rows, ", ".join(failed[:10]) or "none")]


GX_SUITE = "gx_suite:"


def gx_suite(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """1 when the latest imported Great Expectations result of the suite (run within the window, for the
    version or the model) succeeded, else 0; no value when there is none."""
    from dashboard.governance import gx_results

    suite = spec.metric.removeprefix(GX_SUITE)
    found = gx_results.runs(ev.ctx, ev.model, ev.version, suite)
    found = found[(found["run_time"] >= ev.window.start) & (found["run_time"] < ev.window.end)]
    if found.empty:
        return [Measurement(None, 0, f"no result of GX suite '{suite}' run in {ev.window.label} was imported "
                                     f"(vigil quality import RESULT.json --model {ev.model})", suite)]
    r = found.iloc[0]
    rows = int(r["evaluated"]) if pd.notna(r["evaluated"]) else 0
    return [Measurement(1.0 if bool(r["success"]) else 0.0, rows,
                        f"{r['successful']} of {r['evaluated']} expectations succeeded; run {r['run_time']:%Y-%m-%d %H:%M} "
                        f"UTC, result {r['id']}", suite, window=f"GX run of {r['run_time']:%Y-%m-%d %H:%M}")]


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
                        "every section filled", window=f"card revision {card.revision}")]


def ingest_rejects(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """Files rejected at ingestion whose rejection falls in the window (wall-clock times)."""
    with ev.ctx.store.connect() as con:
        rej = con.execute("SELECT count(*) FROM ingest_rejects WHERE model = ? AND rejected_at >= ? "
                          "AND rejected_at < ?", [ev.model, ev.window.start, ev.window.end]).fetchone()
        ok = con.execute("SELECT count(*) FROM ingest_manifest WHERE model = ? AND ingested_at >= ? "
                         "AND ingested_at < ?", [ev.model, ev.window.start, ev.window.end]).fetchone()
    n_rej, n_ok = int(rej[0]) if rej else 0, int(ok[0]) if ok else 0
    return [Measurement(float(n_rej), n_rej + n_ok, f"{n_rej} rejected of {n_rej + n_ok} files")]


def table_problems(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """The ingest checks over the whole table (a lake has no ingest to reject bad rows): one measurement
    per check, so a policy names which failed."""
    from dashboard.monitoring.validation import table_findings

    rows, found = ev.cached(("table_findings",), lambda: table_findings(ev.ctx, ev.model))
    return [Measurement(float(f.count), rows, f"{f.meaning}" + ("" if f.ok else f"; {f.detail}"), subject=f.check)
            for f in found]


def open_high_findings(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    """Open high and critical findings recorded on the version (they block its promotion)."""
    from dashboard.governance import cards, findings

    version = ev.version or cards.champion_version(ev.ctx, ev.model)
    if version is None:
        return [Measurement(0.0, 0, "no version given and no champion: no finding can apply")]
    found = findings.blocking_open(ev.ctx, ev.model, version)
    detail = (f"version {version}: " + "; ".join(f"#{f.id} {f.severity}: {f.title[:80]}" for f in found)
              if found else f"version {version}: no open high or critical finding")
    return [Measurement(float(len(found)), len(found), detail, window="open findings")]


# ------------------------------------------------------------------- pre-deployment: gate evidence

def _gate_evidence(ev: EvalInput) -> dict[str, Any] | None:
    if ev.version is None:
        return None
    from dashboard.lifecycle import gate

    found: dict[str, Any] | None = ev.cached(("gate", ev.version),
                                             lambda: gate.load_evidence(ev.ctx, ev.model, str(ev.version)))
    return found


def _no_evidence(ev: EvalInput) -> list[Measurement]:
    if ev.version is None:
        return [Measurement(None, 0, "pre-deployment policies judge one version: give a version")]
    return [Measurement(None, 0, f"version {ev.version} has not been through the candidate gate (a retrain runs "
                                 "it; or 'Run the gate' on the Retraining page)")]


def _dataset_window(evidence: dict[str, Any], dataset: str) -> str:
    info = evidence.get("datasets", {}).get(dataset, {})
    if dataset == "evaluation":
        return f"out-of-time {info.get('range', 'n/a')}"
    return "holdout"


def gate_verdict(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    evidence = _gate_evidence(ev)
    if evidence is None:
        return _no_evidence(ev)
    failed = [p["name"] for p in evidence.get("policies", []) if p.get("passed") is False and p.get("blocking")]
    rows = sum(int(d.get("rows") or 0) for k, d in evidence.get("datasets", {}).items() if k != "training")
    detail = (f"against champion v{evidence.get('champion') or '-'}, evaluated {evidence.get('evaluated_at')}"
              + (f"; failed: {'; '.join(failed)}" if failed else "; every gate policy passed"))
    return [Measurement(1.0 if evidence.get("verdict") == "pass" else 0.0, rows, detail,
                        window=f"gate of {evidence.get('evaluated_at')}")]


def evaluation_overlap(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    evidence = _gate_evidence(ev)
    if evidence is None:
        return _no_evidence(ev)
    info = evidence.get("datasets", {}).get("evaluation", {})
    leaked = info.get("overlap_candidate")
    rows = int(info.get("rows") or 0)
    if "overlap_candidate" not in info:
        return [Measurement(None, rows, "the gate evidence predates the out-of-time split; run the gate again",
                            window=_dataset_window(evidence, "evaluation"))]
    if leaked is None:
        return [Measurement(None, rows, "the candidate's run did not list the production rows it trained on "
                                        "(training_data/prediction_ids.parquet), so disjointness is unproven",
                            window=_dataset_window(evidence, "evaluation"))]
    trained = evidence.get("datasets", {}).get("training", {}).get("production_rows")
    return [Measurement(float(leaked), rows, f"{leaked} of {rows} evaluation rows were among the {trained} production "
                                             "rows the candidate trained on", window=_dataset_window(evidence, "evaluation"))]


def evidence_metric(dataset: str, key: str) -> Callable[[EvalInput, PolicySpec], list[Measurement]]:
    """A candidate's metric on the gate's holdout or out-of-time evaluation set; fairness keys give one
    measurement per protected attribute. Evaluation rows not shown unseen by training measure nothing."""
    def provider(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
        evidence = _gate_evidence(ev)
        if evidence is None:
            return _no_evidence(ev)
        info = evidence.get("datasets", {}).get(dataset, {})
        rows, window = int(info.get("rows") or 0), _dataset_window(evidence, dataset)
        values = evidence.get("metrics", {}).get(dataset, {}).get("candidate", {})
        why = ""
        if dataset == "evaluation" and info.get("overlap_candidate") != 0:
            why = ("not judged: the evaluation rows overlap the candidate's training rows"
                   if info.get("overlap_candidate") else "not judged: the evaluation rows are not shown unseen by "
                   "training")
        elif not values:
            why = f"no {dataset} rows were scored ({info.get('source', 'none')})"
        attrs = ev.ctx.model(ev.model).protected_names if key in FAIRNESS_EVIDENCE else (None,)
        wanted = spec.params.get("attribute")
        out = []
        for attr in attrs:
            if wanted and attr != wanted:
                continue
            name = f"{key}_{attr}" if attr else key
            value = None if why else _f(values.get(name))
            detail = why or (f"candidate on {rows:,} rows from {info.get('source', '')}" if value is not None
                             else f"{name} is undefined on these rows")
            out.append(Measurement(value, rows, detail, attr, window=window))
        return out or [Measurement(None, rows, f"no protected attribute '{wanted}'", str(wanted), window=window)]

    return provider


def batch_latency_ratio(ev: EvalInput, spec: PolicySpec) -> list[Measurement]:
    evidence = _gate_evidence(ev)
    if evidence is None:
        return _no_evidence(ev)
    hold = evidence.get("metrics", {}).get("holdout", {})
    cand = _f(hold.get("candidate", {}).get("latency_ms_per_1k"))
    champ = _f(hold.get("champion", {}).get("latency_ms_per_1k"))
    rows = int(evidence.get("datasets", {}).get("holdout", {}).get("rows") or 0)
    if cand is None or not champ:
        return [Measurement(None, rows, "no champion to compare batch latency with", window="holdout")]
    return [Measurement(cand / champ, rows, f"{cand:.2f} vs champion {champ:.2f} ms per 1,000 rows", window="holdout")]


FAIRNESS_EVIDENCE: tuple[str, ...] = ("disparate_impact", "statistical_parity_difference",
                                      "equal_opportunity_difference", "average_odds_difference")


Provider = Callable[[EvalInput, PolicySpec], list[Measurement]]


def entry_for(table: dict[str, tuple[Provider, str, str, str]], metric: str) -> tuple[Provider, str, str, str] | None:
    """The provider of ``metric``; ``gx_suite:<name>`` names a suite after the prefix."""
    if metric.startswith(GX_SUITE) and len(metric) > len(GX_SUITE):
        return table[GX_SUITE]
    return table.get(metric) if metric != GX_SUITE else None


PRE, PROD = "pre_deployment", "production"


def providers() -> dict[str, tuple[Provider, str, str, str]]:
    """metric name -> (provider, description, time basis, phase). Time basis "data" = log time, "wall" =
    wall-clock; phase: the default of policies on the metric (production metrics judge traffic,
    pre-deployment metrics judge a version's gate evidence before it serves)."""
    table: dict[str, tuple[Provider, str, str, str]] = {
        "drift_share": (drift_share, "share of tested columns that drifted", "data", PROD),
        "drifted_features": (drifted_features, "number of drifted columns", "data", PROD),
        "feature_drift": (feature_drift, "1 if a column drifted by its method and threshold, else 0", "data", PROD),
        "latency_p95_ms": (latency_p95, "95th percentile latency in ms", "data", PROD),
        "latency_p95": (latency_p95, "95th percentile latency in ms", "data", PROD),
        "latency_p99_ms": (latency_p99, "99th percentile latency in ms", "data", PROD),
        "error_rate": (error_rate, "share of predictions with status error", "data", PROD),
        "accuracy": (accuracy, "accuracy on labelled predictions", "data", PROD),
        "actual_accuracy": (accuracy, "accuracy on labelled predictions", "data", PROD),
        "f1": (quality_field("f1"), "F1 on labelled predictions", "data", PROD),
        "roc_auc": (quality_field("roc_auc"), "ROC AUC on labelled predictions", "data", PROD),
        "estimated_accuracy": (estimated_accuracy, "confidence-based accuracy estimate (unlabelled rows)", "data",
                               PROD),
        "label_coverage": (label_coverage, "share of predictions with a label", "data", PROD),
        "cbpe_alerts": (cbpe_alerts, "buckets whose CBPE estimate is outside the reference thresholds", "data",
                        PROD),
        "reconstruction_error": (reconstruction_error, "PCA reconstruction error (multivariate drift)", "data",
                                 PROD),
        "multivariate_alert_share": (multivariate_alert_share, "share of buckets outside the reconstruction-error "
                                     "thresholds", "data", PROD),
        "domain_classifier_auroc": (domain_classifier_auroc, "highest domain-classifier ROC AUC of the window's "
                                    "buckets (multivariate drift, on a bounded sample)", "data", PROD),
        "domain_classifier_alert_share": (domain_classifier_alert_share, "share of buckets outside the domain "
                                          "classifier's ROC AUC thresholds (0.45..0.65)", "data", PROD),
        "segment_contribution": (segment_contribution, "largest contribution of one segment to a metric's change "
                                 "from the preceding window", "data", PROD),
        "segment_fairness": (segment_fairness, "a fairness metric of a protected attribute within each segment of "
                             "a column (one verdict per segment)", "data", PROD),
        "ingest_rejects": (ingest_rejects, "files rejected at ingestion", "wall", PROD),
        "table_problems": (table_problems, "rows (or columns) of the whole log table failing the ingest checks "
                           "(missing columns, wrong types, duplicate ids, scores outside [0, 1])", "wall", PROD),
        "open_high_findings": (open_high_findings, "open high or critical findings on the version", "wall", PRE),
        "missing_share": (data_quality_monitor("missing"), "share of rows with a missing value, per column", "data",
                          PROD),
        "missing_share_increase": (data_quality_monitor("missing", over_reference=True),
                                   "missing share minus the reference's, per column", "data", PROD),
        "unseen_share": (data_quality_monitor("unseen"), "share of categories the reference never has, per column",
                         "data", PROD),
        "out_of_range_share": (data_quality_monitor("out_of_range"), "share of values outside the reference range "
                               "(or quality.bounds), per column", "data", PROD),
        "type_violation_share": (data_quality_monitor("type_violations"), "share of ±inf in a numerical column",
                                 "data", PROD),
        "data_quality_failures": (data_quality_failures, "number of failing data-quality monitors and expectations",
                                  "data", PROD),
        "expectation": (expectation_success, "1 if a configured expectation succeeds (GX semantics), else 0", "data",
                        PROD),
        GX_SUITE: (gx_suite, "1 if the latest imported Great Expectations result of the suite succeeded, else 0",
                   "wall", "both"),
        "card_completeness": (card_completeness, "share of model card sections filled", "data", PRE),
        "gate_verdict": (gate_verdict, "1 if the candidate passed the candidate-vs-champion gate, else 0", "data", PRE),
        "evaluation_overlap": (evaluation_overlap, "out-of-time evaluation rows the candidate was trained on",
                               "data", PRE),
        "batch_latency_ratio": (batch_latency_ratio, "candidate's batch prediction latency / the champion's",
                                "data", PRE),
    }
    for key in ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy"):
        table[f"cbpe_{key}"] = (cbpe_metric(key), f"CBPE estimate of {key.replace('_', ' ')} (with its band)", "data",
                                PROD)
    from dashboard.monitoring.fairness_metrics import METRIC_KEYS

    for key in METRIC_KEYS:
        table[key] = (fairness_metric(key), f"fairness: {key.replace('_', ' ')} per protected attribute", "data",
                      PROD)
    for dataset, label in (("holdout", "the holdout"), ("evaluation", "the out-of-time evaluation set")):
        for key in ("accuracy", "f1", "roc_auc"):
            table[f"{dataset}_{key}"] = (evidence_metric(dataset, key), f"candidate's {key} on {label}", "data", PRE)
        for key in FAIRNESS_EVIDENCE[:2]:
            table[f"{dataset}_{key}"] = (evidence_metric(dataset, key),
                                         f"candidate's {key.replace('_', ' ')} on {label}, per protected attribute",
                                         "data", PRE)
    return table
