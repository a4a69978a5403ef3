"""Great Expectations' vocabulary, evaluated inside DuckDB: the same success flag and counts as GX Core 1.x.

Why GX's vocabulary: teams already write their rules as GX expectations; declaring the same rule in
``[[models.<name>.expectations]]`` lets Vigil watch it on every window and bucket of production logs
without moving rows out of the engine. The semantics are GX's (pandas engine), cross-checked in the tests:

* map expectations count over the present values (missing = NULL or NaN; ``not_be_null``/``be_null``
  over every row); ``success`` is ``(considered - unexpected) / considered >= mostly``, and vacuously
  true when nothing is considered; ``unexpected_percent`` is over the considered rows;
* aggregate expectations (``expect_column_mean_to_be_between`` ...) compare the statistic of the
  present values with ``min_value``/``max_value`` (``strict_min``/``strict_max``); no value fails.

A type outside :data:`SUPPORTED`, an unknown keyword or a column missing from the window is reported with
a note and status ``unsupported``/``invalid``/``missing column``: never evaluated, never passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from connectors.queries import data_quality as q
from connectors.queries.reference import Source
from connectors.schema import quote
from dashboard.settings import ExpectationSpec

MAP_KWARGS = ("column", "mostly")
BETWEEN_KWARGS = ("min_value", "max_value", "strict_min", "strict_max")
#: Supported expectation type -> (kind, keyword arguments it takes, what it checks).
SUPPORTED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "expect_column_to_exist": ("exists", ("column",), "the column is in the data"),
    "expect_table_row_count_to_be_between": ("rows", ("min_value", "max_value"), "number of rows within bounds"),
    "expect_column_values_to_not_be_null": ("map_all", MAP_KWARGS, "no missing values (NULL or NaN)"),
    "expect_column_values_to_be_null": ("map_all", MAP_KWARGS, "only missing values"),
    "expect_column_values_to_be_between": ("map", (*MAP_KWARGS, *BETWEEN_KWARGS), "values within bounds"),
    "expect_column_values_to_be_in_set": ("map", (*MAP_KWARGS, "value_set"), "values from a set"),
    "expect_column_values_to_not_be_in_set": ("map", (*MAP_KWARGS, "value_set"), "no value from a set"),
    "expect_column_values_to_match_regex": ("map", (*MAP_KWARGS, "regex"), "values match a regular expression"),
    "expect_column_values_to_not_match_regex": ("map", (*MAP_KWARGS, "regex"), "no value matches a regex"),
    "expect_column_values_to_be_unique": ("unique", MAP_KWARGS, "no value occurs twice"),
    "expect_column_mean_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "mean within bounds"),
    "expect_column_median_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "median within bounds"),
    "expect_column_min_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "minimum within bounds"),
    "expect_column_max_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "maximum within bounds"),
    "expect_column_sum_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "sum within bounds"),
    "expect_column_stdev_to_be_between": ("aggregate", ("column", *BETWEEN_KWARGS), "sample standard deviation "
                                                                                     "within bounds"),
}
_NUMERIC_ONLY = ("between", "mean", "median", "min", "max", "sum", "stdev")
#: Keyword arguments GX adds that change nothing about the verdict.
IGNORED_KWARGS = ("batch_id", "result_format", "catch_exceptions", "meta")


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation on one bucket (or the whole window): GX's success and counts, or why not evaluated."""

    name: str
    expectation_type: str
    column: str | None
    severity: str
    status: str  # pass | fail | unsupported | invalid | missing column
    success: bool | None = None
    element_count: int = 0
    missing_count: int = 0
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: float | None = None
    note: str = ""
    bucket: pd.Timestamp | None = None
    examples: list[tuple[str, int]] = field(default_factory=list)

    @property
    def considered(self) -> int:
        """Rows the verdict rests on (present values for most map expectations)."""
        kind = SUPPORTED.get(self.expectation_type, ("",))[0]
        return self.element_count if kind in ("map_all", "rows", "exists") else self.element_count - self.missing_count

    @property
    def evaluated(self) -> bool:
        return self.success is not None


def problem(spec: ExpectationSpec, columns: Mapping[str, str]) -> tuple[str, str] | None:
    """(status, note) when ``spec`` cannot be evaluated on data with ``columns`` (name -> type), else None."""
    entry = SUPPORTED.get(spec.expectation_type)
    if entry is None:
        return "unsupported", (f"{spec.key or spec.name}: '{spec.expectation_type}' is not supported by Vigil's SQL "
                               f"engine (supported: {', '.join(sorted(SUPPORTED))}); skipped, not passed — run it "
                               "with `vigil quality run` (Great Expectations itself)")
    kind, allowed, _ = entry
    extra = sorted(set(spec.kwargs) - set(allowed) - set(IGNORED_KWARGS))
    if extra:
        return "invalid", f"{spec.key or spec.name}.kwargs: {', '.join(extra)} not supported for {spec.expectation_type}"
    column = spec.column
    if kind != "rows" and column is None:
        return "invalid", f"{spec.key or spec.name}.kwargs.column: required"
    if kind == "exists":
        return None
    if column is not None and column not in columns:
        return "missing column", f"column '{column}' is not in the data ({spec.name})"
    mostly = spec.kwargs.get("mostly", 1.0)
    if not isinstance(mostly, int | float) or isinstance(mostly, bool) or not 0 <= mostly <= 1:
        return "invalid", f"{spec.key or spec.name}.kwargs.mostly: must be between 0 and 1"
    if "value_set" in allowed and not isinstance(spec.kwargs.get("value_set"), list | tuple):
        return "invalid", f"{spec.key or spec.name}.kwargs.value_set: required list of values"
    if "regex" in allowed:
        regex = spec.kwargs.get("regex")
        try:
            re.compile(str(regex))
        except re.error as exc:
            return "invalid", f"{spec.key or spec.name}.kwargs.regex: not a regular expression ({exc})"
        if not isinstance(regex, str):
            return "invalid", f"{spec.key or spec.name}.kwargs.regex: required string"
    if "min_value" in allowed:
        bounds = [spec.kwargs.get("min_value"), spec.kwargs.get("max_value")]
        if all(b is None for b in bounds) or any(b is not None and (not isinstance(b, int | float) or isinstance(b, bool))
                                                 for b in bounds):
            return "invalid", f"{spec.key or spec.name}.kwargs: give min_value and/or max_value as numbers"
    numeric_only = any(w in spec.expectation_type for w in _NUMERIC_ONLY)
    if column is not None and numeric_only and columns.get(column) != "numerical":
        return "invalid", f"{spec.name}: {spec.expectation_type} needs a numerical column, '{column}' is categorical"
    return None


def _map_condition(spec: ExpectationSpec, numeric: bool) -> tuple[str, list[Any]]:
    """SQL condition for an *unexpected* row of a map expectation, and its parameters."""
    column = str(spec.column)
    c, kw, t = quote(column), spec.kwargs, spec.expectation_type
    absent = q.missing(column, numeric)
    if t.endswith("to_not_be_null"):
        return absent, []
    if t.endswith("to_be_null"):
        return f"NOT {absent}", []
    present = f"NOT {absent}"
    if t.endswith("to_be_between"):
        parts, params = [], []
        if kw.get("min_value") is not None:
            parts.append(f"{c} {'<=' if kw.get('strict_min') else '<'} ?::DOUBLE")
            params.append(float(kw["min_value"]))
        if kw.get("max_value") is not None:
            parts.append(f"{c} {'>=' if kw.get('strict_max') else '>'} ?::DOUBLE")
            params.append(float(kw["max_value"]))
        return f"({present} AND ({' OR '.join(parts)}))", params
    if t.endswith("in_set"):
        values = _set_values(kw["value_set"], numeric)
        test = f"{c} IN (SELECT unnest(?::{'DOUBLE' if numeric else 'VARCHAR'}[]))"
        return (f"({present} AND NOT coalesce({test}, false))" if "_to_be_in_set" in t else
                f"({present} AND coalesce({test}, false))"), [values]
    match = f"regexp_matches({c}::VARCHAR, ?)"
    return (f"({present} AND NOT {match})" if "_to_match_regex" in t else f"({present} AND {match})"), [kw["regex"]]


def _set_values(values: Sequence[Any], numeric: bool) -> list[Any]:
    """Members of a value set that can equal a value of the column's type (as in pandas' ``isin``)."""
    if numeric:
        return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return [v for v in values if isinstance(v, str)]


def _between(value: float | None, kw: Mapping[str, Any]) -> bool:
    if value is None or value != value:
        return False
    lo, hi = kw.get("min_value"), kw.get("max_value")
    above = lo is None or (value > lo if kw.get("strict_min") else value >= lo)
    below = hi is None or (value < hi if kw.get("strict_max") else value <= hi)
    return bool(above and below)


def _aggregate_of(expectation_type: str) -> str:
    return expectation_type.removeprefix("expect_column_").removesuffix("_to_be_between")


def evaluate(con: duckdb.DuckDBPyConnection, src: Source, specs: Sequence[ExpectationSpec],
             columns: Mapping[str, str], bucketed: bool = False, examples: bool = True) -> list[ExpectationResult]:
    """Every expectation of ``specs`` on ``src`` (columns: name -> "numerical"|"categorical"), per bucket
    when ``bucketed`` (one result per expectation and bucket), in a handful of queries."""
    runnable: list[ExpectationSpec] = []
    out: list[ExpectationResult] = []
    for spec in specs:
        found = problem(spec, columns)
        if found is None:
            runnable.append(spec)
        else:
            out.append(ExpectationResult(spec.name, spec.expectation_type, spec.column, spec.severity, found[0],
                                         note=found[1]))
    numeric = {c for c, t in columns.items() if t == "numerical"}
    involved = sorted({s.column for s in runnable if s.column and s.column in columns})
    profile = q.column_profile(con, src, involved, numeric, bucketed)
    conditions = {s.name: _map_condition(s, s.column in numeric) for s in runnable
                  if SUPPORTED[s.expectation_type][0] in ("map", "map_all")}
    conditions["__rows__"] = ("TRUE", [])
    counts = q.condition_counts(con, src, conditions, bucketed)
    rows_by = {pd.Timestamp(r.bucket): int(r.c) for r in q.records(counts[counts["key"] == "__rows__"])}
    unexpected = {(str(r.key), pd.Timestamp(r.bucket)): int(r.c) for r in q.records(counts)}
    prof = {(str(r.col), pd.Timestamp(r.bucket)): r for r in q.records(profile)}
    if not bucketed and not rows_by:
        rows_by = {pd.Timestamp("1970-01-01"): 0}
    for spec in runnable:
        kind = SUPPORTED[spec.expectation_type][0]
        if kind == "exists":
            found_col = spec.column in columns
            out.append(ExpectationResult(spec.name, spec.expectation_type, spec.column, spec.severity,
                                         "pass" if found_col else "fail", success=found_col,
                                         note="" if found_col else f"column '{spec.column}' is not in the data"))
            continue
        extra: dict[tuple[str, pd.Timestamp], Any] = {}
        if kind == "unique":
            dup = q.duplicate_counts(con, src, str(spec.column), spec.column in numeric, bucketed)
            extra = {(spec.name, pd.Timestamp(r.bucket)): int(r.c) for r in q.records(dup)}
        elif kind == "aggregate":
            agg = q.column_aggregate(con, src, str(spec.column), _aggregate_of(spec.expectation_type), bucketed)
            extra = {(spec.name, pd.Timestamp(r.bucket)): (None if pd.isna(r.v) else float(r.v)) for r in q.records(agg)}
        for bucket, n in sorted(rows_by.items()):
            p = prof.get((str(spec.column), bucket))
            n_missing = int(p.n_missing) if p is not None else 0
            result = _result(spec, kind, bucket if bucketed else None, n, n_missing,
                             extra.get((spec.name, bucket)) if kind in ("unique", "aggregate")
                             else unexpected.get((spec.name, bucket)))
            out.append(result)
    if examples and not bucketed:
        out = [_with_examples(con, src, r, conditions, numeric) for r in out]
    return out


def _result(spec: ExpectationSpec, kind: str, bucket: pd.Timestamp | None, n: int, n_missing: int,
            measured: Any) -> ExpectationResult:
    """GX's verdict from the counts of one bucket."""
    base: dict[str, Any] = {"name": spec.name, "expectation_type": spec.expectation_type, "column": spec.column,
            "severity": spec.severity, "bucket": bucket, "element_count": n}
    if kind == "rows":
        ok = _between(float(n), spec.kwargs)
        return ExpectationResult(status="pass" if ok else "fail", success=ok, observed_value=float(n), **base)
    if kind == "aggregate":
        ok = _between(measured, spec.kwargs)
        return ExpectationResult(status="pass" if ok else "fail", success=ok, missing_count=n_missing,
                                 observed_value=measured, **base)
    considered = n if kind == "map_all" else n - n_missing
    bad = int(measured or 0)
    mostly = float(spec.kwargs.get("mostly", 1.0))
    ok = True if n == 0 or considered == 0 else (considered - bad) / considered >= mostly
    pct = 100.0 * bad / considered if considered else None
    return ExpectationResult(status="pass" if ok else "fail", success=ok, missing_count=n_missing if kind in ("map", "unique")
                             else 0, unexpected_count=bad, unexpected_percent=pct, **base)


def _with_examples(con: duckdb.DuckDBPyConnection, src: Source, r: ExpectationResult,
                   conditions: Mapping[str, tuple[str, list[Any]]], numeric: set[str]) -> ExpectationResult:
    """Attach the most frequent unexpected values (bounded) to a failed map expectation."""
    if r.success is not False or not r.unexpected_count or r.column is None:
        return r
    if r.name in conditions and not r.expectation_type.endswith("to_not_be_null"):
        cond, params = conditions[r.name]
    elif r.expectation_type.endswith("to_be_unique"):
        col = quote(r.column)
        cond = (f"{col} IN (SELECT {col} FROM ({src.sql}) WHERE NOT {q.missing(r.column, r.column in numeric)} "
                f"GROUP BY {col} HAVING count(*) > 1)")
        params = list(src.params)
    else:
        return r
    top = q.top_values(con, src, r.column, cond, params)
    return ExpectationResult(**{**r.__dict__, "examples": [(str(v), int(c)) for v, c in zip(top["v"], top["c"],
                                                                                               strict=True)]})
