"""Candidate-vs-champion gate: both versions scored on the same rows, a verdict per policy, evidence kept.

Why the same rows: a candidate's own holdout metrics (logged by its training run) are not comparable
with the champion's. The gate scores both on (1) one holdout (the model's configured ``retrain.holdout``
file, else the champion's logged training data, which is in-sample for the champion and so favours it:
a conservative default) and (2) the out-of-time evaluation set: labelled production rows logged after
the cut-off of :mod:`dashboard.lifecycle.evaluation_split`, which training never received. The
candidate's run lists the production rows it trained on; the gate proves the evaluation rows disjoint
from them (by ``prediction_id``) before it judges anything on those rows. It computes
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
from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.lifecycle import evaluation_split
from dashboard.lifecycle.evaluation_split import EvaluationSplit
from dashboard.settings import ModelConfig, ProtectedAttribute

LABEL = "label"
EVIDENCE_PATH = "gate"
EVIDENCE_FILE = "gate_evidence.json"
TAG_PREFIX = "vigil.gate."
DATA_TAG_PREFIX = "vigil.data."  # rows and digests of the sets a version was trained and judged on
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


def resolve_split(ctx: Context, model: str, version: str,
                  split: EvaluationSplit | None = None) -> EvaluationSplit | None:
    """The split to judge on: the one given (a Vigil job's), else the cut-off the candidate's run recorded
    (param ``labels_before``), else the split as of now."""
    if split is not None:
        return split
    now = evaluation_split.plan(ctx, model)
    v = ctx.registry.version(model, version)
    recorded = ctx.registry.run(v.run_id).params.get("labels_before") if v.run_id else None
    if recorded and recorded != "none":
        try:
            before = datetime.fromisoformat(recorded).replace(tzinfo=None)
        except ValueError:
            return now
        end = now.evaluation_end if now is not None else before
        return EvaluationSplit(before, max(end, before), "the cut-off recorded by the candidate's training run")
    return now


def evaluation_frame(ctx: Context, model: str, split: EvaluationSplit | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The out-of-time evaluation rows (a stable sample of at most PRODUCTION_MAX_ROWS) and their description."""
    cfg = ctx.model(model)
    if split is None:
        return pd.DataFrame(), {"rows": 0, "source": "no labelled production rows yet"}
    cols = [*cfg.features, *cfg.protected_names]
    frame = evaluation_split.labelled_rows(ctx, model, cols, since=split.labels_before, until=split.evaluation_end)
    total = len(frame)
    if total > PRODUCTION_MAX_ROWS:
        frame = frame.head(PRODUCTION_MAX_ROWS)
    info = {"rows": len(frame), "available_rows": total, "range": split.label, "rule": split.rule,
            "labels_before": split.labels_before.isoformat(),
            "source": f"labelled production rows {split.label} ({split.rule}; never given to training)"
                      + (f", a stable sample of {len(frame):,} of {total:,}" if total > len(frame) else ""),
            "digest": evaluation_split.ids_digest(frame["prediction_id"]) if len(frame) else None}
    return frame.reset_index(drop=True), info


def training_ids(ctx: Context, model: str, version: str) -> set[str] | None:
    """The production rows a version's run trained on (its TRAINING_IDS_PATH artifact); None when the run
    did not list them, so disjointness cannot be shown."""
    try:
        ids = ctx.registry.load_training_data(model, version, path=evaluation_split.TRAINING_IDS_PATH)
    except RegistryNotFound:
        return None
    if "prediction_id" not in ids.columns:
        return None
    return {str(i) for i in ids["prediction_id"].dropna()}


def training_info(ctx: Context, model: str, version: str, ids: set[str] | None) -> dict[str, Any]:
    """What the candidate was trained on, as its run recorded it (rows, dataset digest, cut-off)."""
    v = ctx.registry.version(model, version)
    info: dict[str, Any] = {"source": "the candidate's training run"}
    if v.run_id:
        lineage = ctx.registry.lineage(model, version)
        params = ctx.registry.run(v.run_id).params
        info.update({"rows": int(params["training_rows"]) if params.get("training_rows", "").isdigit() else None,
                     "digest": lineage.training_digest, "labels_before": params.get("labels_before")})
    info["production_rows"] = None if ids is None else len(ids)
    info["production_ids_digest"] = None if ids is None else evaluation_split.ids_digest(ids)
    return info


def overlap(ids: set[str] | None, frame: pd.DataFrame) -> int | None:
    """Evaluation rows that were training rows (None: the training rows are not known)."""
    if frame.empty:
        return 0  # nothing was judged on evaluation rows, so nothing can have leaked into it
    if ids is None:
        return None
    return int(frame["prediction_id"].astype(str).isin(ids).sum())


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
    leaked = datasets.get("evaluation", {}).get("overlap_candidate")
    if "evaluation" in datasets and datasets["evaluation"].get("rows", 0):
        out.append(PolicyVerdict(
            "evaluation: no row was a training row of the candidate", "evaluation_overlap", "evaluation",
            None if leaked is None else float(leaked), None, "== 0", None if leaked is None else leaked == 0, True,
            "the candidate's run did not list the production rows it trained on "
            f"({evaluation_split.TRAINING_IDS_PATH}), so the evaluation rows cannot be shown unseen; "
            "judged on the holdout only" if leaked is None else
            f"{leaked} of {datasets['evaluation']['rows']} evaluation rows were trained on" if leaked else
            f"disjoint by prediction_id from the {datasets.get('training', {}).get('production_rows', 0):,} "
            "production rows the candidate trained on"))
    for ds in ("holdout", "evaluation"):
        if ds not in metrics:
            continue
        cand, champ = metrics[ds].get("candidate", {}), metrics[ds].get("champion", {})
        if ds == "evaluation" and leaked != 0:
            continue  # rows that may have been trained on prove nothing
        enough = ds == "holdout" or datasets[ds].get("rows", 0) >= spec.min_labels
        if not enough:
            out.append(PolicyVerdict(f"{ds}: enough labelled rows", "rows", ds, datasets[ds].get("rows", 0), None,
                                     f">= {spec.min_labels}", None, False,
                                     "too few labelled out-of-time rows to compare; judged on the holdout only"))
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

def evaluate_candidate(ctx: Context, model: str, version: str, split: EvaluationSplit | None = None,
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
    say("loading the holdout")
    holdout, holdout_source = holdout_frame(ctx, model)
    split = resolve_split(ctx, model, str(version), split)
    evaluation, eval_info = evaluation_frame(ctx, model, split)
    cand_ids = training_ids(ctx, model, str(version))
    eval_info["overlap_candidate"] = overlap(cand_ids, evaluation)
    if champion:
        eval_info["overlap_champion"] = overlap(training_ids(ctx, model, champion), evaluation)
    datasets: dict[str, dict[str, Any]] = {
        "training": training_info(ctx, model, str(version), cand_ids),
        "holdout": {"rows": len(holdout), "source": holdout_source, "digest": evaluation_split.frame_digest(holdout)},
        "evaluation": eval_info,
    }
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for ds, frame in (("holdout", holdout), ("evaluation", evaluation)):
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
    for ds in ("holdout", "evaluation"):
        for role in ("candidate", "champion"):
            for metric in ("accuracy", "roc_auc"):
                v = result.metrics.get(ds, {}).get(role, {}).get(metric)
                if v is not None:
                    tags[f"{ds}.{role}.{metric}"] = f"{v:.4f}"
    with tempfile.TemporaryDirectory(prefix="vigil-gate-") as tmp:
        path = Path(tmp) / EVIDENCE_FILE
        path.write_text(json.dumps(_jsonable(result.to_json()), indent=2), encoding="utf-8")
        reg.log_artifact_to_version(model, version, path, EVIDENCE_PATH)
    for key, text in tags.items():
        reg.set_version_tag(model, version, TAG_PREFIX + key, text)
    for key, text in data_tags(result.datasets).items():
        reg.set_version_tag(model, version, DATA_TAG_PREFIX + key.removeprefix("data."), text)


def data_tags(datasets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``data.*`` tags: rows and digests of the training, holdout and evaluation sets, and disjointness."""
    tags: dict[str, str] = {}
    for ds in ("training", "holdout", "evaluation"):
        info = datasets.get(ds, {})
        for key in ("rows", "digest", "range", "production_rows", "production_ids_digest"):
            if info.get(key) is not None:
                tags[f"data.{ds}.{key}"] = str(info[key])[:500]
    leaked = datasets.get("evaluation", {}).get("overlap_candidate")
    tags["data.disjoint"] = "unproven" if leaked is None else "true" if leaked == 0 else f"false ({leaked} rows)"
    return tags


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def run_gate(ctx: Context, model: str, version: str, progress: Callable[[str], None] | None = None,
             split: EvaluationSplit | None = None) -> GateResult:
    result = evaluate_candidate(ctx, model, version, split, progress)
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


def datasets_frame(evidence: Mapping[str, Any]) -> pd.DataFrame:
    """One row per data set of the evidence: what it is, how many rows, which time range, its digest."""
    rows = []
    for ds, info in evidence.get("datasets", {}).items():
        before = info.get("labels_before")
        span = info.get("range") or (f"production rows before {before}" if before and before != "none" else "")
        rows.append({"dataset": ds, "rows": info.get("rows"), "range": span, "source": info.get("source", ""),
                     "digest": info.get("digest") or info.get("production_ids_digest") or ""})
    return pd.DataFrame(rows, columns=["dataset", "rows", "range", "source", "digest"])


def disjointness_text(evidence: Mapping[str, Any]) -> str:
    """What the evidence says about evaluation rows the candidate may have trained on."""
    info = evidence.get("datasets", {}).get("evaluation", {})
    if "overlap_candidate" not in info:
        return "This evidence predates the out-of-time split: run the gate again to judge on unseen rows."
    leaked = info.get("overlap_candidate")
    if leaked is None:
        return ("The candidate's run did not list the production rows it trained on, so the evaluation rows are "
                "not shown unseen; the gate judged on the holdout only.")
    if leaked:
        return f"{leaked} evaluation rows were training rows of the candidate: the evaluation set was not judged."
    return ("No evaluation row was a training row of the candidate (checked by prediction_id): the out-of-time "
            "comparison is on rows it never saw.")


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
