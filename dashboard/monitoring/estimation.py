"""Estimated performance with confidence: NannyML's CBPE for binary models, per window and per time bucket.

Why: ground truth arrives late. CBPE turns calibrated probabilities into expected confusion counts, so
ROC AUC, F1, precision, recall, specificity and accuracy can be estimated on unlabelled traffic; its
sampling error says how far a bucket of that size may wander by chance, and thresholds from the
reference's own buckets say when a change is more than that.

NannyML 0.13's ``CBPE`` is the specification (read from its installed source, and cross-checked in
tests/test_estimation.py):

* **reference** = the labelled, scored, successful predictions of a reference window of the logs (CBPE
  needs labels and probabilities, which training data does not carry), in the order (ts, score, ...);
* **calibration**: NannyML's ``needs_calibration`` (10 stratified shuffle splits, 10% test, seed 42;
  equal-count ECE in 10 bins before and after an isotonic fit): when calibration lowers the ECE, an
  ``IsotonicRegression(out_of_bounds="clip")`` fitted on the whole reference maps every score; its knots
  go to the engine, which interpolates per row (``numpy.interp``);
* **estimates** per bucket (NannyML's chunks by period): expected TP = Σ ŷ·c, FP = Σ ŷ(1−c), FN =
  Σ (1−ŷ)c, TN = Σ (1−ŷ)(1−c); precision, recall, specificity, F1, accuracy from those (0 for an empty
  denominator); ROC AUC from NannyML's rounded cumulative curve ordered by the uncalibrated score;
* **sampling error** = σ_ref / √(n · f_ref) from NannyML's reference components; the band is
  estimate ± 3 SE clipped to [0, 1];
* **thresholds** = mean ± 3 σ (population) of the *realised* metric over the reference's buckets,
  clipped to [0, 1]; an estimate outside them alerts;
* **realised** metrics on labelled rows per bucket (NaN as NannyML: a single class in the labels, or in
  the predictions for precision/recall/F1).

Heavy work runs in the engine (:mod:`connectors.queries.estimation`); Python holds only the reference
(bounded by :data:`MAX_REFERENCE_ROWS`) and one row per bucket.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors import kept_results
from connectors.logstore import LogStoreError
from connectors.queries import estimation as q
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError

__all__ = ["BAND", "MAX_REFERENCE_ROWS", "METRICS", "Calibration", "EstimationReport", "compute_estimation",
           "default_reference", "estimate_from_sums", "fit_calibration", "needs_calibration", "realised_metrics",
           "sampling_components", "thresholds"]

METRICS: tuple[str, ...] = ("roc_auc", "f1", "precision", "recall", "specificity", "accuracy")
BAND = 3.0  # NannyML's SAMPLING_ERROR_RANGE and its StandardDeviationThreshold multiplier
MAX_REFERENCE_ROWS = 2_000_000  # labelled reference rows held in memory (about 50 MB)
REFERENCE_DAYS = 14  # thresholds rest on 14 reference buckets of a day (7 leave them wide)


# ------------------------------------------------------------------------------------ calibration

def _ece(y_true: np.ndarray, proba: np.ndarray, edges: list[tuple[int, int]]) -> float:
    """NannyML's expected calibration error: equal-count bins over the sorted probabilities."""
    order = proba.argsort()
    p, t = proba[order], y_true[order]
    return float(np.sum([(r - left) / len(p) * abs(np.mean(p[left:r]) - np.mean(t[left:r])) for left, r in edges]))


def _bin_edges(n: int, bins: int = 10) -> list[tuple[int, int]]:
    if n <= 2 * bins:
        bins = n // 2
        if bins < 2:
            raise VigilError(f"calibration needs at least 4 labelled reference rows, the reference has {n}")
    width = n // bins
    e = np.asarray(range(0, n + 1, width))
    e[-1] = n
    return list(zip(e[:-1].tolist(), e[1:].tolist(), strict=True))


def _isotonic() -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", increasing=True)


def needs_calibration(y_true: np.ndarray, proba: np.ndarray, splits: int = 10) -> bool:
    """NannyML's test: does an isotonic fit lower the ECE on held-out tenths of the reference?"""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    if len(np.unique(y_true)) == 1 or roc_auc_score(y_true, proba) > 0.999:
        return False
    tests_t, tests_p, tests_c = [], [], []
    for train, test in StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=42).split(proba, y_true):
        reg = _isotonic().fit(proba[train], y_true[train])
        tests_t.append(y_true[test])
        tests_p.append(proba[test])
        tests_c.append(reg.predict(proba[test]))
    t, p, c = np.concatenate(tests_t), np.concatenate(tests_p), np.concatenate(tests_c)
    edges = _bin_edges(len(p))
    return _ece(t, p, edges) > _ece(t, c, edges)


@dataclass(frozen=True)
class Calibration:
    """The calibration map learnt on the reference: knots (x, y) of a piecewise-linear isotonic fit, or
    none when NannyML's test says calibration would not help (or ``mode`` turned it off)."""

    applied: bool
    mode: str  # "auto", "always" or "never"
    knots: pd.DataFrame | None = None  # x, y

    @property
    def text(self) -> str:
        if not self.applied:
            return "scores used as logged (calibration would not lower the reference's ECE)" \
                if self.mode == "auto" else "scores used as logged (calibration off)"
        n = 0 if self.knots is None else len(self.knots)
        return f"isotonic calibration fitted on the reference ({n} knots)"


def fit_calibration(y_true: np.ndarray, proba: np.ndarray, mode: str = "auto") -> Calibration:
    """Decide (``auto`` = NannyML's test) and fit the isotonic map on the whole reference."""
    if mode not in ("auto", "always", "never"):
        raise VigilError(f"calibration must be auto, always or never, got {mode!r}")
    apply = mode == "always" or (mode == "auto" and needs_calibration(y_true, proba))
    if not apply:
        return Calibration(False, mode)
    reg = _isotonic().fit(proba, y_true)
    knots = pd.DataFrame({"x": np.asarray(reg.X_thresholds_, float), "y": np.asarray(reg.y_thresholds_, float)})
    return Calibration(True, mode, knots)


# --------------------------------------------------------------------------------- sampling error

def _std01(p: float) -> float:
    """Population standard deviation of a 0/1 sample whose share of ones is ``p``."""
    return math.sqrt(max(p * (1.0 - p), 0.0))


def _auc_component(y_true: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """NannyML's ROC AUC sampling-error component (Mann-Whitney terms of the positives, as it ranks them)."""
    t, p = y_true.astype(int), proba.astype(float)
    if np.mean(t) > 0.5:
        t, p = np.abs(t - 1), 1 - p
    order = np.argsort(p)
    t = t[order]
    ranks = np.unique(t * np.arange(len(t)))[1:]
    ser = ranks - np.arange(len(ranks))
    n_pos = float(np.sum(t))
    n_neg = len(t) - n_pos
    return float(np.std(ser / n_neg)), n_pos / len(t)


def sampling_components(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per metric: (σ, fraction) of NannyML's sampling error, from the reference (SE = σ / √(n·fraction))."""
    n = len(y_true)
    tp = float(np.sum((y_true == 1) & (y_pred == 1)))
    fp = float(np.sum((y_true == 0) & (y_pred == 1)))
    fn = float(np.sum((y_true == 1) & (y_pred == 0)))
    tn = float(np.sum((y_true == 0) & (y_pred == 0)))
    out: dict[str, tuple[float, float]] = {}
    m = tp + fn + fp
    out["f1"] = ((m / ((fn + fp) * 0.5 + tp)) * _std01(tp / m), m / n) if m else (math.nan, 0.0)
    out["precision"] = (_std01(tp / (tp + fp)), (tp + fp) / n) if tp + fp else (math.nan, 0.0)
    out["recall"] = (_std01(tp / (tp + fn)), (tp + fn) / n) if tp + fn else (math.nan, 0.0)
    out["specificity"] = (_std01(tn / (tn + fp)), (tn + fp) / n) if tn + fp else (math.nan, 0.0)
    out["accuracy"] = (_std01((tp + tn) / n), 1.0)
    out["roc_auc"] = _auc_component(y_true, proba) if 0 < tp + fn < n else (math.nan, 0.0)
    return out


def sampling_error(component: tuple[float, float], n: int) -> float:
    std, fraction = component
    return std / math.sqrt(n * fraction) if n and fraction else math.nan


# --------------------------------------------------------------------------------- metric formulas

def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def estimate_from_sums(row: Mapping[Any, Any]) -> dict[str, float]:
    """The estimated metrics of one bucket from its expected confusion sums (NannyML's formulas)."""
    tp, fp, fn, tn, n = (float(row[k]) for k in ("tp", "fp", "fn", "tn", "n"))
    auc = row.get("roc_auc")
    return {"roc_auc": math.nan if auc is None or pd.isna(auc) else float(auc),
            "f1": tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn else math.nan,
            "precision": _div(tp, tp + fp), "recall": _div(tp, tp + fn), "specificity": _div(tn, tn + fp),
            "accuracy": (tp + tn) / n if n else math.nan}


def realised_metrics(row: Mapping[Any, Any]) -> dict[str, float]:
    """Realised metrics of one bucket's labelled rows, NaN where NannyML gives NaN."""
    tp, fp, fn, tn = (float(row[k]) for k in ("r_tp", "r_fp", "r_fn", "r_tn"))
    n = tp + fp + fn + tn
    nan = math.nan
    if not n:
        return dict.fromkeys(METRICS, nan)
    two_true = tp + fn > 0 and tn + fp > 0
    two_pred = tp + fp > 0 and tn + fn > 0
    ok = two_true and two_pred
    auc = row.get("r_roc_auc")
    return {"roc_auc": float(auc) if two_true and auc is not None and not pd.isna(auc) else nan,
            "f1": _div(2 * tp, 2 * tp + fp + fn) if ok else nan,
            "precision": _div(tp, tp + fp) if ok else nan, "recall": _div(tp, tp + fn) if ok else nan,
            "specificity": tn / (tn + fp) if tn + fp else nan, "accuracy": (tp + tn) / n}


def thresholds(values: list[float]) -> tuple[float | None, float | None]:
    """NannyML's StandardDeviationThreshold over the reference buckets' realised values, clipped to [0, 1]."""
    arr = np.asarray(values, float)
    if not np.isfinite(arr).any():
        return None, None
    mean, std = float(np.nanmean(arr)), float(np.nanstd(arr))
    lo, hi = mean - BAND * std, mean + BAND * std
    return (0.0 if lo <= 0 else lo), (1.0 if hi >= 1 else hi)


# ----------------------------------------------------------------------------------------- report

@dataclass(frozen=True)
class EstimationReport:
    """CBPE estimates of one model over a window (overall and per bucket), with bands and realised values.

    ``buckets`` has one row per (bucket, metric): bucket, metric, n, n_labelled, estimated, sampling_error,
    lower/upper (the ±3 SE band), realised, lower_threshold, upper_threshold, alert. ``overall`` has the
    same columns per metric for the whole window (bucket NaT).
    """

    model: str
    window: Window
    reference: Window
    version: str | None
    bucket: str
    positive_class: str
    n_rows: int
    n_labelled: int
    n_reference: int
    rows_without_score: int
    calibration: Calibration
    overall: pd.DataFrame
    buckets: pd.DataFrame
    notes: tuple[str, ...] = field(default=())

    def metric(self, name: str) -> dict[str, Any]:
        """The whole window's row of one metric."""
        return {str(k): v for k, v in self.overall.set_index("metric").loc[name].to_dict().items()}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "window": self.window.label, "reference": self.reference.label,
                               "version": self.version, "bucket": self.bucket, "positive_class": self.positive_class,
                               "rows": self.n_rows, "labelled_rows": self.n_labelled,
                               "reference_rows": self.n_reference, "rows_without_score": self.rows_without_score,
                               "calibrated": self.calibration.applied, "calibration": self.calibration.text}
        for rec in self.overall.to_dict(orient="records"):
            m = rec["metric"]
            for k in ("estimated", "sampling_error", "lower", "upper", "realised", "lower_threshold",
                      "upper_threshold", "alert"):
                out[f"{m}_{k}"] = rec[k]
        out["alerting_buckets"] = int(self.buckets["alert"].sum()) if len(self.buckets) else 0
        return out


def default_reference(ctx: Context, model: str) -> Window:
    """The configured reference window, else the first :data:`REFERENCE_DAYS` whole days of the logs."""
    from connectors.windows import parse_window
    from dashboard.monitoring.drift import default_windows
    from dashboard.monitoring.operations import data_span

    cfg = ctx.model(model)
    if cfg.reference.source == "window" and cfg.reference.window:
        return parse_window(cfg.reference.window)
    first, last, n = data_span(ctx, model)
    if not n or first is None or last is None:
        raise VigilError(f"no predictions of model {model} are in the log store; ingest logs with "
                         f"`vigil ingest --model {model} FILES`")
    return default_windows(first, last, REFERENCE_DAYS)[0]


def _rows(sums: pd.DataFrame, real: pd.DataFrame, comps: dict[str, tuple[float, float]],
          limits: dict[str, tuple[float | None, float | None]]) -> pd.DataFrame:
    merged = sums.merge(real, on="bucket", how="left") if len(real) else sums.assign(
        n_labelled=0, r_tp=0, r_fp=0, r_fn=0, r_tn=0, r_roc_auc=math.nan)
    for col in ("n_labelled", "r_tp", "r_fp", "r_fn", "r_tn"):
        merged[col] = merged[col].fillna(0).astype("int64")
    out: list[dict[str, Any]] = []
    for rec in merged.to_dict(orient="records"):
        est, real_m = estimate_from_sums(rec), realised_metrics(rec)
        for m in METRICS:
            se = sampling_error(comps[m], int(rec["n"]))
            e = est[m]
            lo_t, hi_t = limits[m]
            alert = bool((lo_t is not None and e < lo_t) or (hi_t is not None and e > hi_t))
            out.append({"bucket": rec["bucket"], "metric": m, "n": int(rec["n"]), "n_labelled": int(rec["n_labelled"]),
                        "estimated": e, "sampling_error": se, "lower": max(0.0, e - BAND * se),
                        "upper": min(1.0, e + BAND * se), "realised": real_m[m], "lower_threshold": lo_t,
                        "upper_threshold": hi_t, "alert": alert})
    cols = ["bucket", "metric", "n", "n_labelled", "estimated", "sampling_error", "lower", "upper", "realised",
            "lower_threshold", "upper_threshold", "alert"]
    return pd.DataFrame(out, columns=cols)


@progress.step("estimating performance (CBPE)")
def compute_estimation(ctx: Context, model: str, window: Window, reference: Window | None = None,
                       bucket: str = "day", version: str | None = None,
                       calibration: str = "auto") -> EstimationReport:
    """CBPE estimates of ``model`` over ``window`` per ``bucket`` and overall, fitted on ``reference``
    (default :func:`default_reference`). Raises :class:`VigilError` with the fix for a non-binary model,
    an empty window, or a reference without labels of both classes."""
    if bucket not in q.BUCKETS:
        raise VigilError(f"bucket '{bucket}' is not one of {', '.join(q.BUCKETS)}")
    cfg = ctx.model(model)
    if len(cfg.classes) != 2:
        raise VigilError(f"estimated performance (CBPE) is for binary models; {model} has classes "
                         f"{', '.join(cfg.classes)}")
    pos = cfg.classes[1]
    ref_window = reference or default_reference(ctx, model)
    schema = ctx.schema(model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        n_all, n_no_score = q.score_counts(con, schema, pos, window.start, window.end, version)
        if n_all == 0:
            from dashboard.monitoring.quality import _span_message

            raise VigilError(_span_message(ctx, model, window, version))
        ref_rel, ref_params = q.scored_relation(schema, pos, ref_window.start, ref_window.end, version, bucket)
        key, kept = _kept_fit(ctx, con, ref_rel, ref_params, model, ref_window, version, bucket, calibration)
        fit = kept or _fit_reference(con, ref_rel, ref_params, model, ref_window, calibration)
        cal, comps, limits = fit.calibration, fit.components, fit.limits
        rel, params = q.scored_relation(schema, pos, window.start, window.end, version, bucket)
        sums_b, sums_o = _split(q.estimated_sums(con, rel, params, cal.knots, overall=True))
        real_b, real_o = _split(q.realised_counts(con, rel, params, overall=True))
    if kept is None:
        with suppress(LogStoreError, duckdb.Error):  # a busy store: fitted again next time
            kept_results.save(ctx.store, model, kept_results.CONTENT, {key: fit.to_json()})
    if sums_o.empty or int(sums_o["n"].sum()) == 0:
        raise VigilError(f"none of the {n_all} predictions of {model} in {window.label} carries a score; log the "
                         "positive class's probability (proba_<class>) or the predicted class's `score`")
    notes: list[str] = []
    if n_no_score:
        notes.append(f"{n_no_score} of {n_all} predictions have no score and are left out of the estimate")
    overall = _rows(sums_o, real_o, comps, limits)
    per_bucket = _rows(sums_b, real_b, comps, limits)
    n_lab = int(real_o["n_labelled"].sum()) if len(real_o) else 0
    return EstimationReport(model=model, window=window, reference=ref_window, version=version, bucket=bucket,
                            positive_class=pos, n_rows=int(sums_o["n"].sum()), n_labelled=n_lab,
                            n_reference=fit.n_reference, rows_without_score=n_no_score, calibration=cal,
                            overall=overall, buckets=per_bucket, notes=tuple(notes))


def _split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-bucket rows, the overall row) of a query run with ``overall=True``."""
    scope = df.pop("overall").astype(bool)
    return df[~scope].reset_index(drop=True), df[scope].reset_index(drop=True)


@dataclass(frozen=True)
class ReferenceFit:
    """What CBPE learns on the reference: the calibration, the sampling-error components and the
    thresholds of every metric (from the reference buckets' realised values)."""

    calibration: Calibration
    components: dict[str, tuple[float, float]]
    limits: dict[str, tuple[float | None, float | None]]
    n_reference: int

    def to_json(self) -> dict[str, Any]:
        knots = self.calibration.knots
        return {"applied": self.calibration.applied, "mode": self.calibration.mode,
                "knots": None if knots is None else {"x": knots["x"].tolist(), "y": knots["y"].tolist()},
                "components": self.components, "limits": self.limits, "n_reference": self.n_reference}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReferenceFit:
        knots = None if d["knots"] is None else pd.DataFrame({"x": d["knots"]["x"], "y": d["knots"]["y"]},
                                                             dtype=float)
        return cls(Calibration(bool(d["applied"]), str(d["mode"]), knots),
                   {k: (v[0], v[1]) for k, v in d["components"].items()},
                   {k: (v[0], v[1]) for k, v in d["limits"].items()}, int(d["n_reference"]))


def _kept_fit(ctx: Context, con: Any, ref_rel: str, ref_params: list[Any], model: str, ref_window: Window,
              version: str | None, bucket: str, calibration: str) -> tuple[str, ReferenceFit | None]:
    """(key, the kept fit or None). The reference's fit pulls up to 2M labelled rows and runs NannyML's
    calibration test (10 isotonic fits): 15 s on 10M rows, for a result that changes only with the
    reference's labelled rows or the configuration. So it is kept (:mod:`connectors.kept_results`) under
    a key holding a fingerprint of those rows: valid across ingests of newer logs or labels of other rows,
    refitted as soon as a row it read changes."""
    fingerprint = q.labelled_fingerprint(con, ref_rel, ref_params)
    digest = hashlib.sha256(json.dumps([repr(ctx.model(model)), ref_window.start.isoformat(),
                                        ref_window.end.isoformat(), version, bucket, calibration,
                                        fingerprint]).encode())
    key = f"cbpe-reference:{kept_results.code_version()}:{digest.hexdigest()}"
    kept = kept_results.load(ctx.store, model, kept_results.CONTENT, [key]).get(key)
    if kept is not None:
        with suppress(KeyError, TypeError, ValueError):  # another shape: fit again
            return key, ReferenceFit.from_json(kept)
    return key, None


def _fit_reference(con: Any, ref_rel: str, ref_params: list[Any], model: str, ref_window: Window,
                   calibration: str) -> ReferenceFit:
    ref = q.reference_rows(con, ref_rel, ref_params)
    _check_reference(ref, model, ref_window)
    y_t, y_p, u = (ref["yt"].to_numpy(int), ref["yp"].to_numpy(int), ref["u"].to_numpy(float))
    ref_real = q.realised_counts(con, ref_rel, ref_params).drop(columns="overall")
    per_ref = [realised_metrics(r) for r in ref_real.to_dict(orient="records")]
    return ReferenceFit(fit_calibration(y_t, u, calibration), sampling_components(y_t, y_p, u),
                        {m: thresholds([r[m] for r in per_ref]) for m in METRICS}, len(ref))


def _check_reference(ref: pd.DataFrame, model: str, window: Window) -> None:
    if len(ref) > MAX_REFERENCE_ROWS:
        raise VigilError(f"the reference {window.label} has {len(ref):,} labelled predictions, more than the "
                         f"{MAX_REFERENCE_ROWS:,} CBPE holds in memory; choose a shorter --reference window")
    if ref.empty or ref["yt"].nunique() < 2:
        raise VigilError(f"CBPE fits on labelled predictions of both classes in the reference {window.label} "
                         f"and it has {len(ref)} labelled (of {ref['yt'].nunique() if len(ref) else 0} "
                         f"class(es)); choose a --reference window whose labels have arrived, e.g. the first week "
                         f"of logs, or ingest labels with `vigil ingest --labels --model {model} FILES`")

