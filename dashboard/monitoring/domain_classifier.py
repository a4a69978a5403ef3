"""Multivariate drift by a domain classifier per time bucket, as NannyML's DomainClassifierCalculator.

Why: PCA reconstruction (:mod:`dashboard.monitoring.multivariate`) sees changes along the directions a
linear fit of the reference keeps; a gradient-boosted classifier that learns to tell a bucket's rows from
the reference's sees any change it can learn, non-linear ones and interactions of categories included.
Its cross-validated ROC AUC reads directly: 0.5 = the bucket looks like the reference, 1 = every row
can be told apart.

NannyML 0.13.1 is the specification (read from its installed source; cross-checked value for value in
tests/test_domain_classifier.py):

* columns: the model's features, numerical as continuous and categorical as categorical; the
  classifier's input holds the categorical columns first, then the numerical ones, each sorted by name;
* an analysis bucket: the reference rows (label 0, in time order) followed by the bucket's rows
  (label 1, in time order); a bucket inside the reference window (NannyML's reference chunks): the
  reference rows, labelled 1 where they fall in that bucket;
* categorical values ordinal-encoded on the rows of that one fit (sorted values 0, 1, ...) and declared
  categorical to LightGBM; a missing category arrives as ``None`` (as from DuckDB, or from Parquet into
  pandas, the way NannyML reads it), which scikit-learn's encoder treats as one more value, after the
  others; missing numbers stay NaN, LightGBM's missing value;
* 5-fold ``StratifiedKFold`` without shuffling, one LightGBM model per fold with NannyML's default
  hyperparameters (:data:`LGBM_PARAMS`), and the ROC AUC of the out-of-fold probabilities;
* thresholds: NannyML's default ``ConstantThreshold(lower=0.45, upper=0.65)``; they are constants, not
  derived from the reference's buckets; a bucket alerts when its value is above the upper or below the
  lower threshold.

Differences, on purpose:

* **A bounded sample.** The classifier needs rows, so they leave the engine, but never more than
  ``max_reference_rows`` of the reference (default :data:`MAX_REFERENCE_ROWS`) and ``max_rows`` of each
  bucket (default :data:`MAX_BUCKET_ROWS`), chosen inside DuckDB by the smallest MD5 of
  ``prediction_id`` (:mod:`connectors.queries.domain_classifier`): deterministic, so the same window gives
  the same value every time. NannyML trains on every row, so its value equals Vigil's on the sample
  (what the cross-check compares), not on the full data; the report says how many rows were sampled.
* **One thread, fixed histogram layout**: ``n_jobs=1``, ``deterministic=True``, ``force_col_wise=True``
  (NannyML: all cores, and LightGBM picks row- or column-wise histograms by a timing test). Neither
  changes the model's definition; they make the value reproducible and keep one analysis from taking
  every core of the server the pages share. ``silent`` (a LightGBM 3 option NannyML still passes,
  ignored by LightGBM 4 with a warning) is left out.
* **Too few rows get no value**: a bucket (or, inside the reference, a bucket or the rest of the
  reference) with fewer than :data:`MIN_ROWS` sampled rows is reported as "too few rows" with no alert,
  where NannyML would fit on whatever is there (and answer 0.5 for a reference with one bucket).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from connectors.queries import domain_classifier as q
from connectors.queries import reference as refq
from connectors.queries.reference import Source
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError

__all__ = ["CV_FOLDS", "LGBM_PARAMS", "LOWER_THRESHOLD", "MAX_BUCKET_ROWS", "MAX_REFERENCE_ROWS", "MIN_ROWS",
           "ClassifierReport", "classifier_auroc", "compute_classifier", "encode"]

#: NannyML 0.13's DEFAULT_LGBM_HYPERPARAMS (without LightGBM 3's ``silent``), on one thread, reproducibly.
LGBM_PARAMS: dict[str, Any] = {
    "boosting_type": "gbdt", "class_weight": None, "colsample_bytree": 1.0, "importance_type": "split",
    "learning_rate": 0.1, "max_depth": -1, "min_child_samples": 20, "min_child_weight": 0.001,
    "min_split_gain": 0.0, "n_estimators": 100, "num_leaves": 31, "objective": None, "random_state": 13,
    "reg_alpha": 0.0, "reg_lambda": 0.0, "subsample": 1.0, "subsample_for_bin": 200000, "subsample_freq": 0,
    "n_jobs": 1, "deterministic": True, "force_col_wise": True, "verbosity": -1,
}
CV_FOLDS = 5  # NannyML's cv_folds_num
LOWER_THRESHOLD, UPPER_THRESHOLD = 0.45, 0.65  # NannyML's default ConstantThreshold
MAX_REFERENCE_ROWS = 10_000
MAX_BUCKET_ROWS = 2_000
MIN_ROWS = 100

Progress = Callable[[int, int], None]


def encode(X: pd.DataFrame, numerical: list[str], categorical: list[str]) -> pd.DataFrame:
    """NannyML's preprocessing: categorical columns ordinal-encoded on ``X`` itself, then the numerical."""
    from sklearn.preprocessing import OrdinalEncoder

    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    cat = pd.DataFrame({c: enc.fit_transform(X[[c]]).ravel() for c in categorical})
    return pd.concat([cat, X[numerical].reset_index(drop=True)], axis=1)


def classifier_auroc(X: pd.DataFrame, y: np.ndarray, numerical: list[str], categorical: list[str],
                     params: dict[str, Any] | None = None) -> float:
    """Cross-validated ROC AUC of LightGBM telling rows labelled 1 from rows labelled 0 (0.5 with one class)."""
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    data = encode(X, numerical, categorical)
    preds, truth = [], []
    for train, test in StratifiedKFold(n_splits=CV_FOLDS).split(data, y):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using categorical_feature in Dataset.")
            model = LGBMClassifier(**(params or LGBM_PARAMS))
            model.fit(data.iloc[train], y[train], categorical_feature=categorical)
        preds.append(np.asarray(model.predict_proba(data.iloc[test]))[:, 1])
        truth.append(y[test])
    y_true = np.concatenate(truth)
    if len(np.unique(y_true)) < 2:
        return 0.5  # NannyML: nothing to tell apart
    return float(roc_auc_score(y_true, np.concatenate(preds)))


@dataclass(frozen=True)
class ClassifierReport:
    """Domain-classifier ROC AUC per bucket of ``window`` (bucket, period, n, n_sampled, value,
    lower_threshold, upper_threshold, alert, note) and the sample it was trained on."""

    model: str
    window: Window
    reference: Window
    bucket: str
    version: str | None
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    n_reference: int  # reference rows before sampling
    n_reference_sampled: int
    max_rows: int
    max_reference_rows: int
    buckets: pd.DataFrame
    lower_threshold: float = LOWER_THRESHOLD
    upper_threshold: float = UPPER_THRESHOLD

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numerical

    @property
    def first_alert(self) -> pd.Timestamp | None:
        hit = self.buckets[self.buckets["alert"]]
        return None if hit.empty else pd.Timestamp(hit["bucket"].min())

    @property
    def sample_note(self) -> str:
        """What the classifier saw: the bound and how many rows it kept (for every output)."""
        cut = self.buckets[self.buckets["n_sampled"] < self.buckets["n"]]
        per = (f"at most {self.max_rows:,} rows per {self.bucket} ({len(cut)} of {len(self.buckets)} "
               f"{self.bucket}s sampled down)")
        return (f"trained on a deterministic sample (the rows with the smallest MD5 of prediction_id): {per} and "
                f"{self.n_reference_sampled:,} of the reference's {self.n_reference:,} rows "
                f"(at most {self.max_reference_rows:,})")

    def table(self) -> pd.DataFrame:
        """The per-bucket table as the pages show it."""
        return self.buckets.rename(columns={"n": "rows", "n_sampled": "sampled", "value": "ROC AUC"})[
            ["bucket", "period", "rows", "sampled", "ROC AUC", "alert", "note"]]

    def summary(self) -> dict[str, Any]:
        scored = self.buckets[self.buckets["value"].notna()]
        worst = None if scored.empty else scored.iloc[int(np.argmax(scored["value"].to_numpy(float)))]
        return {"model": self.model, "window": self.window.label, "reference": self.reference.label,
                "version": self.version, "bucket": self.bucket, "method": "domain_classifier",
                "columns": list(self.columns), "reference_rows": self.n_reference,
                "reference_rows_sampled": self.n_reference_sampled, "max_rows": self.max_rows,
                "max_reference_rows": self.max_reference_rows, "sample": self.sample_note,
                "lower_threshold": self.lower_threshold, "upper_threshold": self.upper_threshold,
                "max_auroc": None if worst is None else float(worst["value"]),
                "max_auroc_bucket": None if worst is None else pd.Timestamp(worst["bucket"]).isoformat(),
                "buckets": len(self.buckets), "scored_buckets": len(scored),
                "alerting_buckets": int(self.buckets["alert"].sum()),
                "alert_share": float(scored["alert"].mean()) if len(scored) else None,
                "first_alert": None if self.first_alert is None else self.first_alert.isoformat()}


def _features(ctx: Context, model: str) -> tuple[list[str], list[str]]:
    """The model's numerical and categorical features, each sorted (NannyML's order)."""
    cfg = ctx.model(model)
    numerical = sorted(c for c, t in cfg.features.items() if t == "numerical")
    categorical = sorted(c for c, t in cfg.features.items() if t == "categorical")
    if not numerical and not categorical:
        raise VigilError(f"model {model} has no features configured; the domain classifier needs at least one")
    return numerical, categorical


def _inside(b: pd.Timestamp, unit: str, ref: Window) -> bool:
    end = b + (timedelta(days=1) if unit == "day" else timedelta(hours=1))
    return ref.start <= b.to_pydatetime() and end.to_pydatetime() <= ref.end


def _value(X: pd.DataFrame, y: np.ndarray, numerical: list[str], categorical: list[str]) -> tuple[float | None, str]:
    ones = int(y.sum())
    if ones < MIN_ROWS:
        return None, f"too few rows: {ones} sampled, a classifier needs {MIN_ROWS}"
    if len(y) - ones < MIN_ROWS:
        return None, f"too few reference rows outside this bucket: {len(y) - ones}, it needs {MIN_ROWS}"
    return classifier_auroc(X, y, numerical, categorical), ""


@progress.step("multivariate drift: domain classifier per bucket")
def compute_classifier(ctx: Context, model: str, window: Window, reference: Window | None = None,
                       bucket: str = "day", version: str | None = None, max_rows: int = MAX_BUCKET_ROWS,
                       max_reference_rows: int = MAX_REFERENCE_ROWS,
                       progress: Progress | None = None) -> ClassifierReport:
    """Domain-classifier ROC AUC of ``model``'s features per ``bucket`` of ``window`` against ``reference``
    (default: the configured reference window, else the first 14 days of the logs), on a sample of at most
    ``max_rows`` rows per bucket and ``max_reference_rows`` reference rows. ``progress(done, total)`` is
    called after each bucket."""
    from dashboard.monitoring.estimation import default_reference

    if bucket not in refq.BUCKET_UNITS:
        raise VigilError(f"bucket '{bucket}' is not one of {', '.join(refq.BUCKET_UNITS)}")
    if max_rows < MIN_ROWS or max_reference_rows < 2 * MIN_ROWS:
        raise VigilError(f"the domain classifier needs at least {MIN_ROWS} rows per bucket and {2 * MIN_ROWS} "
                         f"reference rows: raise --max-rows / --max-reference-rows")
    schema = ctx.schema(model)
    ref_window = reference or default_reference(ctx, model)
    numerical, categorical = _features(ctx, model)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)  # adds a feature column configured after the logs were ingested
        cols = ("prediction_id", "ts", *numerical, *categorical)
        ref_src: Source = refq.window_source(schema, ref_window.start, ref_window.end, cols, version, bucket)
        cur_src: Source = refq.window_source(schema, window.start, window.end, cols, version, bucket)
        ref = q.sampled_rows(con, ref_src, max_reference_rows, per_bucket=False)
        cur = q.sampled_rows(con, cur_src, max_rows, per_bucket=True)
    if len(ref) < 2 * MIN_ROWS:
        raise VigilError(f"the reference {ref_window.label} has {len(ref)} predictions of {model}; the domain "
                         f"classifier needs at least {2 * MIN_ROWS}: choose a longer --reference window")
    if cur.empty:
        raise VigilError(f"no predictions of model {model} in {window.label}; choose a window with logs")
    features = categorical + numerical
    empty = [c for c in features if ref[c].isna().all()]
    if empty:  # a classifier would tell the sides apart by the column's mere presence
        raise VigilError(f"the reference {ref_window.label} has no values of {', '.join(empty)}: choose a reference "
                         "window in which every feature is logged, or remove those from the model's [features]")
    ref_x = ref[features].reset_index(drop=True)
    keys = sorted(cur["bucket"].unique())
    rows = []
    for i, b in enumerate(keys):
        part = cur[cur["bucket"] == b]
        if _inside(pd.Timestamp(b), bucket, ref_window):
            y = (ref["bucket"] == b).to_numpy(float)
            value, note = _value(ref_x, y, numerical, categorical)
            period, n_sampled = "reference", int(y.sum())
        else:
            X = pd.concat([ref_x, part[features]], ignore_index=True)
            y = np.concatenate([np.zeros(len(ref_x)), np.ones(len(part))])
            value, note = _value(X, y, numerical, categorical)
            period, n_sampled = "analysis", len(part)
        alert = value is not None and not LOWER_THRESHOLD <= value <= UPPER_THRESHOLD
        rows.append({"bucket": pd.Timestamp(b), "period": period, "n": int(part["bucket_rows"].iloc[0]),
                     "n_sampled": n_sampled, "value": value, "lower_threshold": LOWER_THRESHOLD,
                     "upper_threshold": UPPER_THRESHOLD, "alert": alert, "note": note})
        if progress is not None:
            progress(i + 1, len(keys))
    frame = pd.DataFrame(rows, columns=["bucket", "period", "n", "n_sampled", "value", "lower_threshold",
                                        "upper_threshold", "alert", "note"])
    frame["value"] = frame["value"].astype(float)
    return ClassifierReport(model=model, window=window, reference=ref_window, bucket=bucket, version=version,
                            numerical=tuple(numerical), categorical=tuple(categorical),
                            n_reference=int(ref["bucket_rows"].iloc[0]), n_reference_sampled=len(ref),
                            max_rows=max_rows, max_reference_rows=max_reference_rows, buckets=frame)
