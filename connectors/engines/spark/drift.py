"""Spark counterparts of :mod:`connectors.queries.drift`: value counts, histograms, exact KS and
Wasserstein-1 per (column, bucket), in one Spark job per side.

Exact KS/W1 (:func:`numeric_summary`): each side is read once and unpivoted (``stack``) to (column,
bucket, value) rows of finite values, counted per distinct value (the only shuffle of the data); the
reference's distinct values are joined to each bucket of their column, and one window per (column,
bucket) ordered by value gives both empirical CDFs, so ``sup|F_r - F_c|`` (integer numerators
``|cr·n_c - cc·n_r|``) and ``∫|F_r - F_c|`` (a sum over the gaps between consecutive values) are exact.
Bucketed drift is the same job with more partitions, never a job per bucket. DuckDB reaches the same
numbers through a binned pass that sorts only undecided bins (its optimised path); here the sort is
Spark's, distributed by (column, bucket).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectors.engines.spark.same import same_sql
from connectors.engines.spark.session import SparkHandle
from connectors.queries import drift as dq
from connectors.queries.reference import Source
from connectors.schema import quote

_f = dq._f
row_count = same_sql(dq.row_count)
bucket_counts = same_sql(dq.bucket_counts)
categorical_counts = same_sql(dq.categorical_counts)

SUMMARY_COLUMNS = ["col", "bucket", "n_cur", "new_values", "vmin_cur", "vmax_cur", "ks_num", "w1"]
REF_COLUMNS = ["col", "n_ref", "u_ref", "std_ref", "vmin_ref", "vmax_ref"]


def finite(q: str) -> str:
    """Spark's spelling of DuckDB's ``isfinite(q)`` (NULL is not finite)."""
    return f"({q} IS NOT NULL AND NOT isnan({q}) AND abs({q}) != 'Infinity'::DOUBLE)"


def histogram(con: SparkHandle, src: Source, column: str, edges: np.ndarray, bucketed: bool = False) -> pd.DataFrame:
    q = quote(column)
    k = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    e = "array(" + ", ".join(_f(x) for x in edges) + ")"
    return con.df(f"""
        WITH x AS (SELECT bucket, CAST({q} AS DOUBLE) AS v FROM ({dq._cur(src, bucketed)})
                   WHERE {finite(q)} AND {q} >= {_f(lo)} AND {q} <= {_f(hi)}),
        i AS (SELECT bucket, v, least(CAST(floor((v - {_f(lo)}) * ({k} / ({_f(hi)} - {_f(lo)}))) AS BIGINT), {k - 1})
              AS b0 FROM x),
        j AS (SELECT bucket, v, CASE WHEN v < element_at({e}, CAST(b0 + 1 AS INT)) THEN b0 - 1 ELSE b0 END AS b1
              FROM i),
        m AS (SELECT bucket, CASE WHEN b1 < {k - 1} AND v >= element_at({e}, CAST(b1 + 2 AS INT)) THEN b1 + 1
                                  ELSE b1 END AS bin FROM j)
        SELECT bucket, bin, count(*) AS c FROM m GROUP BY bucket, bin ORDER BY bucket, bin""", list(src.params))


def numeric_range(con: SparkHandle, sources: list[Source], column: str) -> tuple[float, float] | None:
    q = quote(column)
    parts = [f"SELECT min({q}) FILTER (WHERE {finite(q)}) AS lo, max({q}) FILTER (WHERE {finite(q)}) AS hi "
             f"FROM ({s.sql})" for s in sources]
    params = [p for s in sources for p in s.params]
    row = con.rows(f"SELECT min(lo), max(hi) FROM ({' UNION ALL '.join(parts)})", params)[0]
    if row[0] is None:
        return None
    return float(row[0]), float(row[1])


def null_counts(con: SparkHandle, src: Source, columns: list[str], numeric: set[str]) -> dict[str, int]:
    if not columns:
        return {}
    exprs = []
    for c in columns:
        q = quote(c)
        exprs.append(f"count(*) FILTER (WHERE NOT {finite(q)})" if c in numeric else f"count(*) FILTER (WHERE {q} IS NULL)")
    row = con.rows(f"SELECT {', '.join(exprs)} FROM ({src.sql})", list(src.params))[0]
    return {c: int(v) for c, v in zip(columns, row, strict=False)}


def _long(con: SparkHandle, src: Source, columns: list[str], bucketed: bool, with_bucket: bool) -> Any:
    """One read of ``src``: (col, [bucket,] v, n) counts of the finite values of every column."""
    stack = ", ".join(f"'{c}', CAST({quote(c)} AS DOUBLE)" for c in columns)
    b = "bucket, " if with_bucket else ""
    sql = (f"SELECT col, {b}v, count(*) AS n FROM (SELECT {b}stack({len(columns)}, {stack}) AS (col, v) "
           f"FROM ({dq._cur(src, bucketed) if with_bucket else src.sql})) WHERE {finite('v')} GROUP BY col, {b}v")
    return con.frame(sql, list(src.params))


def numeric_summary(con: SparkHandle, ref: Source, cur: Source, columns: list[str], bucketed: bool = False,
                    grid: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    empty = pd.DataFrame()
    if not columns:
        return empty, empty, empty, empty
    spark = con.spark
    # Reference statistics straight from the rows (stddev_pop as DuckDB computes it, incrementally).
    rstats = con.df(" UNION ALL ".join(
        f"SELECT '{c}' AS col, count({quote(c)}) FILTER (WHERE {finite(quote(c))}) AS n, "
        f"min({quote(c)}) FILTER (WHERE {finite(quote(c))}) AS lo, max({quote(c)}) FILTER (WHERE {finite(quote(c))}) "
        f"AS hi, stddev_pop({quote(c)}) FILTER (WHERE {finite(quote(c))}) AS sd FROM ({ref.sql})"
        for c in columns), list(ref.params) * len(columns))
    rstats = rstats[rstats["n"] > 0]
    rv = _long(con, ref, columns, False, False).persist()
    cv = _long(con, cur, columns, bucketed, True).persist()
    try:
        rv.createOrReplaceTempView("vigil_drift_rv")
        cv.createOrReplaceTempView("vigil_drift_cv")
        u_ref = {str(c): int(u) for c, u in spark.sql("SELECT col, count(*) FROM vigil_drift_rv GROUP BY col").collect()}
        rstats["u_ref"] = rstats["col"].map(u_ref).fillna(0).astype("int64")
        nr = {str(c): int(n) for c, n in zip(rstats["col"], rstats["n"], strict=True)}
        live = [c for c in columns if c in nr]
        ref_summary = pd.DataFrame({
            "col": rstats["col"], "n_ref": rstats["n"].astype("int64"), "u_ref": rstats["u_ref"],
            "std_ref": rstats["sd"].fillna(0.0).astype("float64"), "vmin_ref": rstats["lo"], "vmax_ref": rstats["hi"],
        }).sort_values("col").reset_index(drop=True)
        if not live:
            return ref_summary, pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(), pd.DataFrame()
        nr_rows = ", ".join(f"('{c}', CAST({nr[c]} AS BIGINT))" for c in live)
        summary = con.df(f"""
            WITH nr AS (SELECT * FROM VALUES {nr_rows} AS t(col, nr)),
            nb AS (SELECT col, bucket, sum(n) AS nc, min(v) AS lo, max(v) AS hi FROM vigil_drift_cv GROUP BY col, bucket),
            m AS (
                SELECT col, bucket, v, sum(r) AS r, sum(c) AS c FROM (
                    SELECT rv.col, nb.bucket, rv.v, rv.n AS r, CAST(0 AS BIGINT) AS c
                    FROM vigil_drift_rv rv JOIN nb ON rv.col = nb.col
                    UNION ALL SELECT col, bucket, v, CAST(0 AS BIGINT), n FROM vigil_drift_cv)
                GROUP BY col, bucket, v),
            w AS (
                SELECT m.*, sum(r) OVER o AS cr, sum(c) OVER o AS cc, lead(v) OVER p AS nv FROM m
                WINDOW p AS (PARTITION BY col, bucket ORDER BY v),
                       o AS (PARTITION BY col, bucket ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
            SELECT w.col, w.bucket, any_value(nb.nc) AS n_cur, count(*) FILTER (WHERE w.r = 0) AS new_values,
                   any_value(nb.lo) AS vmin_cur, any_value(nb.hi) AS vmax_cur,
                   max(abs(w.cr * nb.nc - w.cc * nr.nr)) AS ks_num,
                   coalesce(sum(abs(CAST(w.cr AS DOUBLE) / nr.nr - CAST(w.cc AS DOUBLE) / nb.nc) * (w.nv - w.v))
                            FILTER (WHERE w.nv IS NOT NULL), 0.0D) AS w1
            FROM w JOIN nb ON w.col = nb.col AND w.bucket = nb.bucket JOIN nr ON w.col = nr.col
            GROUP BY w.col, w.bucket ORDER BY w.col, w.bucket""")
        for c in ("n_cur", "new_values", "ks_num"):
            summary[c] = summary[c].astype("int64")
        summary = summary[SUMMARY_COLUMNS]
        # Value counts where the union has at most 5 values (chi-square, Z or Jensen-Shannon over values).
        u = summary["col"].map(u_ref).fillna(0).astype("int64") + summary["new_values"]
        few = summary.loc[u <= 5, ["col", "bucket"]]
        cols = sorted(set(few["col"]))
        if cols:
            spark.createDataFrame(few.astype({"col": str})).createOrReplaceTempView("vigil_drift_few")
        ref_counts, cur_counts = numeric_counts(con, ref, cur, cols, bucketed,
                                                buckets_of="vigil_drift_few" if cols else None)
        return ref_summary, summary, ref_counts, cur_counts
    finally:
        rv.unpersist()
        cv.unpersist()


def numeric_counts(con: SparkHandle, ref: Source, cur: Source, columns: list[str], bucketed: bool = False,
                   buckets_of: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not columns:
        return pd.DataFrame(columns=["col", "v", "c"]), pd.DataFrame(columns=["col", "bucket", "v", "c"])
    rparts, cparts, rp, cp = [], [], [], []
    csql = dq._cur(cur, bucketed)
    for c in columns:
        q = quote(c)
        only = (f" LEFT SEMI JOIN (SELECT bucket FROM {buckets_of} WHERE col = '{c}') f ON s.bucket = f.bucket"
                if buckets_of else "")
        rparts.append(f"SELECT '{c}' AS col, CAST({q} AS DOUBLE) AS v, count(*) AS c FROM ({ref.sql}) "
                      f"WHERE {finite(q)} GROUP BY {q}")
        rp += list(ref.params)
        cparts.append(f"SELECT '{c}' AS col, s.bucket, CAST(s.{q} AS DOUBLE) AS v, count(*) AS c FROM ({csql}) s"
                      f"{only} WHERE {finite('s.' + q)} GROUP BY s.bucket, s.{q}")
        cp += list(cur.params)
    return (con.df(" UNION ALL ".join(rparts) + " ORDER BY col, v", rp),
            con.df(" UNION ALL ".join(cparts) + " ORDER BY col, bucket, v", cp))


def sample_frame(con: SparkHandle, src: Source, n: int, seed: int = 0) -> pd.DataFrame:
    """All rows when there are at most ``n``, else exactly ``n`` chosen by a seeded random order (a
    different sample from DuckDB's reservoir: samples feed the Evidently report, not the numbers)."""
    return con.df(f"SELECT * FROM ({src.sql}) ORDER BY rand({int(seed)}) LIMIT {int(n)}", list(src.params))
