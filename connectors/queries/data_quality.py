"""SQL of data quality: missing, unseen, out-of-range and non-finite values, and the counts behind each
expectation, aggregated inside DuckDB per (bucket, column).

Python receives counts per bucket and column, never the rows, except a bounded number of offending
values with their counts (:func:`top_values`). "Missing" follows Great Expectations on pandas: SQL NULL,
and NaN in a numerical column (ingestion stores NaN as NULL; a reference copied from a training frame
may still hold NaN). ±inf is a value, not a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from connectors.engines.base import engine_function
from connectors.queries.reference import Source
from connectors.schema import quote

_EPOCH = "TIMESTAMP '1970-01-01'"
#: Offending values returned per column at most (each with its count).
MAX_EXAMPLES = 5


def records(frame: pd.DataFrame) -> list[Any]:
    """The rows of a small aggregate frame as named tuples (``r.bucket``, ``r.c``)."""
    return list(frame.itertuples())


def with_bucket(src: Source, bucketed: bool) -> str:
    """The relation with a ``bucket`` column (one constant bucket when not bucketed)."""
    return src.sql if bucketed else f"SELECT {_EPOCH} AS bucket, * FROM ({src.sql})"


def missing(column: str, numeric: bool) -> str:
    """SQL condition: the value of ``column`` is missing (NULL, or NaN in a numerical column)."""
    q = quote(column)
    return f"({q} IS NULL OR isnan({q}))" if numeric else f"({q} IS NULL)"


@engine_function
def column_profile(con: duckdb.DuckDBPyConnection, src: Source, columns: Sequence[str], numeric: set[str],
                   bucketed: bool = False) -> pd.DataFrame:
    """Per (bucket, column): rows ``n``, ``n_missing``, ``n_nonfinite`` (±inf) and the finite ``lo``/``hi``."""
    out_cols = ["bucket", "col", "n", "n_missing", "n_nonfinite", "lo", "hi"]
    if not columns:
        return pd.DataFrame(columns=out_cols)
    rel = with_bucket(src, bucketed)
    parts, params = [], []
    for c in columns:
        q = quote(c)
        if c in numeric:
            extra = (f"count(*) FILTER (WHERE isinf({q}))::BIGINT, min({q}) FILTER (WHERE isfinite({q}))::DOUBLE, "
                     f"max({q}) FILTER (WHERE isfinite({q}))::DOUBLE")
        else:
            extra = "0::BIGINT, NULL::DOUBLE, NULL::DOUBLE"
        parts.append(f"SELECT bucket, '{c}' AS col, count(*)::BIGINT AS n, count(*) FILTER (WHERE "
                     f"{missing(c, c in numeric)})::BIGINT AS n_missing, {extra} FROM ({rel}) GROUP BY bucket")
        params += list(src.params)
    df = con.execute(" UNION ALL ".join(parts) + " ORDER BY 1, 2", params).df()
    df.columns = out_cols
    return df


@engine_function
def out_of_range_counts(con: duckdb.DuckDBPyConnection, src: Source,
                        ranges: dict[str, tuple[float | None, float | None]],
                        bucketed: bool = False) -> pd.DataFrame:
    """Per (bucket, column): values (not missing) below ``lo`` or above ``hi`` (inclusive range), as ``c``."""
    if not ranges:
        return pd.DataFrame(columns=["bucket", "col", "c"])
    rel = with_bucket(src, bucketed)
    parts, params = [], []
    for c, (lo, hi) in ranges.items():
        parts.append(f"SELECT bucket, '{c}' AS col, count(*) FILTER (WHERE {outside_condition(c)})::BIGINT AS c "
                     f"FROM ({rel}) GROUP BY bucket")
        params += [lo, hi, *src.params]
    return con.execute(" UNION ALL ".join(parts) + " ORDER BY 1, 2", params).df()


def outside_condition(column: str) -> str:
    """SQL condition (two parameters: low, high; NULL = unbounded): a present value outside [low, high]."""
    q = quote(column)
    return f"(NOT {missing(column, True)} AND ({q} < ?::DOUBLE OR {q} > ?::DOUBLE))"


def unseen_condition(column: str, ref: Source) -> tuple[str, list[Any]]:
    """SQL condition (and its parameters): a present category that the reference never has."""
    q = quote(column)
    return (f"({q} IS NOT NULL AND {q}::VARCHAR NOT IN (SELECT DISTINCT {q}::VARCHAR FROM ({ref.sql}) "
            f"WHERE {q} IS NOT NULL))", list(ref.params))


@engine_function
def condition_counts(con: duckdb.DuckDBPyConnection, src: Source, conditions: dict[str, tuple[str, list[Any]]],
                     bucketed: bool = False) -> pd.DataFrame:
    """Per (bucket, key): rows meeting each named condition (``conditions``: key -> (SQL, parameters)), as ``c``."""
    if not conditions:
        return pd.DataFrame(columns=["bucket", "key", "c"])
    rel = with_bucket(src, bucketed)
    parts, params = [], []
    for i, (key, (cond, cond_params)) in enumerate(conditions.items()):
        parts.append(f"SELECT bucket, ?::VARCHAR AS key, count(*) FILTER (WHERE {cond})::BIGINT AS c, {i} AS k "
                     f"FROM ({rel}) GROUP BY bucket")
        params += [key, *cond_params, *src.params]
    return con.execute(f"SELECT bucket, key, c FROM ({' UNION ALL '.join(parts)}) ORDER BY bucket, k", params).df()


@engine_function
def duplicate_counts(con: duckdb.DuckDBPyConnection, src: Source, column: str, numeric: bool,
                     bucketed: bool = False) -> pd.DataFrame:
    """Per bucket: present values of ``column`` that occur more than once (every occurrence counted), as ``c``."""
    q = quote(column)
    rel = with_bucket(src, bucketed)
    return con.execute(f"""
        SELECT bucket, coalesce(sum(k) FILTER (WHERE k > 1), 0)::BIGINT AS c FROM (
            SELECT bucket, {q}, count(*) AS k FROM ({rel}) WHERE NOT {missing(column, numeric)} GROUP BY bucket, {q})
        GROUP BY bucket ORDER BY bucket""", list(src.params)).df()


AGGREGATES: dict[str, str] = {"mean": "avg", "median": "median", "min": "min", "max": "max", "sum": "sum",
                              "stdev": "stddev_samp"}


@engine_function
def column_aggregate(con: duckdb.DuckDBPyConnection, src: Source, column: str, aggregate: str,
                     bucketed: bool = False) -> pd.DataFrame:
    """Per bucket: ``aggregate`` (mean, median, min, max, sum, stdev) of the present values of ``column``, as ``v``."""
    q = quote(column)
    fn = AGGREGATES[aggregate]
    rel = with_bucket(src, bucketed)
    return con.execute(f"SELECT bucket, {fn}({q}) FILTER (WHERE NOT {missing(column, True)})::DOUBLE AS v "
                       f"FROM ({rel}) GROUP BY bucket ORDER BY bucket", list(src.params)).df()


@engine_function
def top_values(con: duckdb.DuckDBPyConnection, src: Source, column: str, condition: str, params: list[Any],
               limit: int = MAX_EXAMPLES) -> pd.DataFrame:
    """The most frequent values of ``column`` meeting ``condition`` (at most ``limit``), as text ``v`` and
    count ``c``: the only row-level values a data-quality result carries."""
    q = quote(column)
    return con.execute(f"SELECT {q}::VARCHAR AS v, count(*)::BIGINT AS c FROM ({src.sql}) WHERE {condition} "
                       f"GROUP BY 1 ORDER BY c DESC, v LIMIT {int(limit)}", [*src.params, *params]).df()


@engine_function
def sample_rows(con: duckdb.DuckDBPyConnection, src: Source, rows: int, seed: int = 0) -> pd.DataFrame:
    """A uniform sample of at most ``rows`` rows of ``src`` (reservoir sampling, repeatable by ``seed``),
    for running a Great Expectations suite on a stated sample."""
    return con.execute(f"SELECT * FROM ({src.sql}) USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({int(seed)})",
                       list(src.params)).df()
