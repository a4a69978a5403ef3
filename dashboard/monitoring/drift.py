"""Drift: Evidently-compatible per-column drift for any two windows, and over time, computed in DuckDB.

Evidently 0.7's ``DataDriftPreset`` is the specification: column types come from the model config,
missing values (NULL, NaN, ±inf) are dropped per column, the default test is picked from the cleaned
reference size and the distinct values of both sides (:func:`dashboard.monitoring.drift_stats.default_method`),
thresholds and their direction are Evidently's, and the dataset drifts when the share of drifted columns
reaches ``thresholds.drift_share`` (0.5). Row-level work is SQL (:mod:`connectors.queries.drift`); the
formulas over its aggregates are in :mod:`dashboard.monitoring.drift_stats`.

Differences from Evidently, on purpose: where Evidently raises for a whole report (a column that is
empty after cleaning, a feature missing from the reference), Vigil reports that column as not tested
with the reason and tests the others; the drifted share counts tested columns only. Evidently's
drifted-column count skips ±inf cleaning for columns without NaN; Vigil follows the per-column results.

Small samples: a column with fewer current values than ``thresholds.min_drift_rows`` (500) is still
scored, but gets no verdict ("too few rows"): it is neither drift nor "no drift", and it is left out of
the drifted share and the dataset verdict. Why: Evidently's distance thresholds (0.1) do not shrink with
the sample, so small samples of the reference itself pass them (on the demo's 20,000-row reference,
normed Wasserstein flags 2.9-4.1% of 500-row samples, 12-15% of 300-row ones, 57-69% of 100-row ones,
and 10 of 11 columns of a 32-row hour drift by Evidently's verdicts), and the
p-value tests have too little power there for "no drift" to mean anything. Evidently's own verdicts
stay visible (``ColumnDrift.evidently_drifted``, ``DriftResult.evidently_dataset_drift``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors.queries import drift as q
from connectors.queries import operations as opsq
from connectors.queries import reference as refq
from connectors.queries.reference import LABEL_COLUMN, PREDICTION_COLUMN, Source
from connectors.windows import Window, parse_window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring import drift_stats as ds
from dashboard.settings import ModelConfig

_EPOCH = pd.Timestamp("1970-01-01")
BUCKETED_COLUMNS_PER_PASS = 2


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: Evidently's method, score and verdict, or why it was not tested."""

    column: str
    column_type: str
    method: str | None
    score: float | None
    threshold: float | None
    drifted: bool
    n_reference: int
    n_current: int
    note: str = ""
    min_rows: int = 0  # current values needed for a verdict (thresholds.min_drift_rows)

    @property
    def tested(self) -> bool:
        """A score was computed (whether or not it was on enough rows for a verdict)."""
        return self.score is not None

    @property
    def too_few_rows(self) -> bool:
        """Scored on fewer current values than ``min_rows``: no verdict, neither drift nor "no drift"."""
        return self.tested and self.n_current < self.min_rows

    @property
    def judged(self) -> bool:
        """Tested on enough rows: ``drifted`` is a verdict (counted in the drifted share)."""
        return self.tested and not self.too_few_rows

    @property
    def evidently_drifted(self) -> bool:
        """Evidently's verdict on the same score, whatever the sample size (kept for compatibility)."""
        if self.method is None or self.score is None or self.threshold is None:
            return False
        return ds.METHODS[self.method].drifted(self.score, self.threshold)

    @property
    def verdict(self) -> str:
        """"drift", "no drift", "too few rows (n < min)" or "not tested"."""
        if not self.tested:
            return "not tested"
        if self.too_few_rows:
            return f"too few rows ({self.n_current:,} < {self.min_rows:,})"
        return "drift" if self.drifted else "no drift"

    @property
    def method_label(self) -> str:
        return ds.METHODS[self.method].display if self.method else "not tested"

    @property
    def severity(self) -> float:
        """How far past its threshold the score is (1 = at the threshold; larger = worse)."""
        if self.score is None or self.threshold is None or self.method is None:
            return -1.0
        if ds.METHODS[self.method].kind == "p_value":
            return float(self.threshold / max(self.score, 1e-300))
        return float(self.score / self.threshold) if self.threshold else math.inf


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift between a reference and a current window, and the dataset-level verdict."""

    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool
    n_reference: int
    n_current: int
    reference_label: str
    current_label: str
    drift_share_threshold: float = 0.5
    model: str = ""
    version: str | None = None
    min_drift_rows: int = 0

    @property
    def n_tested(self) -> int:
        return sum(c.tested for c in self.columns)

    @property
    def n_judged(self) -> int:
        """Columns with a verdict (tested on at least ``min_drift_rows`` current values)."""
        return sum(c.judged for c in self.columns)

    @property
    def n_too_few(self) -> int:
        return sum(c.too_few_rows for c in self.columns)

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def evidently_share_drifted(self) -> float:
        """Evidently's drifted share: over every tested column, whatever its sample size."""
        return _shares(self.columns, self.drift_share_threshold, evidently=True)[0]

    @property
    def evidently_dataset_drift(self) -> bool:
        return _shares(self.columns, self.drift_share_threshold, evidently=True)[1]

    @property
    def verdict(self) -> str:
        """"drift", "no drift", "too few rows" (no column had enough current values) or "not tested"."""
        if self.n_judged:
            return "drift" if self.dataset_drift else "no drift"
        return "too few rows" if self.n_too_few else "not tested"

    def to_frame(self) -> pd.DataFrame:
        """The per-column table by severity: drifted first, then judged, then by how far past the threshold."""
        rows = [{"column": c.column, "type": c.column_type, "method": c.method_label, "score": c.score,
                 "threshold": c.threshold, "drifted": c.drifted, "verdict": c.verdict,
                 "evidently_drifted": c.evidently_drifted, "n_reference": c.n_reference,
                 "n_current": c.n_current, "note": c.note, "severity": c.severity, "judged": c.judged}
                for c in self.columns]
        df = pd.DataFrame(rows, columns=["column", "type", "method", "score", "threshold", "drifted", "verdict",
                                         "evidently_drifted", "n_reference", "n_current", "note", "severity",
                                         "judged"])
        df = df.sort_values(["drifted", "judged", "severity"], ascending=False, kind="stable")
        return df.drop(columns=["judged"]).reset_index(drop=True)


@dataclass
class _Plan:
    """What to compare: sources, column types, and columns that cannot be tested (with the reason)."""

    ref: Source
    cur: Source
    types: dict[str, str]
    missing: dict[str, str] = field(default_factory=dict)
    n_ref_rows: int = 0


# ----------------------------------------------------------------------------- public API

def compute_drift(ctx: Context, model: str, current: Window, reference: Window | str = "training",
                  version: str | None = None, rows: refq.RowFilter | None = None,
                  columns: tuple[str, ...] | None = None) -> DriftResult:
    """Drift of ``model``'s features, prediction and (where labelled) label between ``reference``
    ("training" = the champion's training data, "config" = the model's configured reference, a
    ``Window`` or "FROM..TO") and the ``current`` window; ``version`` restricts the logs to one model
    version (and, with a training reference, uses that version's training data).

    ``rows`` keeps only the log rows the filter keeps, on both sides (one segment: the reference must
    then be a window of the logs); ``columns`` tests only those drift columns."""
    cfg = ctx.model(model)
    ref_label, plan_ref = _reference(ctx, cfg, reference, version)
    if rows is not None and plan_ref.window is None:
        raise VigilError("drift within a segment compares two windows of the logs, not the training data")
    _ensure_reference(ctx, cfg, plan_ref)
    with ctx.connect(model) as con:
        plan = _plan(ctx, con, cfg, plan_ref, current, version, bucket=None, rows=rows, only=columns)
        n_cur = q.row_count(con, plan.cur.narrow(()))
        if n_cur == 0:
            raise VigilError(f"the current window {current.label} has no logged predictions for '{model}'"
                             + (f" version {version}" if version else "") + "; " + _span_hint(ctx, con, model))
        with progress.step(f"drift: testing {len(plan.types)} columns in {ctx.engine(model).label}"):
            per_bucket = _evaluate(con, plan, cfg, bucketed=False)
    cols = per_bucket.get(_EPOCH, [])
    if not cols:
        cols = [_untested(c, t, plan, 0, "no values in the current window") for c, t in plan.types.items()]
    cols += [ColumnDrift(c, cfg.features.get(c, "categorical"), None, None, None, False, 0, n_cur, note)
             for c, note in plan.missing.items()]
    return _result(cfg, cols, plan.n_ref_rows, n_cur, ref_label, current.label, version)


def drift_over_time(ctx: Context, model: str, window: Window, bucket: str = "day",
                    reference: Window | str = "training", version: str | None = None) -> pd.DataFrame:
    """Per-column drift score for each ``bucket`` ("day" or "hour") of ``window`` against ``reference``.

    One set of queries for all buckets (no query per bucket). Columns: bucket, column, column_type,
    method, method_label, score, threshold, drifted, severity, n_current, too_few_rows, evidently_drifted, min_rows,
    note, then the bucket's dataset-level values repeated on each of its rows (see :func:`share_by_bucket`):
    share_drifted, dataset_drift, n_judged, evidently_share_drifted, evidently_dataset_drift.
    """
    if bucket not in refq.BUCKET_UNITS:
        raise VigilError(f"bucket must be one of {', '.join(refq.BUCKET_UNITS)}, not '{bucket}'")
    cfg = ctx.model(model)
    _, plan_ref = _reference(ctx, cfg, reference, version)
    _ensure_reference(ctx, cfg, plan_ref)
    with ctx.connect(model) as con:
        plan = _plan(ctx, con, cfg, plan_ref, window, version, bucket=bucket)
        with progress.step(f"drift per {bucket}: testing {len(plan.types)} columns in {ctx.engine(model).label}"):
            per_bucket = _evaluate(con, plan, cfg, bucketed=True)
    rows = [row for b, cols in sorted(per_bucket.items()) for row in _bucket_rows(b, cols, cfg.thresholds.drift_share)]
    return pd.DataFrame(rows, columns=[*_CELL_COLUMNS, *_BUCKET_COLUMNS])


_CELL_COLUMNS = ["bucket", "column", "column_type", "method", "method_label", "score", "threshold", "drifted", "severity",
                 "n_current", "too_few_rows", "evidently_drifted", "min_rows", "note"]
_BUCKET_COLUMNS = ["share_drifted", "dataset_drift", "n_judged", "evidently_share_drifted",
                   "evidently_dataset_drift"]


def _bucket_rows(bucket: pd.Timestamp, cols: list[ColumnDrift], share_threshold: float) -> list[dict[str, Any]]:
    """One row per column of a bucket, each carrying the bucket's own and Evidently's dataset verdicts."""
    share, drift = _shares(cols, share_threshold)
    ev_share, ev_drift = _shares(cols, share_threshold, evidently=True)
    dataset = {"share_drifted": share, "dataset_drift": drift, "n_judged": sum(c.judged for c in cols),
               "evidently_share_drifted": ev_share, "evidently_dataset_drift": ev_drift}
    return [{"bucket": bucket, "column": c.column, "column_type": c.column_type, "method": c.method,
             "method_label": c.method_label, "score": c.score, "threshold": c.threshold, "drifted": c.drifted, "severity": c.severity,
             "n_current": c.n_current, "too_few_rows": c.too_few_rows, "evidently_drifted": c.evidently_drifted,
             "min_rows": c.min_rows, "note": c.note, **dataset} for c in cols]


def share_by_bucket(over_time: pd.DataFrame) -> pd.DataFrame:
    """Per bucket of :func:`drift_over_time`: the share of drifted columns among those with a verdict (NaN
    when none had enough rows), the dataset verdict, how many columns had a verdict, and Evidently's share
    and verdict."""
    cols = ["bucket", *_BUCKET_COLUMNS]
    if over_time.empty:
        return pd.DataFrame(columns=cols)
    return over_time[cols].drop_duplicates("bucket").sort_values("bucket").reset_index(drop=True)


def reference_label(ctx: Context, model: str, reference: Window | str, version: str | None = None) -> str:
    """A readable name of the reference (for captions)."""
    return _reference(ctx, ctx.model(model), reference, version)[0]


def reference_source(ctx: Context, model: str, columns: tuple[str, ...], reference: Window | str = "config",
                     version: str | None = None) -> tuple[str, Source]:
    """The reference drift compares with, as a relation of those ``columns`` it has (the training data is
    materialised first), and its label: for other monitors (data quality) that judge against the same rows."""
    cfg = ctx.model(model)
    label, spec = _reference(ctx, cfg, reference, version)
    _ensure_reference(ctx, cfg, spec)
    if spec.window is not None:
        return label, refq.window_source(ctx.schema(model), spec.window.start, spec.window.end, columns, version,
                                         label=label)
    assert spec.training_version is not None
    with ctx.connect(model) as con:
        stored = refq.materialised_columns(con, cfg.name, spec.training_version) or ()
    have = tuple(c for c in columns if c in stored)
    return label, refq.table_source(cfg.name, spec.training_version, have, label)


# ----------------------------------------------------------------------------- reference and plan

@dataclass(frozen=True)
class _RefSpec:
    window: Window | None = None
    training_version: str | None = None
    frame_loader: Any = None  # callable returning the training DataFrame (only when not materialised)


def _reference(ctx: Context, cfg: ModelConfig, reference: Window | str,
               version: str | None) -> tuple[str, _RefSpec]:
    """Resolve the reference to a window or a training-data version (materialised lazily)."""
    if isinstance(reference, str) and reference == "config":
        reference = configured_reference_window(ctx, cfg.name) or "training"
    if isinstance(reference, Window):
        return f"window {reference.label}", _RefSpec(window=reference)
    if reference != "training":
        w = parse_window(reference)
        return f"window {w.label}", _RefSpec(window=w)
    alias = version or "champion"
    with progress.step(f"looking up {'version ' + alias if version else 'the champion'} in MLflow"):
        info = ctx.registry.resolve(cfg.name, alias)
    label = f"training data of version {info.version}" + (" (champion)" if alias == "champion" else "")

    def load() -> pd.DataFrame:
        return ctx.registry.load_training_data(cfg.name, info.version, cfg.reference.artifact_path)

    return label, _RefSpec(training_version=info.version, frame_loader=load)


def _ensure_reference(ctx: Context, cfg: ModelConfig, spec: _RefSpec) -> None:
    """Copy the training data into DuckDB once per model version (MLflow is read without holding the
    store's file lock)."""
    if spec.training_version is None:
        return
    with ctx.connect(cfg.name) as con:
        if refq.materialised_columns(con, cfg.name, spec.training_version) is not None:
            return
    with progress.step(f"reading the training data of version {spec.training_version} from MLflow"):
        frame = spec.frame_loader()
    types = _all_types(ctx, cfg, None, labels=True)
    with ctx.connect(cfg.name, exclusive=True) as con:
        if refq.materialised_columns(con, cfg.name, spec.training_version) is None:  # not stored meanwhile
            refq.materialise(con, cfg.name, spec.training_version, frame, types)


def _all_types(ctx: Context, cfg: ModelConfig, con: duckdb.DuckDBPyConnection | None,
               labels: bool) -> dict[str, str]:
    types: dict[str, str] = dict(cfg.features)
    types[PREDICTION_COLUMN] = "categorical"
    if labels:
        types[LABEL_COLUMN] = "categorical"
    return types


def _plan(ctx: Context, con: duckdb.DuckDBPyConnection, cfg: ModelConfig, spec: _RefSpec, current: Window,
          version: str | None, bucket: str | None, rows: refq.RowFilter | None = None,
          only: tuple[str, ...] | None = None) -> _Plan:
    schema = ctx.schema(cfg.name)
    have = set(refq.log_columns(con, schema))
    if not have:
        raise VigilError(f"no logs of '{cfg.name}' have been ingested yet; run `vigil ingest --model {cfg.name} "
                         "<files>` (or `vigil demo`) first")
    labels = refq.has_labels(con, cfg.name)
    types = _all_types(ctx, cfg, con, labels)
    if only is not None:
        types = {c: t for c, t in types.items() if c in only}
    missing: dict[str, str] = {}
    for c in list(types):
        if c != LABEL_COLUMN and c not in have:
            missing[c] = "not in the log table"
    if spec.window is not None:
        ref_cols = tuple(c for c in types if c not in missing)
        ref = refq.window_source(schema, spec.window.start, spec.window.end, ref_cols, version,
                                 label=f"window {spec.window.label}", rows=rows)
        n_ref = q.row_count(con, ref.narrow(()))
        if n_ref == 0:
            raise VigilError(f"the reference window {spec.window.label} has no logged predictions for "
                             f"'{cfg.name}'; {_span_hint(ctx, con, cfg.name)}")
        if labels and not _has_values(con, ref, LABEL_COLUMN):
            labels_missing = "no ground truth in the reference window"
            missing[LABEL_COLUMN] = labels_missing
    else:
        assert spec.training_version is not None
        stored = refq.materialised_columns(con, cfg.name, spec.training_version)
        if stored is None:
            raise VigilError(f"the training data of '{cfg.name}' version {spec.training_version} is not "
                             "stored in the log store yet; retry")
        for c in types:
            if c not in stored and c not in missing:
                missing[c] = f"not in the training data of version {spec.training_version}"
        ref_cols = tuple(c for c in types if c not in missing)
        ref = refq.table_source(cfg.name, spec.training_version, ref_cols,
                                label=f"training data v{spec.training_version}")
        n_ref = q.row_count(con, ref.narrow(()))
        if n_ref == 0:
            raise VigilError(f"the training data of '{cfg.name}' version {spec.training_version} has no rows")
    cols = tuple(c for c in types if c not in missing)
    cur = refq.window_source(schema, current.start, current.end, cols, version, bucket=bucket,
                             label=f"window {current.label}", rows=rows)
    return _Plan(ref=ref, cur=cur, types={c: types[c] for c in cols}, missing=missing, n_ref_rows=n_ref)


def _has_values(con: duckdb.DuckDBPyConnection, src: Source, column: str) -> bool:
    return q.row_count(con, src) > q.null_counts(con, src, [column], set())[column]


def _span_hint(ctx: Context, con: duckdb.DuckDBPyConnection, model: str) -> str:
    row = opsq.time_range(con, ctx.schema(model))
    if not row[2]:
        return f"no logs of '{model}' have been ingested yet"
    return f"its logs span {row[0]:%Y-%m-%d %H:%M} to {row[1]:%Y-%m-%d %H:%M} UTC"


# ----------------------------------------------------------------------------- evaluation

def _untested(column: str, ctype: str, plan: _Plan, n_cur: int, note: str, n_ref: int = 0) -> ColumnDrift:
    return ColumnDrift(column, ctype, None, None, None, False, n_ref, n_cur, note)


def _override(cfg: ModelConfig, column: str, ctype: str) -> tuple[str | None, float | None]:
    ov = cfg.drift_overrides.get(column)
    if ov is None:
        return None, None
    if ov.method is not None:
        m = ds.METHODS.get(ov.method)
        if m is None:
            raise VigilError(f"models.{cfg.name}.drift.{column}.method: '{ov.method}' is not one of "
                             f"{', '.join(ds.METHODS)}")
        if (ctype == "numerical" and not m.numerical) or (ctype == "categorical" and not m.categorical):
            raise VigilError(f"models.{cfg.name}.drift.{column}.method: '{ov.method}' does not apply to "
                             f"{ctype} columns")
    return ov.method, ov.threshold


def _evaluate(con: duckdb.DuckDBPyConnection, plan: _Plan, cfg: ModelConfig,
              bucketed: bool) -> dict[pd.Timestamp, list[ColumnDrift]]:
    """Per bucket (one bucket when not bucketed), the drift of every planned column."""
    num = [c for c, t in plan.types.items() if t == "numerical"]
    cat = [c for c, t in plan.types.items() if t == "categorical"]
    min_rows = cfg.thresholds.min_drift_rows
    out: dict[pd.Timestamp, list[ColumnDrift]] = {}
    rows_only = plan.cur.narrow(())
    buckets = [pd.Timestamp(b) for b in q.bucket_counts(con, rows_only if bucketed else
                                                        _bucketless(rows_only))["bucket"]]
    for b in buckets:
        out[b] = []
    # A few columns per set of queries bounds the size of the merged bin tables of many buckets.
    step = len(num) if not bucketed else BUCKETED_COLUMNS_PER_PASS
    chunks = [num[i:i + step] for i in range(0, len(num), max(step, 1))]
    parts = [q.numeric_summary(con, plan.ref.narrow(cs), plan.cur.narrow(cs), cs, bucketed) for cs in chunks]
    rsum, bsum, rcnt, ccnt = (_concat([p[j] for p in parts]) for j in range(4))
    rsum_by: dict[Any, Any] = {r.col: r for r in rsum.itertuples()} if not rsum.empty else {}
    bsum_by: dict[Any, Any] = {(r.col, pd.Timestamp(r.bucket)): r  # type: ignore[arg-type]
                               for r in bsum.itertuples()} if not bsum.empty else {}
    all_counts: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for col in num:
        method_ov, thr_ov = _override(cfg, col, "numerical")
        r = rsum_by.get(col)
        for b in buckets:
            br = bsum_by.get((col, b))
            if r is None:
                out[b].append(_untested(col, "numerical", plan, int(br.n_cur) if br is not None else 0,
                                        "no values in the reference (all missing)"))
                continue
            if br is None:
                out[b].append(_untested(col, "numerical", plan, 0, "no values in the current window "
                                        "(all missing)", n_ref=int(r.n_ref)))
                continue
            n_ref, n_cur = int(r.n_ref), int(br.n_cur)
            u = int(r.u_ref) + int(br.new_values)
            method = method_ov or ds.default_method("numerical", n_ref, u)
            thr = thr_ov if thr_ov is not None else ds.METHODS[method].threshold
            if method == "ks":
                score = ds.ks_pvalue(int(br.ks_num), n_ref, n_cur)
            elif method == "wasserstein":
                score = ds.wasserstein_normed(float(br.w1), float(r.std_ref))
            elif method in ("jensenshannon", "psi") and int(r.u_ref) > 20:
                score = _histogram_score(con, plan, col, method, r, br, b if bucketed else None)
            else:
                if u <= 5:
                    rc = rcnt[rcnt["col"] == col]
                    ccn = ccnt[(ccnt["col"] == col) & (pd.to_datetime(ccnt["bucket"]) == b)]
                else:  # a count-based method asked for on a column with many values: counted once per column
                    if col not in all_counts:
                        all_counts[col] = q.numeric_counts(con, plan.ref.narrow([col]), plan.cur.narrow([col]),
                                                           [col], bucketed)
                    rc, ccall = all_counts[col]
                    ccn = ccall[pd.to_datetime(ccall["bucket"]) == b]
                score = _count_score(method, rc, ccn)
            out[b].append(_scored(col, "numerical", method, score, thr, n_ref, n_cur, min_rows))
    rc_cat, cc_cat = _category_counts(con, plan, cat, bucketed)
    if not cc_cat.empty:
        cc_cat["bucket"] = pd.to_datetime(cc_cat["bucket"])
    for col in cat:
        method_ov, thr_ov = _override(cfg, col, "categorical")
        rc = rc_cat[rc_cat["col"] == col]
        ccol = cc_cat[cc_cat["col"] == col] if not cc_cat.empty else cc_cat
        groups: dict[Any, pd.DataFrame] = dict(tuple(ccol.groupby("bucket"))) if not ccol.empty else {}
        for b in buckets:
            cc: pd.DataFrame | None = groups.get(b)
            n_ref = int(rc["c"].sum())
            if n_ref == 0:
                out[b].append(_untested(col, "categorical", plan, 0 if cc is None else int(cc["c"].sum()),
                                        "no values in the reference (all missing)"))
                continue
            if cc is None or cc.empty:
                out[b].append(_untested(col, "categorical", plan, 0, "no values in the current window "
                                        "(all missing)", n_ref=n_ref))
                continue
            u = len(set(rc["v"]) | set(cc["v"]))
            method = method_ov or ds.default_method("categorical", n_ref, u)
            thr = thr_ov if thr_ov is not None else ds.METHODS[method].threshold
            score = _count_score(method, rc, cc)
            new = sorted(set(cc["v"]) - set(rc["v"]))
            note = f"only in current: {', '.join(map(str, new[:5]))}{' ...' if len(new) > 5 else ''}" if new else ""
            out[b].append(_scored(col, "categorical", method, score, thr, n_ref, int(cc["c"].sum()), min_rows,
                                  note))
    order = {c: i for i, c in enumerate(plan.types)}
    return {b: sorted(cols, key=lambda c: order[c.column]) for b, cols in out.items()}


def _category_counts(con: duckdb.DuckDBPyConnection, plan: _Plan, columns: list[str],
                     bucketed: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value counts of categorical ``columns``; the label, which needs the join to the labels, is counted
    apart from the columns of the log itself (see :meth:`Source.narrow`)."""
    groups = [g for g in ([c for c in columns if c != LABEL_COLUMN], [c for c in columns if c == LABEL_COLUMN]) if g]
    parts = [q.categorical_counts(con, plan.ref.narrow(g), plan.cur.narrow(g), g, bucketed) for g in groups]
    if not parts:
        return q.categorical_counts(con, plan.ref, plan.cur, [], bucketed)
    return _concat([p[0] for p in parts]), _concat([p[1] for p in parts])


def _scored(column: str, ctype: str, method: str, score: float, threshold: float, n_ref: int, n_cur: int,
            min_rows: int, note: str = "") -> ColumnDrift:
    """A tested column: the method's verdict counts only on at least ``min_rows`` current values
    (Evidently's verdict, on any size, stays readable as ``evidently_drifted``)."""
    flagged = ds.METHODS[method].drifted(score, threshold)
    return ColumnDrift(column, ctype, method, score, threshold, flagged and n_cur >= min_rows, n_ref, n_cur,
                       note, min_rows)


def _shares(cols: list[ColumnDrift], threshold: float, evidently: bool = False) -> tuple[float, bool]:
    """Share of drifted columns and the dataset verdict (share >= ``threshold``): by Vigil's verdicts over
    the judged columns, or by Evidently's over every tested one; NaN and False when there is none."""
    pool = [c for c in cols if (c.tested if evidently else c.judged)]
    if not pool:
        return math.nan, False
    share = sum(c.evidently_drifted if evidently else c.drifted for c in pool) / len(pool)
    return share, share >= threshold


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of the column passes as one (empty ones left out; the first kept for its columns)."""
    filled = [f for f in frames if not f.empty]
    if not filled:
        return frames[0] if frames else pd.DataFrame()
    return pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0]


def _bucketless(cur: Source) -> Source:
    return Source(sql=f"SELECT TIMESTAMP '1970-01-01' AS bucket, * FROM ({cur.sql})", params=cur.params,
                  columns=cur.columns, label=cur.label)


def _count_score(method: str, rc: pd.DataFrame, cc: pd.DataFrame) -> float:
    """A count-based test over the union of values (one bin per value, as Evidently bins them)."""
    keys = sorted(set(rc["v"]) | set(cc["v"]))
    rmap: Mapping[Any, int] = dict(zip(rc["v"], rc["c"].astype(int), strict=True))
    cmap: Mapping[Any, int] = dict(zip(cc["v"], cc["c"].astype(int), strict=True))
    r = np.array([rmap.get(k, 0) for k in keys], dtype=float)
    c = np.array([cmap.get(k, 0) for k in keys], dtype=float)
    if method == "chisquare":
        return ds.chisquare_pvalue(r, c)
    if method == "z":
        return ds.z_pvalue(keys, list(r), keys, list(c))
    p, qq = ds.shares(r, c)
    if method == "jensenshannon":
        return ds.jensenshannon_distance(p, qq)
    if method == "psi":
        return ds.psi(p, qq)
    raise VigilError(f"method '{method}' needs numerical values")


def _histogram_score(con: duckdb.DuckDBPyConnection, plan: _Plan, col: str, method: str, r: Any, br: Any,
                     bucket: pd.Timestamp | None) -> float:
    """Jensen-Shannon or PSI over Sturges bins of the pooled range (numerical, > 20 reference values)."""
    lo, hi = min(float(r.vmin_ref), float(br.vmin_cur)), max(float(r.vmax_ref), float(br.vmax_cur))
    edges = ds.sturges_edges(lo, hi, int(r.n_ref) + int(br.n_cur))
    href = q.histogram(con, plan.ref.narrow([col]), col, edges)
    cur = plan.cur.narrow([col])
    if bucket is not None:
        cur = Source(sql=f"SELECT * FROM ({cur.sql}) WHERE bucket = ?", params=(*cur.params, bucket.to_pydatetime()),
                     columns=cur.columns)
        hcur = q.histogram(con, cur, col, edges, bucketed=True)
    else:
        hcur = q.histogram(con, cur, col, edges)
    k = len(edges) - 1
    rv = np.zeros(k)
    cv = np.zeros(k)
    rv[href["bin"].astype(int).to_numpy()] = href["c"].to_numpy()
    cv[hcur["bin"].astype(int).to_numpy()] = hcur["c"].to_numpy()
    p, qq = ds.shares(rv, cv, float(r.n_ref), float(br.n_cur))
    return ds.jensenshannon_distance(p, qq) if method == "jensenshannon" else ds.psi(p, qq)


def _result(cfg: ModelConfig, cols: list[ColumnDrift], n_ref: int, n_cur: int, ref_label: str,
            cur_label: str, version: str | None) -> DriftResult:
    thr = cfg.thresholds.drift_share
    share, drift = _shares(cols, thr)
    return DriftResult(columns=cols, share_drifted=share, dataset_drift=drift, n_reference=n_ref, n_current=n_cur,
                       reference_label=ref_label, current_label=cur_label, drift_share_threshold=thr,
                       model=cfg.name, version=version, min_drift_rows=cfg.thresholds.min_drift_rows)


# ----------------------------------------------------------------------------- distributions (page)

def distribution(ctx: Context, model: str, column: str, current: Window, reference: Window | str = "training",
                 version: str | None = None, bins: int = 30) -> pd.DataFrame:
    """Shares per bin (numerical: equal-width bins over the pooled range) or per category, for both
    sides, computed in SQL. Columns: side ("reference"/"current"), bin (label), left, right, share."""
    cfg = ctx.model(model)
    _, spec = _reference(ctx, cfg, reference, version)
    _ensure_reference(ctx, cfg, spec)
    with ctx.connect(model) as con:
        plan = _plan(ctx, con, cfg, spec, current, version, bucket=None)
        if column not in plan.types:
            raise VigilError(f"'{column}' cannot be compared: {plan.missing.get(column, 'not a drift column')}")
        rows: list[dict[str, Any]] = []
        if plan.types[column] == "numerical":
            ref, cur = plan.ref.narrow([column]), plan.cur.narrow([column])
            rng = q.numeric_range(con, [ref, cur], column)
            if rng is None:
                return pd.DataFrame(columns=["side", "bin", "left", "right", "share"])
            lo, hi = rng
            if lo == hi:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            for side, src in (("reference", ref), ("current", cur)):
                h = q.histogram(con, src, column, edges)
                total = float(h["c"].sum()) or 1.0
                counts = dict(zip(h["bin"].astype(int), h["c"], strict=True))
                for i in range(bins):
                    rows.append({"side": side, "bin": f"{edges[i]:.4g}", "left": float(edges[i]),
                                 "right": float(edges[i + 1]), "share": counts.get(i, 0) / total})
        else:
            rc, cc = q.categorical_counts(con, plan.ref.narrow([column]), plan.cur.narrow([column]), [column])
            for side, df in (("reference", rc), ("current", cc)):
                total = float(df["c"].sum()) or 1.0
                for v, c in zip(df["v"], df["c"], strict=True):
                    rows.append({"side": side, "bin": str(v), "left": None, "right": None, "share": c / total})
    return pd.DataFrame(rows, columns=["side", "bin", "left", "right", "share"])


def result_to_dict(result: DriftResult) -> dict[str, Any]:
    """A JSON-ready view of a result (the CLI's ``--json`` and report metadata)."""
    return {
        "model": result.model, "version": result.version,
        "reference": result.reference_label, "current": result.current_label,
        "n_reference": result.n_reference, "n_current": result.n_current,
        "share_drifted": result.share_drifted, "dataset_drift": result.dataset_drift,
        "drift_share_threshold": result.drift_share_threshold, "verdict": result.verdict,
        "min_drift_rows": result.min_drift_rows, "n_judged": result.n_judged, "n_too_few_rows": result.n_too_few,
        "evidently_share_drifted": result.evidently_share_drifted,
        "evidently_dataset_drift": result.evidently_dataset_drift,
        "columns": [{"column": c.column, "type": c.column_type, "method": c.method, "method_label": c.method_label,
                     "score": c.score, "threshold": c.threshold, "drifted": c.drifted, "verdict": c.verdict,
                     "too_few_rows": c.too_few_rows, "evidently_drifted": c.evidently_drifted,
                     "n_reference": c.n_reference, "n_current": c.n_current, "note": c.note}
                    for c in sorted(result.columns, key=lambda c: (not c.drifted, not c.judged, -c.severity))],
    }


def window_of(value: Window | str | datetime) -> Window:
    """Accept a Window or a "FROM..TO" text (helper for callers holding strings)."""
    if isinstance(value, Window):
        return value
    if isinstance(value, str):
        return parse_window(value)
    raise VigilError(f"'{value}' is not a window")


@dataclass(frozen=True)
class SampledWindows:
    """Row samples of both sides (for tools that need rows, such as Evidently's HTML report)."""

    reference: pd.DataFrame
    current: pd.DataFrame
    types: dict[str, str]
    n_reference: int
    n_current: int
    reference_label: str
    current_label: str


def sample_windows(ctx: Context, model: str, current: Window, reference: Window | str = "training",
                   version: str | None = None, max_rows: int = 20_000, seed: int = 0) -> SampledWindows:
    """Up to ``max_rows`` random rows of each side, with the drift column types of the model."""
    cfg = ctx.model(model)
    ref_label, spec = _reference(ctx, cfg, reference, version)
    _ensure_reference(ctx, cfg, spec)
    with ctx.connect(model) as con:
        plan = _plan(ctx, con, cfg, spec, current, version, bucket=None)
        n_cur = q.row_count(con, plan.cur.narrow(()))
        if n_cur == 0:
            raise VigilError(f"the current window {current.label} has no logged predictions for '{model}'; "
                             + _span_hint(ctx, con, model))
        ref_df = q.sample_frame(con, plan.ref, max_rows, seed)
        cur_df = q.sample_frame(con, plan.cur, max_rows, seed)
    return SampledWindows(ref_df, cur_df, dict(plan.types), plan.n_ref_rows, n_cur, ref_label, current.label)


def log_span(ctx: Context, model: str) -> tuple[datetime | None, datetime | None, list[str]]:
    """First and last logged time and the versions seen (defaults for the page's window pickers)."""
    s = ctx.summary(model)
    return s["first_ts"], s["last_ts"], [str(v) for v in s["versions"]]


def default_windows(first: datetime, last: datetime, days: int = 7) -> tuple[Window, Window]:
    """Reference = the first ``days`` days of the logs, current = the last ``days`` days (whole days)."""
    start = pd.Timestamp(first).normalize().to_pydatetime()
    end = (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).to_pydatetime()
    span = pd.Timedelta(days=days).to_pytimedelta()
    ref_end = min(start + span, end)
    cur_start = max(end - span, start)
    return Window(start, ref_end), Window(cur_start, end)


def configured_reference_window(ctx: Context, model: str) -> Window | None:
    """The model's configured reference window (``[models.M.reference] source = "window"``), or None when
    its reference is the champion's training data: a model without MLflow (a lake read by Spark, logs of
    a model trained elsewhere) has no training data to compare with, so its pages start from the window."""
    ref = ctx.model(model).reference
    if ref.source != "window" or not ref.window:
        return None
    return parse_window(ref.window)


def champion_version(ctx: Context, model: str) -> str:
    """The version the "champion" alias points to (where reports are stored by default)."""
    return ctx.registry.resolve(model, "champion").version
