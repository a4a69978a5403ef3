"""SQL of multivariate drift by PCA reconstruction error (NannyML's DataReconstructionDriftCalculator).

The fit needs only aggregates of the reference (computed here): per numerical column its mean (the
imputed value) and per categorical column its most frequent value (ties: the smallest) and the share of
each value after imputation (NannyML's count encoding, normalised); then the mean and population
standard deviation of every encoded column (the scaler) and the sample covariance matrix of the scaled
columns (what scikit-learn's PCA decomposes when rows far outnumber columns). The per-row part, the
norm of each row's residual after projecting on the kept components, is one SQL expression that
:mod:`dashboard.monitoring.multivariate` builds from the fit; the engine returns per bucket its count,
mean and sample standard deviation.

Every function takes a relation (``Source``: SQL and parameters) whose rows carry the columns (and a
``bucket`` column for :func:`error_by_bucket`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from connectors.engines.base import duckdb_function
from connectors.queries.reference import Source
from connectors.schema import nan_as_null, quote


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def numeric(col: str) -> str:
    """A numerical column with NaN read as missing."""
    return nan_as_null(f"CAST({quote(col)} AS DOUBLE)")


@duckdb_function
def imputation(con: duckdb.DuckDBPyConnection, src: Source, numerical: Sequence[str],
               categorical: Sequence[str]) -> tuple[int, dict[str, float | None], dict[str, str | None]]:
    """Rows of the relation, the mean of each numerical column, the most frequent value of each categorical."""
    exprs = ["count(*)"] + [f"avg({numeric(c)})" for c in numerical]
    row = con.execute(f"SELECT {', '.join(exprs)} FROM ({src.sql})", list(src.params)).fetchone()
    assert row is not None
    means = {c: (None if v is None else float(v)) for c, v in zip(numerical, row[1:], strict=True)}
    modes: dict[str, str | None] = {}
    for c in categorical:
        top = con.execute(f"SELECT v FROM (SELECT CAST({quote(c)} AS VARCHAR) AS v, count(*) AS n FROM ({src.sql}) "
                          "WHERE v IS NOT NULL GROUP BY v) ORDER BY n DESC, v LIMIT 1", list(src.params)).fetchone()
        modes[c] = None if top is None else str(top[0])
    return int(row[0]), means, modes


@duckdb_function
def shares(con: duckdb.DuckDBPyConnection, src: Source, column: str, mode: str) -> dict[str, float]:
    """Share of each value of ``column`` once missing values are imputed with ``mode``."""
    rows = con.execute(f"SELECT coalesce(CAST({quote(column)} AS VARCHAR), ?) AS v, count(*) / "
                       f"(sum(count(*)) OVER ()) FROM ({src.sql}) GROUP BY v ORDER BY v",
                       [mode, *src.params]).fetchall()
    return {str(v): float(s) for v, s in rows}


@duckdb_function
def moments(con: duckdb.DuckDBPyConnection, src: Source, exprs: Mapping[str, str]) -> pd.DataFrame:
    """Mean and population standard deviation of each named SQL expression over the relation."""
    names = list(exprs)
    sel = ", ".join(f"avg({e}), stddev_pop({e})" for e in exprs.values())
    row = con.execute(f"SELECT {sel} FROM ({src.sql})", list(src.params)).fetchone()
    assert row is not None
    return pd.DataFrame({"mean": [float(row[2 * i]) for i in range(len(names))],
                         "std": [float(row[2 * i + 1]) for i in range(len(names))]}, index=names)


@duckdb_function
def covariance(con: duckdb.DuckDBPyConnection, src: Source, exprs: Sequence[str]) -> list[list[float]]:
    """Sample covariance matrix (n - 1) of the expressions, and their means (last row)."""
    k = len(exprs)
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    sel = ", ".join([f"covar_samp({exprs[i]}, {exprs[j]})" for i, j in pairs] + [f"avg({e})" for e in exprs])
    row = con.execute(f"SELECT {sel} FROM ({src.sql})", list(src.params)).fetchone()
    assert row is not None
    cov = [[0.0] * k for _ in range(k)]
    for (i, j), v in zip(pairs, row[: len(pairs)], strict=True):
        cov[i][j] = cov[j][i] = float(v)
    return [*cov, [float(v) for v in row[len(pairs):]]]


@duckdb_function
def error_by_bucket(con: duckdb.DuckDBPyConnection, src: Source, error: str) -> pd.DataFrame:
    """Per bucket: rows, mean and sample standard deviation of the per-row ``error`` expression."""
    df = con.execute(f"SELECT bucket, count(*) AS n, avg(e) AS mean, stddev_samp(e) AS std FROM "
                     f"(SELECT bucket, {error} AS e FROM ({src.sql})) GROUP BY bucket ORDER BY bucket",
                     list(src.params)).df()
    df["n"] = df["n"].astype("int64")
    return df


__all__: Sequence[str] = ("covariance", "error_by_bucket", "imputation", "literal", "moments", "numeric", "shares")
