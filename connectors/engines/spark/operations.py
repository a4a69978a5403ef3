"""Spark counterparts of :mod:`connectors.queries.operations`: exact latency quantiles in one GROUP BY.

Spark's ``percentile`` is exact with linear interpolation between order statistics, as DuckDB's
``quantile_cont``; there is no rollup (every bucket is computed from the rows, which a cluster
parallelises by group).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from connectors.engines.spark.session import SparkHandle
from connectors.queries import latency_rollup
from connectors.queries.operations import BUCKETS, _filters
from connectors.schema import LogSchema

_LAT = latency_rollup.LATENCY


def _stats() -> str:
    qs = ", ".join(repr(q) for q in latency_rollup.QUANTILES)
    return (f"count(*) AS n, count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS n_error, "
            f"count({_LAT}) AS n_latency, percentile({_LAT}, array({qs})) AS q, avg({_LAT}) AS mean_ms, "
            f"max({_LAT}) AS max_ms")


def latency_stats(con: SparkHandle, schema: LogSchema, start: datetime, end: datetime, *,
                  bucket: str | None = None, by_version: bool = False,
                  version: str | None = None, use_rollup: bool = True) -> pd.DataFrame:
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    exprs: dict[str, str] = {}
    if bucket is not None:
        exprs["bucket"] = f"date_trunc('{BUCKETS[bucket]}', ts)"
    if by_version:
        exprs["version"] = "model_version"
    where, params = _filters(start, end, version)
    keys = "".join(f"{e} AS {a}, " for a, e in exprs.items())
    group = f"GROUP BY {', '.join(exprs.values())}" if exprs else ""
    outer = "".join(f"{a}, " for a in exprs)
    order = f"ORDER BY {', '.join(exprs)}" if exprs else ""
    sql = (f"SELECT {outer}n, n_error, n_latency, q[0] AS p50_ms, q[1] AS p95_ms, q[2] AS p99_ms, mean_ms, max_ms "
           f"FROM (SELECT {keys}{_stats()} FROM {schema.table} WHERE {where} {group}) {order}")
    df = con.df(sql, params)
    for col in ("n", "n_error", "n_latency"):
        df[col] = df[col].astype("int64")
    return df


def time_range(con: SparkHandle, schema: LogSchema,
               version: str | None = None) -> tuple[datetime | None, datetime | None, int]:
    where, params = ("model_version = ?", [version]) if version is not None else ("TRUE", [])
    row = con.rows(f"SELECT min(ts), max(ts), count(*) FROM {schema.table} WHERE {where}", params)[0]
    return row[0], row[1], int(row[2])


def versions(con: SparkHandle, schema: LogSchema, start: datetime, end: datetime) -> list[str]:
    rows = con.rows(f"SELECT DISTINCT model_version FROM {schema.table} WHERE ts >= ? AND ts < ? ORDER BY 1",
                    [start, end])
    return [str(r[0]) for r in rows]


__all__: Any = ("latency_stats", "time_range", "versions")
