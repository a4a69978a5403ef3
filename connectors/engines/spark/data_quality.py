"""Spark counterparts of :mod:`connectors.queries.data_quality`: the counts behind the monitors and
expectations, per (bucket, column), over the lake table read in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from connectors.engines.spark.drift import finite
from connectors.engines.spark.same import same_sql
from connectors.engines.spark.session import SparkHandle
from connectors.queries import data_quality as q
from connectors.queries.reference import Source
from connectors.schema import quote

out_of_range_counts = same_sql(q.out_of_range_counts)
duplicate_counts = same_sql(q.duplicate_counts)
column_aggregate = same_sql(q.column_aggregate)
top_values = same_sql(q.top_values)


def column_profile(con: SparkHandle, src: Source, columns: Sequence[str], numeric: set[str],
                   bucketed: bool = False) -> pd.DataFrame:
    out_cols = ["bucket", "col", "n", "n_missing", "n_nonfinite", "lo", "hi"]
    if not columns:
        return pd.DataFrame(columns=out_cols)
    rel = q.with_bucket(src, bucketed)
    parts, params = [], []
    for c in columns:
        qc = quote(c)
        if c in numeric:
            extra = (f"count(*) FILTER (WHERE abs({qc}) = 'Infinity'::DOUBLE), "
                     f"CAST(min({qc}) FILTER (WHERE {finite(qc)}) AS DOUBLE), "
                     f"CAST(max({qc}) FILTER (WHERE {finite(qc)}) AS DOUBLE)")
        else:
            extra = "CAST(0 AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE)"
        parts.append(f"SELECT bucket, '{c}' AS col, count(*) AS n, count(*) FILTER (WHERE "
                     f"{q.missing(c, c in numeric)}) AS n_missing, {extra} FROM ({rel}) GROUP BY bucket")
        params += list(src.params)
    df = con.df(" UNION ALL ".join(parts) + " ORDER BY 1, 2", params)
    df.columns = out_cols
    return df


def condition_counts(con: SparkHandle, src: Source, conditions: dict[str, tuple[str, list[Any]]],
                     bucketed: bool = False) -> pd.DataFrame:
    """One filtered count per condition (Spark allows a subquery, as in "unseen", in WHERE only), over
    the buckets the relation has (zero where none match)."""
    if not conditions:
        return pd.DataFrame(columns=["bucket", "key", "c"])
    rel = q.with_bucket(src, bucketed)
    parts, params = [], []
    for i, (key, (cond, cond_params)) in enumerate(conditions.items()):
        parts.append(f"SELECT b.bucket, ?::STRING AS key, coalesce(h.c, 0) AS c, {i} AS k FROM buckets b "
                     f"LEFT JOIN (SELECT bucket, count(*) AS c FROM ({rel}) WHERE {cond} GROUP BY bucket) h "
                     "ON b.bucket = h.bucket")
        params += [key, *src.params, *cond_params]
    sql = (f"WITH buckets AS (SELECT DISTINCT bucket FROM ({rel})) "
           f"SELECT bucket, key, c FROM ({' UNION ALL '.join(parts)}) ORDER BY bucket, k")
    return con.df(sql, [*src.params, *params])


def sample_rows(con: SparkHandle, src: Source, rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``rows`` rows in a seeded random order (another sample than DuckDB's reservoir)."""
    return con.df(f"SELECT * FROM ({src.sql}) ORDER BY rand({int(seed)}) LIMIT {int(rows)}", list(src.params))
