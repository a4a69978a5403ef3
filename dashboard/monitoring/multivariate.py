"""Multivariate drift: PCA reconstruction error per time bucket, as NannyML's DataReconstructionDriftCalculator.

Why: a change in how features move together (a correlation flipping, a segment's mix changing its
feature profile) can leave every marginal distribution as it was, so column-by-column tests miss it.
A PCA fitted on the reference keeps the directions the reference varies in; rows of a changed joint
distribution reconstruct worse, and the mean reconstruction error of a bucket rises.

NannyML 0.13 is the specification (read from its installed source; cross-checked in
tests/test_multivariate.py):

* columns: the model's features (numerical as configured are continuous, categorical are categorical);
* imputation: numerical missing values by the reference mean, categorical by the reference's most
  frequent value; categorical values encoded by their share of the (imputed) reference, unseen values 0;
* scaling to zero mean and unit (population) variance on the reference; PCA keeping the fewest
  components whose explained variance reaches :data:`VARIANCE_KEPT` (0.65) of the total;
* per row: the Euclidean norm of the scaled row minus its reconstruction; per bucket: the mean
  (the value), the sampling error (sample std / √n) and the band value ± 3 SE (lower bound ≥ 0);
* thresholds: mean ± 3 population std of the reference's own buckets' values (a lower threshold ≤ 0 is
  dropped); a bucket alerts when its value is not strictly between them.

Where the work happens: the fit needs reference aggregates only (means, modes, category shares,
moments and the k×k covariance of the scaled columns), the per-row error is one SQL expression, and the
engine returns one row per bucket; Python holds k×k numbers (k = number of features), never rows. The
eigen-decomposition of the covariance is what scikit-learn's PCA does itself when rows far outnumber
columns (its ``covariance_eigh`` solver), so values agree with NannyML's to rounding (about 1e-12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.queries import multivariate as q
from connectors.queries import reference as refq
from connectors.queries.reference import Source
from connectors.schema import quote
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError

__all__ = ["BAND", "VARIANCE_KEPT", "PcaFit", "ReconstructionReport", "compute_reconstruction", "fit_pca"]

VARIANCE_KEPT = 0.65  # NannyML's default n_components
BAND = 3.0


@dataclass(frozen=True)
class PcaFit:
    """The reference fit: imputation, encoding and scaling per column, and the kept components."""

    columns: tuple[str, ...]
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    means: dict[str, float]
    modes: dict[str, str]
    shares: dict[str, dict[str, float]]
    scale_mean: np.ndarray
    scale_std: np.ndarray
    pca_mean: np.ndarray
    components: np.ndarray  # m x k
    explained: np.ndarray  # explained variance ratio of every component, descending

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def encoded(self) -> list[str]:
        """Per column, the SQL of its imputed and encoded value."""
        out = []
        for c in self.columns:
            if c in self.numerical:
                out.append(f"coalesce({q.numeric(c)}, {self.means[c]!r})")
            else:
                v = f"coalesce(CAST({quote(c)} AS VARCHAR), {q.literal(self.modes[c])})"
                arms = " ".join(f"WHEN {q.literal(k)} THEN {s!r}" for k, s in self.shares[c].items())
                out.append(f"(CASE {v} {arms} ELSE 0.0 END)")
        return out

    def scaled(self) -> list[str]:
        return [f"(({e}) - {float(m)!r}) / {float(s)!r}"
                for e, m, s in zip(self.encoded(), self.scale_mean, self.scale_std, strict=True)]

    def error_sql(self) -> tuple[str, str]:
        """(inner select of centred scaled columns d_i, the residual norm over them)."""
        k = len(self.columns)
        inner = ", ".join(f"({z}) - {float(m)!r} AS d{i}" for i, (z, m) in
                          enumerate(zip(self.scaled(), self.pca_mean, strict=True)))
        resid = np.eye(k) - self.components.T @ self.components
        terms = []
        for j in range(k):
            r = " + ".join(f"{float(resid[j, i])!r} * d{i}" for i in range(k))
            terms.append(f"pow({r}, 2)")
        return inner, f"sqrt({' + '.join(terms)})"


def _scale(std: float) -> float:
    """scikit-learn's StandardScaler leaves a (near-)constant column unscaled."""
    return 1.0 if std < 10 * np.finfo(np.float64).eps else std


def fit_pca(con: Any, src: Source, numerical: tuple[str, ...], categorical: tuple[str, ...],
            variance: float = VARIANCE_KEPT) -> PcaFit:
    """Fit imputation, encoding, scaling and PCA on the reference relation ``src`` (aggregates only)."""
    columns = tuple(sorted(numerical)) + tuple(sorted(categorical))
    n, means, modes = q.imputation(con, src, numerical, categorical)
    if n < 2:
        raise VigilError(f"the multivariate reference has {n} rows; it needs at least 2")
    bad = [c for c, m in {**means, **modes}.items() if m is None]
    if bad:
        raise VigilError(f"the multivariate reference has no values in {', '.join(bad)}; choose another "
                         "reference window or leave those columns out of the model's features")
    shares = {c: q.shares(con, src, c, str(modes[c])) for c in categorical}
    fit = PcaFit(columns, numerical, categorical, {c: float(v) for c, v in means.items() if v is not None},
                 {c: str(v) for c, v in modes.items()}, shares, np.zeros(0), np.ones(0), np.zeros(0),
                 np.zeros((0, 0)), np.zeros(0))
    enc = fit.encoded()
    mom = q.moments(con, src, dict(zip(columns, enc, strict=True)))
    scale_mean = mom["mean"].to_numpy(float)
    scale_std = np.array([_scale(s) for s in mom["std"].to_numpy(float)])
    fit = PcaFit(**{**fit.__dict__, "scale_mean": scale_mean, "scale_std": scale_std})
    cov_and_mean = q.covariance(con, src, fit.scaled())
    cov = np.array(cov_and_mean[:-1], float)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    ratio = vals / vals.sum()
    m = int(np.searchsorted(np.cumsum(ratio), variance, side="right") + 1)
    m = min(m, len(columns))
    return PcaFit(**{**fit.__dict__, "pca_mean": np.array(cov_and_mean[-1], float), "components": vecs[:, :m].T,
                     "explained": ratio})


def errors(con: Any, src: Source, fit: PcaFit) -> pd.DataFrame:
    """Per bucket of ``src``: rows, mean and sample std of the reconstruction error."""
    inner, norm = fit.error_sql()
    wrapped = Source(sql=f"SELECT bucket, {inner} FROM ({src.sql})", params=src.params)
    return q.error_by_bucket(con, wrapped, norm)


def thresholds(values: np.ndarray) -> tuple[float | None, float | None]:
    """mean ± 3 population std of the reference buckets' values; a lower threshold ≤ 0 is dropped."""
    v = values[np.isfinite(values)]
    if not len(v):
        return None, None
    mean, std = float(np.mean(v)), float(np.std(v))
    lo = mean - BAND * std
    return (None if lo <= 0 else lo), mean + BAND * std


@dataclass(frozen=True)
class ReconstructionReport:
    """Reconstruction error per bucket of ``window`` (bucket, n, value, sampling_error, lower, upper,
    lower_threshold, upper_threshold, alert) and the fit it came from."""

    model: str
    window: Window
    reference: Window
    bucket: str
    version: str | None
    fit: PcaFit
    n_reference: int
    reference_buckets: pd.DataFrame
    buckets: pd.DataFrame
    lower_threshold: float | None
    upper_threshold: float | None
    overall: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def first_alert(self) -> pd.Timestamp | None:
        hit = self.buckets[self.buckets["alert"]]
        return None if hit.empty else pd.Timestamp(hit["bucket"].min())

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "window": self.window.label, "reference": self.reference.label,
                "version": self.version, "bucket": self.bucket, "method": "pca_reconstruction",
                "columns": list(self.fit.columns), "components": self.fit.n_components,
                "variance_kept": float(np.sum(self.fit.explained[: self.fit.n_components])),
                "reference_rows": self.n_reference, "lower_threshold": self.lower_threshold,
                "upper_threshold": self.upper_threshold, "reconstruction_error": self.overall.get("value"),
                "buckets": len(self.buckets), "alerting_buckets": int(self.buckets["alert"].sum()),
                "alert_share": float(self.buckets["alert"].mean()) if len(self.buckets) else None,
                "first_alert": None if self.first_alert is None else self.first_alert.isoformat()}


def _rows(df: pd.DataFrame, lo: float | None, hi: float | None) -> pd.DataFrame:
    out = df.rename(columns={"mean": "value"}).copy()
    out["sampling_error"] = out["std"] / np.sqrt(out["n"])
    out["upper"] = out["value"] + BAND * out["sampling_error"]
    out["lower"] = np.maximum(out["value"] - BAND * out["sampling_error"], 0.0)
    out["lower_threshold"], out["upper_threshold"] = lo, hi
    lo_v = -math.inf if lo is None else lo
    hi_v = math.inf if hi is None else hi
    out["alert"] = ~((out["value"] > lo_v) & (out["value"] < hi_v))
    return out.drop(columns="std")


@progress.step("multivariate drift: PCA reconstruction error")
def compute_reconstruction(ctx: Context, model: str, window: Window, reference: Window | None = None,
                           bucket: str = "day", version: str | None = None) -> ReconstructionReport:
    """PCA reconstruction error of ``model``'s features per ``bucket`` of ``window``, fitted on
    ``reference`` (default: the configured reference window, else the first 14 days of the logs)."""
    from dashboard.monitoring.estimation import default_reference

    if bucket not in refq.BUCKET_UNITS:
        raise VigilError(f"bucket '{bucket}' is not one of {', '.join(refq.BUCKET_UNITS)}")
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    ref_window = reference or default_reference(ctx, model)
    numerical = tuple(c for c in cfg.features if schema.columns.get(c) == "numerical")
    categorical = tuple(c for c in cfg.features if schema.columns.get(c) == "categorical")
    cols = numerical + categorical
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        ref_src = refq.window_source(schema, ref_window.start, ref_window.end, cols, version, bucket)
        cur_src = refq.window_source(schema, window.start, window.end, cols, version, bucket)
        fit = fit_pca(con, ref_src, numerical, categorical)
        ref_b = errors(con, ref_src, fit)
        cur_b = errors(con, cur_src, fit)
        plain = refq.window_source(schema, window.start, window.end, cols, version, None)
        whole = errors(con, Source(f"SELECT CAST(NULL AS TIMESTAMP) AS bucket, * FROM ({plain.sql})", plain.params),
                       fit)
    if cur_b.empty:
        raise VigilError(f"no predictions of model {model} in {window.label}; choose a window with logs")
    lo, hi = thresholds(ref_b["mean"].to_numpy(float))
    ref_rows = _rows(ref_b, lo, hi)
    overall = {str(k): v for k, v in _rows(whole, lo, hi).iloc[0].to_dict().items()} if len(whole) else {}
    return ReconstructionReport(model=model, window=window, reference=ref_window, bucket=bucket, version=version,
                                fit=fit, n_reference=int(ref_b["n"].sum()), reference_buckets=ref_rows,
                                buckets=_rows(cur_b, lo, hi), lower_threshold=lo, upper_threshold=hi,
                                overall=overall)
