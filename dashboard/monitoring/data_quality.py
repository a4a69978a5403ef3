"""Data quality of a model's inputs: missing, unseen and out-of-range values, non-finite numbers, and the
configured expectations, per window and per time bucket, computed inside DuckDB.

Why next to drift: a feature that starts arriving 25% null, a category never seen in training or an
amount outside anything trained on breaks a model without being a drift verdict (drift drops missing
values and compares shapes). Each monitor compares the window with the model's reference (the same one
drift uses: the champion's training data, or the configured window):

* ``missing``: share of rows with NULL/NaN; fails when it exceeds the reference's share by more than
  ``quality.missing_share_increase``;
* ``unseen``: share of present values of a categorical column that the reference never has;
* ``out_of_range``: share of present values of a numerical column outside ``quality.bounds`` or else the
  reference's finite [min, max] (±inf is outside);
* ``type_violations``: share of ±inf in a numerical column (text in a numerical column never reaches the
  store: ingestion rejects the file; NaN is stored as missing), any fails.

A monitor on fewer than ``quality.min_rows`` rows (present values for unseen/out-of-range) shows its
value but has no verdict ("too few rows"). Protected attributes that are not model features have no
training reference: their missing share is compared with 0, and their range only with ``bounds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from connectors.queries import data_quality as q
from connectors.queries import reference as refq
from connectors.queries.reference import Source
from connectors.schema import quote
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring import expectations as ex
from dashboard.monitoring.drift import reference_source
from dashboard.settings import ModelConfig

MONITORS: tuple[str, ...] = ("missing", "unseen", "out_of_range", "type_violations")
PASS, FAIL, TOO_FEW, NOT_APPLICABLE, MISSING_COLUMN = "pass", "fail", "too few rows", "not applicable", "missing column"


@dataclass(frozen=True)
class MonitorResult:
    """One monitor on one column in one bucket (or the whole window)."""

    column: str
    column_type: str
    monitor: str
    status: str
    value: float | None = None  # the share measured
    count: int = 0  # offending rows
    rows: int = 0  # rows the share is over
    threshold: float | None = None  # the share (or, for missing, the reference share + increase) it may reach
    reference_value: float | None = None
    note: str = ""
    bucket: pd.Timestamp | None = None
    examples: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class DataQualityResult:
    """Every monitor and expectation of a model on one window."""

    model: str
    version: str | None
    window_label: str
    reference_label: str
    n_rows: int
    min_rows: int
    monitors: list[MonitorResult]
    expectations: list[ex.ExpectationResult]

    @property
    def failures(self) -> list[str]:
        """Names of the failing checks (``column: monitor`` and expectation names)."""
        return ([f"{m.column}: {m.monitor}" for m in self.monitors if m.status == FAIL]
                + [e.name for e in self.expectations if e.status != PASS])

    def monitor(self, column: str, monitor: str) -> MonitorResult | None:
        return next((m for m in self.monitors if m.column == column and m.monitor == monitor), None)

    def frame(self) -> pd.DataFrame:
        """One row per check: column, check, status, value, threshold, rows, detail (examples as text)."""
        rows = [{"column": m.column, "check": m.monitor, "status": m.status, "value": m.value,
                 "threshold": m.threshold, "rows": m.rows, "count": m.count, "detail": m.note,
                 "examples": _examples_text(m.examples)} for m in self.monitors]
        rows += [{"column": e.column or "(table)", "check": e.name, "status": e.status,
                  "value": e.observed_value if e.unexpected_percent is None else e.unexpected_percent / 100,
                  "threshold": None, "rows": e.considered, "count": e.unexpected_count or 0, "detail": e.note,
                  "examples": _examples_text(e.examples)} for e in self.expectations]
        return pd.DataFrame(rows, columns=["column", "check", "status", "value", "threshold", "rows", "count",
                                           "detail", "examples"])


def _examples_text(examples: list[tuple[str, int]]) -> str:
    return ", ".join(f"{v} ({c:,})" for v, c in examples)


# ----------------------------------------------------------------------------------- public API

@progress.step("data quality: missing, unseen, out-of-range values")
def compute_data_quality(ctx: Context, model: str, window: Window, version: str | None = None,
                         reference: Window | str = "config", examples: bool = True) -> DataQualityResult:
    """Monitors and expectations of ``model`` on ``window`` (one version's logs when given)."""
    cfg = ctx.model(model)
    with ctx.connect(model) as con:
        columns, absent = _columns(ctx, con, cfg)
    ref_label, ref = reference_source(ctx, model, tuple(columns), reference, version)
    with ctx.connect(model) as con:
        cur = refq.window_source(ctx.schema(model), window.start, window.end, tuple(columns), version)
        n = int(q.condition_counts(con, cur, {"rows": ("TRUE", [])})["c"].sum())
        if n == 0:
            raise VigilError(f"the window {window.label} has no logged predictions for '{model}'"
                             + (f" version {version}" if version else "") + "; pick a window with traffic")
        monitors = _monitors(con, cfg, columns, absent, ref, cur, bucketed=False, examples=examples)
        results = ex.evaluate(con, cur, cfg.expectations, columns, bucketed=False, examples=examples)
    return DataQualityResult(model, version, window.label, ref_label, n, cfg.quality.min_rows, monitors, results)


def data_quality_over_time(ctx: Context, model: str, window: Window, bucket: str = "day",
                           version: str | None = None, reference: Window | str = "config") -> pd.DataFrame:
    """Status of every monitor and expectation per ``bucket`` ("day" or "hour") of ``window``: one row per
    (bucket, column, check) with status, value, rows and detail; in one set of queries for all buckets."""
    if bucket not in refq.BUCKET_UNITS:
        raise VigilError(f"bucket must be one of {', '.join(refq.BUCKET_UNITS)}, not '{bucket}'")
    cfg = ctx.model(model)
    with ctx.connect(model) as con:
        columns, absent = _columns(ctx, con, cfg)
    _, ref = reference_source(ctx, model, tuple(columns), reference, version)
    with ctx.connect(model) as con:
        cur = refq.window_source(ctx.schema(model), window.start, window.end, tuple(columns), version, bucket=bucket)
        monitors = _monitors(con, cfg, columns, absent, ref, cur, bucketed=True, examples=False)
        results = ex.evaluate(con, cur, cfg.expectations, columns, bucketed=True, examples=False)
    rows = [{"bucket": m.bucket, "column": m.column, "check": m.monitor, "status": m.status, "value": m.value,
             "rows": m.rows, "detail": m.note} for m in monitors if m.bucket is not None]
    rows += [{"bucket": e.bucket, "column": e.column or "(table)", "check": e.name, "status": e.status,
              "value": e.observed_value if e.unexpected_percent is None else e.unexpected_percent / 100,
              "rows": e.considered, "detail": e.note} for e in results if e.bucket is not None]
    return pd.DataFrame(rows, columns=["bucket", "column", "check", "status", "value", "rows", "detail"])


# ----------------------------------------------------------------------------------- internals

def _columns(ctx: Context, con: duckdb.DuckDBPyConnection, cfg: ModelConfig) -> tuple[dict[str, str], list[str]]:
    """The model's features and protected attributes present in the log table (name -> type), and those absent."""
    schema = ctx.schema(cfg.name)
    have = set(refq.log_columns(con, schema))
    if not have:
        raise VigilError(f"no logs of '{cfg.name}' have been ingested yet; run `vigil ingest --model {cfg.name} "
                         "<files>` (or `vigil demo`) first")
    present = {c: t for c, t in schema.columns.items() if c in have}
    return present, [c for c in schema.columns if c not in have]


def _monitors(con: duckdb.DuckDBPyConnection, cfg: ModelConfig, columns: dict[str, str], absent: list[str],
              ref: Source, cur: Source, bucketed: bool, examples: bool) -> list[MonitorResult]:
    qs = cfg.quality
    numeric = {c for c, t in columns.items() if t == "numerical"}
    ref_cols = [c for c in columns if c in ref.columns]
    ref_prof = {str(r.col): r for r in q.records(q.column_profile(con, ref, ref_cols, numeric))}
    cur_prof = q.column_profile(con, cur, list(columns), numeric, bucketed)
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for c in sorted(numeric):
        if c in qs.bounds:
            ranges[c] = qs.bounds[c]
        elif c in ref_prof and ref_prof[c].lo is not None and not pd.isna(ref_prof[c].lo):
            ranges[c] = (float(ref_prof[c].lo), float(ref_prof[c].hi))
    outside = {(str(r.col), pd.Timestamp(r.bucket)): int(r.c)
               for r in q.records(q.out_of_range_counts(con, cur, ranges, bucketed))}
    unseen_cond = {c: q.unseen_condition(c, ref) for c in columns if c not in numeric and c in ref_prof}
    unseen = {(str(r.key), pd.Timestamp(r.bucket)): int(r.c)
              for r in q.records(q.condition_counts(con, cur, unseen_cond, bucketed))}
    out: list[MonitorResult] = []
    for r in q.records(cur_prof):
        col, b = str(r.col), pd.Timestamp(r.bucket)
        bucket = b if bucketed else None
        n, n_missing, present = int(r.n), int(r.n_missing), int(r.n) - int(r.n_missing)
        ctype = columns[col]
        ref_r = ref_prof.get(col)
        ref_share = (int(ref_r.n_missing) / int(ref_r.n)) if ref_r is not None and int(ref_r.n) else None
        base = ref_share or 0.0
        limit = base + qs.missing_share_increase
        note = "" if ref_r is not None else "no reference column: compared with 0"
        out.append(_judged(col, ctype, "missing", n_missing, n, limit, qs.min_rows, bucket, ref_share, note))
        if ctype == "numerical":
            if col in ranges:
                lo, hi = ranges[col]
                how = "quality.bounds" if col in qs.bounds else "the reference's range"
                out.append(_judged(col, ctype, "out_of_range", outside.get((col, b), 0), present,
                                   qs.out_of_range_share, qs.min_rows, bucket,
                                   note=f"outside [{_num(lo)}, {_num(hi)}] ({how})"))
            else:
                out.append(MonitorResult(col, ctype, "out_of_range", NOT_APPLICABLE, bucket=bucket,
                                         note="no reference values and no quality.bounds for this column"))
            out.append(_judged(col, ctype, "type_violations", int(r.n_nonfinite), n, 0.0, qs.min_rows, bucket,
                               note="±inf in a numerical column"))
        elif col in unseen_cond:
            out.append(_judged(col, ctype, "unseen", unseen.get((col, b), 0), present, qs.unseen_share,
                               qs.min_rows, bucket, note="categories the reference never has"))
        else:
            out.append(MonitorResult(col, ctype, "unseen", NOT_APPLICABLE, bucket=bucket,
                                     note="not in the reference, so nothing to compare the categories with"))
    for col in absent:
        out.append(MonitorResult(col, cfg.features.get(col, "categorical"), "missing", MISSING_COLUMN,
                                 note=f"column '{col}' is not in the log table"))
    if examples:
        out = [_with_examples(con, cur, m, ranges, unseen_cond) for m in out]
    return out


def _judged(col: str, ctype: str, monitor: str, count: int, rows: int, threshold: float, min_rows: int,
            bucket: pd.Timestamp | None, reference_value: float | None = None, note: str = "") -> MonitorResult:
    """A share with its verdict: fail above ``threshold``, no verdict on fewer than ``min_rows`` rows."""
    value = count / rows if rows else None
    no_verdict = value is None or rows < min_rows
    status = TOO_FEW if no_verdict else FAIL if value is not None and value > threshold + 1e-12 else PASS
    return MonitorResult(col, ctype, monitor, status, value, count, rows, threshold, reference_value, note, bucket)


def _num(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


def _with_examples(con: duckdb.DuckDBPyConnection, cur: Source, m: MonitorResult,
                   ranges: dict[str, tuple[float | None, float | None]],
                   unseen_cond: dict[str, tuple[str, list[Any]]]) -> MonitorResult:
    """The most frequent offending values (bounded) of an unseen or out-of-range monitor with offenders."""
    if not m.count:
        return m
    if m.monitor == "unseen":
        cond, params = unseen_cond[m.column]
    elif m.monitor == "out_of_range" and m.column in ranges:
        cond, params = q.outside_condition(m.column), list(ranges[m.column])
    elif m.monitor == "type_violations":
        cond, params = f"isinf({quote(m.column)})", []
    else:
        return m
    top = q.top_values(con, cur, m.column, cond, params)
    return MonitorResult(**{**m.__dict__, "examples": [(str(v), int(c)) for v, c in zip(top["v"], top["c"],
                                                                                          strict=True)]})
