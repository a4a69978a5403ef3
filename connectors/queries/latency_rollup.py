"""Latency rollup: exact per-hour and per-day latency statistics kept beside each model's log table.

Why: an exact quantile needs every row of its bucket, so recomputing 720 hourly groups over 10M rows costs
about 0.2 s of a page view, every view. Logs only ever grow, and a closed hour's quantiles never change, so
ingestion computes them once, with the very SQL a live query would run, for the buckets each batch touches
(inside the batch's transaction: a failed ingest leaves the rollup as it was). Readers take the buckets that
lie wholly inside their window from the rollup and compute only the partial buckets at the window's edges
live. The numbers are therefore identical to a live computation, never approximations.

Safety: the rollup records the log table's row count when it was last made consistent, and the version of
the statistics' definition (:data:`DEFINITION`) it was computed with. A reader that finds another count (rows
written without going through ingestion) or an older definition ignores the rollup and computes live; the
next ingestion rebuilds it in full.

Missing latencies: NULL and NaN ``latency_ms`` are both missing (left out of every statistic and of
``n_latency``); NaN only reaches the table from stores written before ingestion turned it into NULL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from connectors.engines.base import state_function
from connectors.schema import LogSchema, nan_as_null

ROLLUP_TABLE = "latency_rollup"
STATE_TABLE = "latency_rollup_state"
GRAINS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
#: Statistics of one group, in output order (the rollup stores exactly these).
STAT_COLUMNS: tuple[str, ...] = ("n", "n_error", "n_latency", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
#: Version of the statistics' SQL; a rollup made with another one is rebuilt (2: NaN latency is missing).
DEFINITION = 2
#: The latency of a row, NaN read as missing.
LATENCY = nan_as_null("latency_ms")

_DDL = (
    f"CREATE TABLE IF NOT EXISTS {ROLLUP_TABLE} (model VARCHAR NOT NULL, grain VARCHAR NOT NULL, "
    "by_version BOOLEAN NOT NULL, bucket TIMESTAMP NOT NULL, version VARCHAR, n BIGINT, n_error BIGINT, "
    "n_latency BIGINT, p50_ms DOUBLE, p95_ms DOUBLE, p99_ms DOUBLE, mean_ms DOUBLE, max_ms DOUBLE)",
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (model VARCHAR PRIMARY KEY, log_rows BIGINT NOT NULL, "
    "refreshed_at TIMESTAMP NOT NULL, definition INTEGER)",
    f"ALTER TABLE {STATE_TABLE} ADD COLUMN IF NOT EXISTS definition INTEGER",  # stores made before it existed
)


def stats_select(keys: dict[str, str]) -> str:
    """``SELECT`` list of the grouping ``keys`` (alias -> expression) and the statistics of each group.

    The three quantiles come from one ``quantile_cont(x, [..])`` call, so each group is sorted once.
    """
    qs = ", ".join(repr(q) for q in QUANTILES)
    inner_keys = "".join(f"{e} AS {a}, " for a, e in keys.items())
    return (f"{inner_keys}count(*) AS n, count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS n_error, "
            f"count({LATENCY}) AS n_latency, quantile_cont({LATENCY}, [{qs}]) AS q, "
            f"avg({LATENCY}) AS mean_ms, max({LATENCY}) AS max_ms")


def unpack_stats() -> str:
    """Outer ``SELECT`` list that turns :func:`stats_select`'s quantile list into named columns."""
    return "n, n_error, n_latency, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms"


@state_function
def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in _DDL:
        con.execute(ddl)


def _log_rows(con: duckdb.DuckDBPyConnection, schema: LogSchema) -> int:
    return int(con.execute(f"SELECT count(*) FROM {schema.table}").fetchone()[0])  # type: ignore[index]


def _recorded_rows(con: duckdb.DuckDBPyConnection, model: str) -> int | None:
    """The log rows the rollup was made consistent with, or None when it is missing or of an older definition."""
    row = con.execute(f"SELECT log_rows FROM {STATE_TABLE} WHERE model = ? AND definition = ?",
                      [model, DEFINITION]).fetchone()
    return None if row is None else int(row[0])


def _insert_groups(con: duckdb.DuckDBPyConnection, schema: LogSchema, grain: str, where: str,
                   params: list[Any]) -> None:
    bucket = f"date_trunc('{grain}', ts)"
    for by_version in (False, True):
        keys = {"bucket": bucket, "version": "model_version" if by_version else "NULL::VARCHAR"}
        con.execute(
            f"INSERT INTO {ROLLUP_TABLE} SELECT ? AS model, ? AS grain, ? AS by_version, bucket, version, "
            f"{unpack_stats()} FROM (SELECT {stats_select(keys)} FROM {schema.table} WHERE {where} "
            "GROUP BY ALL)", [schema.model, grain, by_version, *params])


@state_function
def refresh(con: duckdb.DuckDBPyConnection, schema: LogSchema, ingest_id: int | None = None) -> None:
    """Bring the model's rollup up to date after rows with ``ingest_id`` were added (call inside that
    transaction). Recomputes only the buckets those rows fall in, unless the rollup was not consistent
    with the table before them (or ``ingest_id`` is None): then it rebuilds everything."""
    ensure_tables(con)
    rows_now = _log_rows(con, schema)
    recorded = _recorded_rows(con, schema.model)
    added = 0
    if ingest_id is not None:
        added = int(con.execute(f"SELECT count(*) FROM {schema.table} WHERE ingest_id = ?",
                                [ingest_id]).fetchone()[0])  # type: ignore[index]
    span = (None, None)
    if ingest_id is not None and added:
        span = con.execute(f"SELECT min(ts), max(ts) FROM {schema.table} WHERE ingest_id = ?",
                           [ingest_id]).fetchone()  # type: ignore[assignment]
    incremental = (ingest_id is not None and recorded is not None and recorded == rows_now - added
                   and (not added or span[0] is not None))
    if not incremental:
        con.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE model = ?", [schema.model])
        for grain in GRAINS:
            _insert_groups(con, schema, grain, "ts IS NOT NULL", [])
    elif added:
        lo, hi = span
        assert lo is not None and hi is not None
        for grain, step in GRAINS.items():
            touched = (f"date_trunc('{grain}', ts) IN (SELECT DISTINCT date_trunc('{grain}', ts) "
                       f"FROM {schema.table} WHERE ingest_id = ?)")
            con.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE model = ? AND grain = ? AND bucket IN "
                        f"(SELECT DISTINCT date_trunc('{grain}', ts) FROM {schema.table} WHERE ingest_id = ?)",
                        [schema.model, grain, ingest_id])
            # The ts range lets DuckDB skip row groups outside the batch's span before bucketing.
            _insert_groups(con, schema, grain, f"ts >= ? AND ts < ? AND {touched}",
                           [floor(lo, grain), floor(hi, grain) + step, ingest_id])
    con.execute(f"INSERT OR REPLACE INTO {STATE_TABLE} (model, log_rows, refreshed_at, definition) "
                "VALUES (?, ?, now()::TIMESTAMP, ?)", [schema.model, rows_now, DEFINITION])


@state_function
def is_current(con: duckdb.DuckDBPyConnection, schema: LogSchema) -> bool:
    """Whether the rollup describes exactly the rows the log table holds now."""
    exists = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = ? "
                         "AND column_name = 'definition'", [STATE_TABLE]).fetchone()[0]  # type: ignore[index]
    return bool(exists) and _recorded_rows(con, schema.model) == _log_rows(con, schema)


def floor(ts: datetime, grain: str) -> datetime:
    """Start of the ``grain`` bucket holding ``ts`` (what ``date_trunc`` gives in SQL)."""
    ts = ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0) if grain == "day" else ts


def ceil(ts: datetime, grain: str) -> datetime:
    """Start of the first ``grain`` bucket that begins at or after ``ts``."""
    down = floor(ts, grain)
    return down if down == ts else down + GRAINS[grain]


def bucketed_sql(schema: LogSchema, grain: str, start: datetime, end: datetime, *, by_version: bool,
                 version: str | None) -> tuple[str, list[Any]]:
    """SQL (and parameters) for per-bucket statistics over ``[start, end)``: rollup rows for the whole
    buckets inside the window, a live ``GROUP BY`` for the partial buckets at its edges.

    The caller checks :func:`is_current` first. Output columns: ``bucket``, ``version`` when ``by_version``,
    then :data:`STAT_COLUMNS`; unordered.
    """
    inner_start, inner_end = ceil(start, grain), floor(end, grain)
    keys = "bucket, version, " if by_version else "bucket, "
    stats = ", ".join(STAT_COLUMNS)
    version_filter, version_params = ("AND model_version = ? ", [version]) if version is not None else ("", [])
    rollup_version = ("AND version = ? ", [version]) if version is not None else ("", [])
    parts: list[str] = []
    params: list[Any] = []
    if inner_start < inner_end:
        parts.append(f"SELECT {keys}{stats} FROM {ROLLUP_TABLE} WHERE model = ? AND grain = ? AND by_version = ? "
                     f"AND bucket >= ? AND bucket < ? {rollup_version[0]}")
        params += [schema.model, grain, by_version or version is not None, inner_start, inner_end,
                   *rollup_version[1]]
    edges = [(start, end)] if inner_start >= inner_end else [(start, inner_start), (inner_end, end)]
    live_keys = {"bucket": f"date_trunc('{grain}', ts)"}
    if by_version:
        live_keys["version"] = "model_version"
    for lo, hi in edges:
        if lo >= hi:
            continue
        parts.append(f"SELECT {keys}{unpack_stats()} FROM (SELECT {stats_select(live_keys)} FROM {schema.table} "
                     f"WHERE ts >= ? AND ts < ? {version_filter}GROUP BY ALL)")
        params += [lo, hi, *version_params]
    return " UNION ALL ".join(f"({p})" for p in parts) or f"SELECT {keys}{stats} FROM {ROLLUP_TABLE} WHERE FALSE", params
