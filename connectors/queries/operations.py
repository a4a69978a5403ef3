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

from connectors.engines.base import engine_function
from connectors.queries import latency_rollup
from connectors.schema import LogSchema

BUCKETS: dict[str, str] = {"hour": "hour", "day": "day"}
QUANTILES = latency_rollup.QUANTILES
#: Columns returned by :func:`latency_stats` besides the grouping keys.
STAT_COLUMNS = latency_rollup.STAT_COLUMNS


def _filters(start: datetime, end: datetime, version: str | None) -> tuple[str, list[Any]]:
    where = "ts >= ? AND ts < ?"
    params: list[Any] = [start, end]
    if version is not None:
        where += " AND model_version = ?"
        params.append(version)
    return where, params


@engine_function
def latency_stats(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: datetime, end: datetime, *,
                  bucket: str | None = None, by_version: bool = False,
                  version: str | None = None, use_rollup: bool = True) -> pd.DataFrame:
    """Per group (time ``bucket`` and/or model version, or overall): counts and latency statistics.

    Per-bucket statistics read the whole buckets from the latency rollup when it is current (see
    :mod:`connectors.queries.latency_rollup`; same SQL, same numbers) and compute the rest live;
    ``use_rollup=False`` computes everything from the rows (benchmarks and tests compare the two).
    """
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    keys = ["bucket"] if bucket is not None else []
    keys += ["version"] if by_version else []
    order = "ORDER BY ALL" if keys else ""
    if bucket is not None and use_rollup and latency_rollup.is_current(con, schema):
        sql, params = latency_rollup.bucketed_sql(schema, BUCKETS[bucket], start, end, by_version=by_version,
                                                  version=version)
        sql = f"SELECT * FROM ({sql}) {order}"
    else:
        exprs: dict[str, str] = {}
        if bucket is not None:
            exprs["bucket"] = f"date_trunc('{BUCKETS[bucket]}', ts)"
        if by_version:
            exprs["version"] = "model_version"
        where, params = _filters(start, end, version)
        group = "GROUP BY ALL" if exprs else ""
        outer_keys = "".join(f"{a}, " for a in exprs)
        sql = (f"SELECT {outer_keys}{latency_rollup.unpack_stats()} FROM (SELECT "
               f"{latency_rollup.stats_select(exprs)} FROM {schema.table} WHERE {where} {group}) {order}")
    df = con.execute(sql, params).df()
    for col in ("n", "n_error", "n_latency"):
        df[col] = df[col].astype("int64")
    return df


@engine_function
def time_range(con: duckdb.DuckDBPyConnection, schema: LogSchema,
               version: str | None = None) -> tuple[datetime | None, datetime | None, int]:
    """First and last prediction time and row count of the model (optionally one version)."""
    where, params = ("model_version = ?", [version]) if version is not None else ("TRUE", [])
    row = con.execute(f"SELECT min(ts), max(ts), count(*) FROM {schema.table} WHERE {where}", params).fetchone()
    assert row is not None
    return row[0], row[1], int(row[2])


@engine_function
def versions(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: datetime, end: datetime) -> list[str]:
    """Model versions with predictions in ``[start, end)``."""
    rows = con.execute(f"SELECT DISTINCT model_version FROM {schema.table} WHERE ts >= ? AND ts < ? "
                       "ORDER BY 1", [start, end]).fetchall()
    return [str(r[0]) for r in rows]


__all__: Sequence[str] = ("BUCKETS", "QUANTILES", "STAT_COLUMNS", "latency_stats", "time_range", "versions")
