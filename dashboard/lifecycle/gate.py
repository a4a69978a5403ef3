"""Candidate-vs-champion gate: both versions scored on the same rows, a verdict per policy, evidence kept.

Why the same rows: a candidate's own holdout metrics (logged by its training run) are not comparable
with the champion's. The gate scores both on (1) one holdout (the model's configured ``retrain.holdout``
file, else the champion's logged training data, which is in-sample for the champion and so favours it:
a conservative default) and (2) recent production rows that have ground-truth labels. It computes
accuracy, F1, ROC AUC, AIF360 group-fairness metrics per protected attribute, and batch prediction
latency, then judges policies. The evidence lands on the candidate version as tags and the artifact
``gate/gate_evidence.json``; a failing candidate keeps its ``challenger`` alias and is never promoted.

The gate only returns and records a verdict; promotion (:mod:`dashboard.governance.promotion` and
:mod:`dashboard.governance.approvals`) consumes it, so nothing here imports governance.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectors.registry import RegistryNotFound
from connectors.schema import quote
from connectors.windows import parse_window
from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.settings import ModelConfig, ProtectedAttribute

LABEL = "label"
EVIDENCE_PATH = "gate"
EVIDENCE_FILE = "gate_evidence.json"
TAG_PREFIX = "vigil.gate."
HOLDOUT_MAX_ROWS = 5_000
PRODUCTION_MAX_ROWS = 20_000
LATENCY_REPEATS = 3


@dataclass(frozen=True)
class PolicyVerdict:
    """One gate policy: what was compared, on which rows, and whether the candidate passed."""

    name: str
    metric: str
    dataset: str
    candidate: float | None
    champion: float | None
    threshold: str
    passed: bool | None  # None: not evaluated (too few rows, no champion...)
    blocking: bool
    detail: str = ""


@dataclass
class GateResult:
    """Everything the gate found, JSON-serialisable as the evidence artifact."""

    model: str
    candidate: str
    champion: str | None
    evaluated_at: str
    datasets: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, dict[str, float | None]]]  # dataset -> version role -> metric -> value
    policies: list[PolicyVerdict] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "fail" if any(p.passed is False and p.blocking for p in self.policies) else "pass"

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "candidate": self.candidate, "champion": self.champion,
                "evaluated_at": self.evaluated_at, "verdict": self.verdict, "datasets": self.datasets,
                "metrics": self.metrics, "policies": [asdict(p) for p in self.policies]}


# ------------------------------------------------------------------------------------------ fairness

def group_of(values: pd.Series, attr: ProtectedAttribute) -> np.ndarray:
    """True where the row belongs to the privileged group (binned numeric attributes use their buckets)."""
    if attr.is_binned:
        labels = list(attr.bucket_labels())
        buckets = pd.cut(pd.to_numeric(values, errors="coerce"), bins=list(attr.bins), labels=labels, right=False)
        return np.asarray(buckets.astype(str).isin(attr.privileged))
    return np.asarray(values.astype(str).isin(attr.privileged))


def group_counts(y_true: np.ndarray, y_pred: np.ndarray, privileged: np.ndarray) -> dict[str, dict[str, int]]:
    """Confusion counts (favourable = positive) for the privileged and unprivileged groups."""
    out: dict[str, dict[str, int]] = {}
    for name, mask in (("privileged", privileged), ("unprivileged", ~privileged)):
        t, p = y_true[mask], y_pred[mask]
        out[name] = {"tp": int(np.sum(t & p)), "fp": int(np.sum(~t & p)), "tn": int(np.sum(~t & ~p)),
                     "fn": int(np.sum(t & ~p))}
    return out


def fairness_from_counts(counts: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """AIF360's ClassificationMetric values (unprivileged vs privileged) via :mod:`dashboard.monitoring.fairness_metrics`,
    the same formulas as the Fairness page; NaN where a metric is undefined."""
    from dashboard.monitoring.fairness_metrics import Counts, metric_rates

    def as_counts(c: Mapping[str, int]) -> Counts:
        n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
        return Counts(n=n, w_n=float(n), w_pred_pos=float(c["tp"] + c["fp"]), n_pred_pos=c["tp"] + c["fp"],
                      n_labelled=n, w_labelled=float(n), w_tp=float(c["tp"]), w_fp=float(c["fp"]),
                      w_tn=float(c["tn"]), w_fn=float(c["fn"]), tp=c["tp"], fp=c["fp"], tn=c["tn"], fn=c["fn"])

    rates = metric_rates(as_counts(counts["unprivileged"]), as_counts(counts["privileged"]))
    keys = ("disparate_impact", "statistical_parity_difference", "equal_opportunity_difference",
            "average_odds_difference")
    return {k: math.nan if rates[k].value is None else float(rates[k].value) for k in keys}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ scoring

@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


def load_model(ctx: Context, model: str, version: str) -> Any:
    """The version's scikit-learn model (``predict_proba`` is needed for ROC AUC)."""
    import mlflow

    uri = ctx.registry.client.get_model_version_download_uri(model, str(version))
    with _tracking(ctx.settings.mlflow_tracking_uri):
        try:
            return mlflow.sklearn.load_model(uri)
        except Exception as exc:  # not an sklearn flavour: fall back to pyfunc (labels only)
            try:
                return mlflow.pyfunc.load_model(uri)
            except Exception:
                raise VigilError(f"cannot load version {version} of '{model}' from {uri}: {exc}") from None


def input_columns(estimator: Any, cfg: ModelConfig) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    schema = getattr(getattr(estimator, "metadata", None), "get_input_schema", lambda: None)()
    if schema is not None and schema.has_input_names():
        return [str(c) for c in schema.input_names()]
    return list(cfg.features)


def evaluate(estimator: Any, frame: pd.DataFrame, cfg: ModelConfig) -> dict[str, float | None]:
    """Accuracy, F1 and ROC AUC of the favourable class, fairness per protected attribute, batch latency."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    cols = input_columns(estimator, cfg)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise VigilError(f"the evaluation rows lack the model's input columns {missing}")
    x = frame[cols]
    y = frame[LABEL].astype(str).to_numpy()
    proba: np.ndarray | None = None
    timings: list[float] = []
    for _ in range(LATENCY_REPEATS):
        t0 = time.perf_counter()
        if hasattr(estimator, "predict_proba"):
            proba_all = estimator.predict_proba(x)
            proba = proba_all[:, [str(c) for c in estimator.classes_].index(cfg.favourable)]
            pred = np.asarray(estimator.classes_)[proba_all.argmax(axis=1)].astype(str)
        else:
            pred = np.asarray(estimator.predict(x)).astype(str).ravel()
        timings.append(time.perf_counter() - t0)
    fav_true, fav_pred = y == cfg.favourable, pred == cfg.favourable
    out: dict[str, float | None] = {
        "rows": float(len(frame)),
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(fav_true, fav_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(fav_true, proba)) if proba is not None and len(set(fav_true)) == 2 else None,
        "latency_ms_per_1k": 1000.0 * statistics.median(timings) / max(len(frame), 1) * 1000.0,
    }
    for attr in cfg.protected:
        if attr.name not in frame.columns:
            continue
        priv = group_of(frame[attr.name], attr)
        for k, v in fairness_from_counts(group_counts(fav_true, fav_pred, priv)).items():
            out[f"{k}_{attr.name}"] = None if math.isnan(v) else float(v)
    return out


# ------------------------------------------------------------------------------------------ data

def holdout_frame(ctx: Context, model: str) -> tuple[pd.DataFrame, str]:
    """The shared holdout: the configured file, else a sample of the champion's logged training data."""
    cfg = ctx.model(model)
    path = cfg.retrain.holdout
    if path:
        p = Path(path)
        if not p.is_absolute() and ctx.settings.config_path is not None:
            p = Path(ctx.settings.config_path).parent / p
        if not p.is_file():
            raise VigilError(f"retrain.holdout {p} does not exist; fix [models.{model}.retrain] holdout")
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        source = f"file {p}"
    else:
        try:
            df = ctx.registry.load_training_data(model, "champion")
        except RegistryNotFound as exc:
            raise VigilError(f"no holdout: set [models.{model}.retrain] holdout, or give '{model}' a champion "
                             f"with logged training data ({exc})") from None
        source = "the champion's logged training data (in-sample for the champion: a conservative comparison)"
    if LABEL not in df.columns:
        raise VigilError(f"the holdout ({source}) has no '{LABEL}' column")
    if len(df) > HOLDOUT_MAX_ROWS:
        df = df.sample(HOLDOUT_MAX_ROWS, random_state=0)
    return df.reset_index(drop=True), source


def production_frame(ctx: Context, model: str, window: str) -> tuple[pd.DataFrame, str]:
    """Recent labelled production rows: ``window`` (e.g. "7d") ending at the latest logged prediction."""
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    if not ctx.store.has_model_table(schema):
        return pd.DataFrame(), "no prediction logs"
    latest = ctx.store.query_df(f"SELECT max(ts) AS m FROM {schema.table}")["m"].iloc[0]
    if pd.isna(latest):
        return pd.DataFrame(), "no prediction logs"
    win = parse_window(window, now=pd.Timestamp(latest).to_pydatetime() + pd.Timedelta(seconds=1))
    cols = list(dict.fromkeys([*cfg.features, *cfg.protected_names]))
    sql = (f"SELECT {', '.join('t.' + quote(c) for c in cols)}, l.label AS {LABEL} FROM {schema.table} t "
           "JOIN current_labels l ON l.prediction_id = t.prediction_id AND l.model_name = ? "
           "WHERE t.status = 'ok' AND t.ts >= ? AND t.ts < ? ORDER BY hash(t.prediction_id) LIMIT ?")
    df = ctx.store.query_df(sql, [model, win.start, win.end, PRODUCTION_MAX_ROWS])
    return df, f"labelled production rows {win.start:%Y-%m-%d %H:%M}..{win.end:%Y-%m-%d %H:%M} UTC"


# ------------------------------------------------------------------------------------------ policies

def _cmp(name: str, metric: str, dataset: str, cand: float | None, champ: float | None, drop: float,
         blocking: bool) -> PolicyVerdict:
    if cand is None or champ is None:
        return PolicyVerdict(name, metric, dataset, cand, champ, f">= champion - {drop:g}", None, blocking,
                             "not evaluated: a value is missing")
    ok = cand >= champ - drop
    return PolicyVerdict(name, metric, dataset, cand, champ, f">= champion - {drop:g}", ok, blocking,
                         f"{cand:.4f} vs champion {champ:.4f}")


def judge(cfg: ModelConfig, metrics: Mapping[str, Mapping[str, Mapping[str, float | None]]],
          datasets: Mapping[str, Mapping[str, Any]]) -> list[PolicyVerdict]:
    """The gate's policies over the computed metrics (pure: testable on plain dicts)."""
    spec, th = cfg.retrain, cfg.thresholds
    out: list[PolicyVerdict] = []
    for ds in ("holdout", "production"):
        if ds not in metrics:
            continue
        cand, champ = metrics[ds].get("candidate", {}), metrics[ds].get("champion", {})
        enough = ds == "holdout" or datasets[ds].get("rows", 0) >= spec.min_labels
        if not enough:
            out.append(PolicyVerdict(f"{ds}: enough labelled rows", "rows", ds, datasets[ds].get("rows", 0), None,
                                     f">= {spec.min_labels}", None, False,
                                     "too few labelled production rows to compare; judged on the holdout only"))
            continue
        has_champ = bool(champ)
        for metric, blocking in (("accuracy", True), ("roc_auc", True), ("f1", False)):
            if has_champ:
                out.append(_cmp(f"{ds}: {metric} not worse than champion", metric, ds, cand.get(metric),
                                champ.get(metric), spec.max_metric_drop, blocking))
        acc = cand.get("accuracy")
        out.append(PolicyVerdict(f"{ds}: accuracy >= {th.min_accuracy:g}", "accuracy", ds, acc, champ.get("accuracy"),
                                 f">= {th.min_accuracy:g}", None if acc is None else acc >= th.min_accuracy, True))
        low, high = spec.disparate_impact_outside or (th.disparate_impact_low, th.disparate_impact_high)
        for attr in cfg.protected:
            di = cand.get(f"disparate_impact_{attr.name}")
            out.append(PolicyVerdict(f"{ds}: disparate impact ({attr.name}) within [{low:g}, {high:g}]",
                                     f"disparate_impact_{attr.name}", ds, di, champ.get(f"disparate_impact_{attr.name}"),
                                     f"within [{low:g}, {high:g}]", None if di is None else low <= di <= high, True))
            spd = cand.get(f"statistical_parity_difference_{attr.name}")
            out.append(PolicyVerdict(f"{ds}: |statistical parity difference| ({attr.name}) <= {th.parity_difference:g}",
                                     f"statistical_parity_difference_{attr.name}", ds, spd,
                                     champ.get(f"statistical_parity_difference_{attr.name}"),
                                     f"|x| <= {th.parity_difference:g}",
                                     None if spd is None else abs(spd) <= th.parity_difference, False))
    hold = metrics.get("holdout", {})
    lat_c, lat_p = hold.get("candidate", {}).get("latency_ms_per_1k"), hold.get("champion", {}).get("latency_ms_per_1k")
    if lat_c is not None and lat_p:
        out.append(PolicyVerdict(f"holdout: batch latency <= {spec.max_latency_ratio:g} x champion",
                                 "latency_ms_per_1k", "holdout", lat_c, lat_p, f"<= {spec.max_latency_ratio:g} x champion",
                                 lat_c <= spec.max_latency_ratio * lat_p, False,
                                 f"{lat_c:.2f} vs {lat_p:.2f} ms per 1,000 rows"))
    return out


# ------------------------------------------------------------------------------------------ the gate

def evaluate_candidate(ctx: Context, model: str, version: str,
                       progress: Callable[[str], None] | None = None) -> GateResult:
    """Score the candidate and the champion on the same rows and judge the policies (records nothing)."""
    say = progress or (lambda _m: None)
    cfg = ctx.model(model)
    try:
        champion: str | None = ctx.registry.version_by_alias(model, "champion").version
    except RegistryNotFound:
        champion = None
    if champion == str(version):
        raise VigilError(f"version {version} is already the champion of '{model}'; nothing to compare")
    roles = {"candidate": str(version), **({"champion": champion} if champion else {})}
    estimators = {role: load_model(ctx, model, v) for role, v in roles.items()}
    frames: dict[str, tuple[pd.DataFrame, str]] = {}
    say("loading the holdout")
    frames["holdout"] = holdout_frame(ctx, model)
    prod, prod_source = production_frame(ctx, model, cfg.retrain.window)
    frames["production"] = (prod, prod_source)
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    for ds, (frame, source) in frames.items():
        datasets[ds] = {"rows": len(frame), "source": source}
        if len(frame) == 0:
            continue
        say(f"scoring {len(frame):,} {ds} rows with {', '.join(f'{r} v{v}' for r, v in roles.items())}")
        metrics[ds] = {role: evaluate(est, frame, cfg) for role, est in estimators.items()}
    result = GateResult(model=model, candidate=str(version), champion=champion,
                        evaluated_at=datetime.now(UTC).isoformat(timespec="seconds"), datasets=datasets,
                        metrics=metrics)
    result.policies = judge(cfg, metrics, datasets)
    return result


def record_evidence(ctx: Context, result: GateResult) -> None:
    """Tags (verdict, champion compared, failed policies) and the JSON artifact on the candidate version."""
    reg, model, version = ctx.registry, result.model, result.candidate
    failed = [p.name for p in result.policies if p.passed is False and p.blocking]
    tags = {"verdict": result.verdict, "champion": result.champion or "none", "evaluated_at": result.evaluated_at,
            "failed": "; ".join(failed)[:4000] or "none", "evidence": f"{EVIDENCE_PATH}/{EVIDENCE_FILE}"}
    for role in ("candidate", "champion"):
        for metric in ("accuracy", "roc_auc"):
            v = result.metrics.get("holdout", {}).get(role, {}).get(metric)
            if v is not None:
                tags[f"holdout.{role}.{metric}"] = f"{v:.4f}"
    with tempfile.TemporaryDirectory(prefix="vigil-gate-") as tmp:
        path = Path(tmp) / EVIDENCE_FILE
        path.write_text(json.dumps(_jsonable(result.to_json()), indent=2), encoding="utf-8")
        reg.log_artifact_to_version(model, version, path, EVIDENCE_PATH)
    for key, text in tags.items():
        reg.set_version_tag(model, version, TAG_PREFIX + key, text)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def run_gate(ctx: Context, model: str, version: str, progress: Callable[[str], None] | None = None) -> GateResult:
    result = evaluate_candidate(ctx, model, version, progress)
    record_evidence(ctx, result)
    return result


def load_evidence(ctx: Context, model: str, version: str) -> dict[str, Any] | None:
    """The gate evidence stored on a version, or None when it was never evaluated."""
    v = ctx.registry.version(model, version)
    if TAG_PREFIX + "verdict" not in v.tags or not v.run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="vigil-gate-") as tmp:
        path = ctx.registry.download_artifact(v.run_id, f"{EVIDENCE_PATH}/{EVIDENCE_FILE}", tmp)
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def comparison_frame(evidence: Mapping[str, Any]) -> pd.DataFrame:
    """Long table: dataset, metric, champion, candidate, delta (for the page's table and chart)."""
    rows = []
    for ds, by_role in evidence.get("metrics", {}).items():
        cand, champ = by_role.get("candidate", {}), by_role.get("champion", {})
        for metric in cand:
            if metric == "rows":
                continue
            c, p = cand.get(metric), champ.get(metric)
            rows.append({"dataset": ds, "metric": metric, "champion": p, "candidate": c,
                         "delta": None if c is None or p is None else c - p})
    return pd.DataFrame(rows, columns=["dataset", "metric", "champion", "candidate", "delta"])


def policies_frame(evidence: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"policy": p["name"], "result": {True: "pass", False: "fail", None: "not evaluated"}[p["passed"]],
             "severity": "blocking" if p["blocking"] else "warning", "candidate": p["candidate"],
             "champion": p["champion"], "threshold": p["threshold"], "detail": p["detail"]}
            for p in evidence.get("policies", [])]
    return pd.DataFrame(rows, columns=["policy", "result", "severity", "candidate", "champion", "threshold", "detail"])


# ------------------------------------------------------------------------------------------ on request

def run_gate_as(ctx: Context, actor: Actor, model: str, version: str,
                progress: Callable[[str], None] | None = None) -> GateResult:
    """Evaluate and record the gate on request (a version registered outside a Vigil job)."""
    require(actor, "retrain.start")
    result = run_gate(ctx, model, version, progress)
    trail.record(ctx.store, actor, "gate.run", model, {"version": version, "verdict": result.verdict})
    return result


@dataclass(frozen=True)
class CandidateInfo:
    """A version that could replace the champion, with its gate and promotion state (from its tags)."""

    version: str
    aliases: tuple[str, ...]
    verdict: str | None
    evaluated_at: str | None
    promotion: str | None
    requested_by: str | None


def candidates(ctx: Context, model: str) -> tuple[str | None, list[CandidateInfo]]:
    """The champion's version and every other version, newest first (challenger first)."""
    versions = ctx.registry.versions(model)
    champion = next((v.version for v in versions if "champion" in v.aliases), None)
    out = [CandidateInfo(v.version, v.aliases, v.tags.get(TAG_PREFIX + "verdict"),
                         v.tags.get(TAG_PREFIX + "evaluated_at"), v.tags.get("vigil.promotion.status"),
                         v.tags.get("vigil.promotion.requested_by"))
           for v in versions if v.version != champion]
    out.sort(key=lambda c: ("challenger" not in c.aliases, -int(c.version) if c.version.isdigit() else 0))
    return champion, out
