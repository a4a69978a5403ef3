"""SQL of operations: exact latency quantiles, error rate and volume per time bucket, version or overall.

One GROUP BY per call; DuckDB's ``quantile_cont`` is an exact quantile with linear interpolation between
order statistics (numpy's default ``method="linear"``), so the numbers equal numpy's on the same rows.
Latency statistics use the rows whose ``latency_ms`` is not NULL (errors included: a failed request
also made its caller wait); ``n_latency`` says how many that was.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from connectors.schema import LogSchema

BUCKETS: dict[str, str] = {"hour": "hour", "day": "day"}
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)

#: Columns returned by :func:`latency_stats` besides the grouping keys.
STAT_COLUMNS: tuple[str, ...] = ("n", "n_error", "n_latency", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")


def _filters(start: datetime, end: datetime, version: str | None) -> tuple[str, list[Any]]:
    where = "ts >= ? AND ts < ?"
    params: list[Any] = [start, end]
    if version is not None:
        where += " AND model_version = ?"
        params.append(version)
    return where, params


def latency_stats(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: datetime, end: datetime, *,
                  bucket: str | None = None, by_version: bool = False,
                  version: str | None = None) -> pd.DataFrame:
    """Per group (time ``bucket`` and/or model version, or overall): counts and latency statistics.

    The three quantiles come from one ``quantile_cont(x, [..])`` call, so each group is sorted once.
    """
    exprs: dict[str, str] = {}
    if bucket is not None:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
        exprs["bucket"] = f"date_trunc('{BUCKETS[bucket]}', ts)"
    if by_version:
        exprs["version"] = "model_version"
    where, params = _filters(start, end, version)
    qs = ", ".join(repr(q) for q in QUANTILES)
    inner_keys = "".join(f"{e} AS {a}, " for a, e in exprs.items())
    outer_keys = "".join(f"{a}, " for a in exprs)
    group = "GROUP BY ALL" if exprs else ""
    order = "ORDER BY ALL" if exprs else ""
    sql = f"""
        SELECT {outer_keys}n, n_error, n_latency,
               q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms
        FROM (
            SELECT {inner_keys}count(*) AS n,
                   count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS n_error,
                   count(latency_ms) AS n_latency,
                   quantile_cont(latency_ms, [{qs}]) AS q,
                   avg(latency_ms) AS mean_ms, max(latency_ms) AS max_ms
            FROM {schema.table} WHERE {where} {group}
        ) {order}
    """
    df = con.execute(sql, params).df()
    for col in ("n", "n_error", "n_latency"):
        df[col] = df[col].astype("int64")
    return df


def time_range(con: duckdb.DuckDBPyConnection, schema: LogSchema,
               version: str | None = None) -> tuple[datetime | None, datetime | None, int]:
    """First and last prediction time and row count of the model (optionally one version)."""
    where, params = ("model_version = ?", [version]) if version is not None else ("TRUE", [])
    row = con.execute(f"SELECT min(ts), max(ts), count(*) FROM {schema.table} WHERE {where}", params).fetchone()
    assert row is not None
    return row[0], row[1], int(row[2])


def versions(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: datetime, end: datetime) -> list[str]:
    """Model versions with predictions in ``[start, end)``."""
    rows = con.execute(f"SELECT DISTINCT model_version FROM {schema.table} WHERE ts >= ? AND ts < ? "
                       "ORDER BY 1", [start, end]).fetchall()
    return [str(r[0]) for r in rows]


def hourly_quantiles_sql(table: str) -> str:
    """The benchmark's query shape: hourly p50/p95/p99 over a whole table (kept beside the real one)."""
    qs = ", ".join(repr(q) for q in QUANTILES)
    return (f"SELECT date_trunc('hour', ts) AS bucket, quantile_cont(latency_ms, [{qs}]) AS q "
            f"FROM {table} GROUP BY 1 ORDER BY 1")


__all__: Sequence[str] = ("BUCKETS", "QUANTILES", "STAT_COLUMNS", "latency_stats", "time_range", "versions")
