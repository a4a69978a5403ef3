"""SQL of drift: every row-level step (value counts, empirical CDFs, exact KS and Wasserstein) in DuckDB.

Python receives one summary row per (column, bucket) plus value counts of low-cardinality columns.

Exact KS statistic and Wasserstein-1 distance per (column, bucket), without one query per bucket:
the reference's distinct values ``v_k`` carry their cumulative count ``cr_k`` (so ``F(v_k) = cr_k / n``)
and the prefix integral ``I_k = ∫_{v_1}^{v_k} F``; ``I(x) = I_k + F_k (x - v_k)`` for the largest
``v_k <= x``. A bucket's distinct values ``u_i`` split the line into intervals ``[u_i, u_{i+1})`` on
which the current CDF is a constant ``c``. On such an interval ``∫|F - c|`` has a closed form from
``I`` and the point ``x*`` where ``F`` first reaches ``c`` (``F`` is monotone), and ``sup|F - c|`` is
reached at its ends. Three ASOF joins find ``I(u_i)``, ``F(u_i⁻)`` and ``x*`` for every interval of every
bucket at once, so the cost grows with the current rows, not with buckets × reference size. KS uses
integer numerators ``|cr·n_b - cb·n_r|``, exactly as scipy's exact method rounds them.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors.queries.reference import Source
from connectors.schema import quote

_EPOCH = "TIMESTAMP '1970-01-01'"


def _cur(cur: Source, bucketed: bool) -> str:
    """The current relation with a ``bucket`` column (a constant when not bucketed)."""
    return cur.sql if bucketed else f"SELECT {_EPOCH} AS bucket, * FROM ({cur.sql})"


def row_count(con: duckdb.DuckDBPyConnection, src: Source) -> int:
    row = con.execute(f"SELECT count(*) FROM ({src.sql})", list(src.params)).fetchone()
    return int(row[0]) if row else 0


def bucket_counts(con: duckdb.DuckDBPyConnection, cur: Source) -> pd.DataFrame:
    """Rows per bucket of a bucketed current source."""
    return con.execute(f"SELECT bucket, count(*) AS n FROM ({cur.sql}) GROUP BY bucket ORDER BY bucket",
                       list(cur.params)).df()


def numeric_summary(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, columns: list[str],
                    bucketed: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Exact drift aggregates of numerical ``columns`` (finite values only, as Evidently cleans them).

    Returns ``(ref_summary, bucket_summary, ref_counts, cur_counts)``:
    ref_summary per column: n_ref, u_ref (distinct), std_ref (population), vmin_ref, vmax_ref;
    bucket_summary per (column, bucket): n_cur, u_cur, new_values (distinct current values not in the
    reference), ks_num (max |cr·n_b − cb·n_r|), w1 (unnormalised Wasserstein-1), vmin_cur, vmax_cur;
    value counts only for (column, bucket) pairs with at most 5 distinct values in total (where the
    default test becomes chi-square, Z or Jensen-Shannon over values).
    """
    empty = pd.DataFrame()
    if not columns:
        return empty, empty, empty, empty
    rp, cp = list(ref.params), list(cur.params)
    ref_parts, cur_parts, params = [], [], []
    for c in columns:
        q = quote(c)
        ref_parts.append(f"SELECT '{c}' AS col, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({ref.sql}) "
                         f"WHERE isfinite({q}) GROUP BY {q}")
        params += rp
    con.execute("CREATE OR REPLACE TEMP TABLE drift_rc AS " + " UNION ALL ".join(ref_parts), params)
    params = []
    csql = _cur(cur, bucketed)
    for c in columns:
        q = quote(c)
        cur_parts.append(f"SELECT '{c}' AS col, bucket, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({csql}) "
                         f"WHERE isfinite({q}) GROUP BY bucket, {q}")
        params += cp
    con.execute("CREATE OR REPLACE TEMP TABLE drift_cc AS " + " UNION ALL ".join(cur_parts), params)
    std_sql = " UNION ALL ".join(
        f"SELECT '{c}' AS col, stddev_pop({quote(c)}) FILTER (WHERE isfinite({quote(c)})) AS std_ref "
        f"FROM ({ref.sql})" for c in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE drift_std AS {std_sql}", rp * len(columns))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_rs AS
        WITH a AS (
            SELECT col, v, sum(c) OVER (PARTITION BY col ORDER BY v ROWS UNBOUNDED PRECEDING)::BIGINT AS cr,
                   sum(c) OVER (PARTITION BY col)::BIGINT AS n, lead(v) OVER (PARTITION BY col ORDER BY v) AS nv
            FROM drift_rc)
        SELECT col, v, cr, n, cr::DOUBLE / n AS f,
               coalesce(sum(cr::DOUBLE / n * (nv - v)) OVER (PARTITION BY col ORDER BY v
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS i
        FROM a""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_cs AS
        SELECT col, bucket, v AS a, lead(v) OVER w AS b,
               sum(c) OVER (w ROWS UNBOUNDED PRECEDING)::BIGINT AS cb,
               sum(c) OVER (PARTITION BY col, bucket)::BIGINT AS nb,
               row_number() OVER w AS rn
        FROM drift_cc WINDOW w AS (PARTITION BY col, bucket ORDER BY v)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_refsum AS
        SELECT r.col, max(r.n) AS n_ref, count(*) AS u_ref, min(r.v) AS vmin_ref, max(r.v) AS vmax_ref,
               arg_max(r.i, r.v) AS i_max, any_value(s.std_ref) AS std_ref
        FROM drift_rs r JOIN drift_std s USING (col) GROUP BY r.col""")
    ref_summary = con.execute("SELECT * FROM drift_refsum ORDER BY col").df()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_bsum AS
        WITH j1 AS (
            SELECT cs.*, r.v AS rv, coalesce(r.cr, 0) AS cra,
                   coalesce(r.i + r.f * (cs.a - r.v), 0) AS ia,
                   cs.cb::DOUBLE / cs.nb AS g
            FROM drift_cs cs ASOF LEFT JOIN drift_rs r ON cs.col = r.col AND cs.a >= r.v),
        j2 AS (
            SELECT j1.*, coalesce(r.cr, 0) AS cram
            FROM j1 ASOF LEFT JOIN drift_rs r ON j1.col = r.col AND j1.a > r.v),
        j3 AS (
            SELECT j2.*, r.v AS xs, r.i AS ixs
            FROM j2 ASOF LEFT JOIN drift_rs r ON j2.col = r.col AND j2.g <= r.f),
        k AS (
            SELECT j3.*, s.n_ref AS nr, s.vmax_ref, s.i_max,
                   lead(ia) OVER w AS ib, lead(cram) OVER w AS cram_next
            FROM j3 JOIN drift_refsum s USING (col)
            WINDOW w AS (PARTITION BY j3.col, j3.bucket ORDER BY j3.a)),
        t AS (
            SELECT *, CASE WHEN xs IS NULL OR xs > b THEN b WHEN xs < a THEN a ELSE xs END AS s,
                      CASE WHEN xs IS NULL OR xs > b THEN ib WHEN xs < a THEN ia ELSE ixs END AS i_s
            FROM k)
        SELECT col, bucket, max(nb) AS n_cur, count(*) AS u_cur,
               count(*) FILTER (WHERE rv IS NULL OR rv <> a) AS new_values,
               min(a) AS vmin_cur, max(a) AS vmax_cur,
               max(greatest(abs(cra * nb - cb * nr), abs(coalesce(cram_next, nr) * nb - cb * nr),
                            CASE WHEN rn = 1 THEN cram * nb ELSE 0 END)) AS ks_num,
               sum(CASE WHEN b IS NOT NULL
                        THEN g * (s - a) - (i_s - ia) + (ib - i_s) - g * (b - s)
                        WHEN vmax_ref > a THEN (vmax_ref - a) - (i_max - ia) ELSE 0 END
                   + CASE WHEN rn = 1 THEN ia ELSE 0 END) AS w1
        FROM t GROUP BY col, bucket""")
    bucket_summary = con.execute("SELECT * FROM drift_bsum ORDER BY col, bucket").df()
    small = """(SELECT b.col, b.bucket FROM drift_bsum b JOIN drift_refsum r USING (col)
                WHERE r.u_ref + b.new_values <= 5)"""
    ref_counts = con.execute(f"""SELECT col, v, c FROM drift_rc WHERE col IN (SELECT col FROM {small})
                                 ORDER BY col, v""").df()
    cur_counts = con.execute(f"""SELECT cc.col, cc.bucket, cc.v, cc.c FROM drift_cc cc JOIN {small} s
                                 ON cc.col = s.col AND cc.bucket = s.bucket ORDER BY 1, 2, 3""").df()
    return ref_summary, bucket_summary, ref_counts, cur_counts


def categorical_counts(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, columns: list[str],
                       bucketed: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value counts (non-null) of categorical ``columns``: reference (col, v, c), current (col, bucket, v, c)."""
    if not columns:
        return pd.DataFrame(columns=["col", "v", "c"]), pd.DataFrame(columns=["col", "bucket", "v", "c"])
    parts, params = [], []
    for c in columns:
        q = quote(c)
        parts.append(f"SELECT '{c}' AS col, {q}::VARCHAR AS v, count(*)::BIGINT AS c FROM ({ref.sql}) "
                     f"WHERE {q} IS NOT NULL GROUP BY {q}")
        params += list(ref.params)
    ref_df = con.execute(" UNION ALL ".join(parts) + " ORDER BY col, v", params).df()
    parts, params = [], []
    csql = _cur(cur, bucketed)
    for c in columns:
        q = quote(c)
        parts.append(f"SELECT '{c}' AS col, bucket, {q}::VARCHAR AS v, count(*)::BIGINT AS c FROM ({csql}) "
                     f"WHERE {q} IS NOT NULL GROUP BY bucket, {q}")
        params += list(cur.params)
    cur_df = con.execute(" UNION ALL ".join(parts) + " ORDER BY col, bucket, v", params).df()
    return ref_df, cur_df


def histogram(con: duckdb.DuckDBPyConnection, src: Source, column: str, edges: np.ndarray,
              bucketed: bool = False) -> pd.DataFrame:
    """Counts of finite values of ``column`` per bin of ``edges`` (numpy's rule: last bin closed, values
    outside the edges dropped), per bucket when ``bucketed``. Returns (bucket, bin, c)."""
    q = quote(column)
    k = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    sql = _cur(src, bucketed)
    # floor((x - lo) * k / (hi - lo)) then numpy's correction against the exact edges (1-based lists).
    params: list[Any] = [*src.params, list(map(float, edges))]
    return con.execute(f"""
        WITH x AS (SELECT bucket, {q}::DOUBLE AS v FROM ({sql}) WHERE isfinite({q}) AND {q} >= {lo!r}
                   AND {q} <= {hi!r}),
        e AS (SELECT ?::DOUBLE[] AS edges),
        i AS (SELECT bucket, v, least(floor((v - {lo!r}) * ({k} / ({hi!r} - {lo!r})))::BIGINT, {k - 1}) AS b0
              FROM x),
        j AS (SELECT bucket, v, CASE WHEN v < edges[b0 + 1] THEN b0 - 1 ELSE b0 END AS b1, edges FROM i, e),
        m AS (SELECT bucket, CASE WHEN b1 < {k - 1} AND v >= edges[b1 + 2] THEN b1 + 1 ELSE b1 END AS bin
              FROM j)
        SELECT bucket, bin, count(*)::BIGINT AS c FROM m GROUP BY bucket, bin ORDER BY bucket, bin""",
                       params).df()


def numeric_range(con: duckdb.DuckDBPyConnection, sources: list[Source], column: str) -> tuple[float, float] | None:
    """Pooled min and max of the finite values of ``column`` over ``sources`` (None when there are none)."""
    q = quote(column)
    parts = [f"SELECT min({q}) FILTER (WHERE isfinite({q})) AS lo, max({q}) FILTER (WHERE isfinite({q})) AS hi "
             f"FROM ({s.sql})" for s in sources]
    params = [p for s in sources for p in s.params]
    row = con.execute(f"SELECT min(lo), max(hi) FROM ({' UNION ALL '.join(parts)})", params).fetchone()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1])


def null_counts(con: duckdb.DuckDBPyConnection, src: Source, columns: list[str],
                numeric: set[str]) -> dict[str, int]:
    """Rows of ``src`` whose value is missing (NULL, NaN or ±inf for numerical columns) per column."""
    if not columns:
        return {}
    exprs = []
    for c in columns:
        q = quote(c)
        cond = f"NOT coalesce(isfinite({q}), false)" if c in numeric else f"{q} IS NULL"
        exprs.append(f"count(*) FILTER (WHERE {cond})")
    row = con.execute(f"SELECT {', '.join(exprs)} FROM ({src.sql})", list(src.params)).fetchone()
    return {c: int(v) for c, v in zip(columns, row or [], strict=False)}


def numeric_value_counts(con: duckdb.DuckDBPyConnection, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All value counts of a numerical column from the last :func:`numeric_summary` on this connection
    (for an explicitly requested count-based test on a column with many values)."""
    ref_df = con.execute("SELECT col, v, c FROM drift_rc WHERE col = ? ORDER BY v", [column]).df()
    cur_df = con.execute("SELECT col, bucket, v, c FROM drift_cc WHERE col = ? ORDER BY bucket, v", [column]).df()
    return ref_df, cur_df


def sample_frame(con: duckdb.DuckDBPyConnection, src: Source, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows of ``src`` as a DataFrame: all of them when there are at most ``n``, else a reservoir sample of
    exactly ``n`` rows (repeatable for a given seed)."""
    return con.execute(f"SELECT * FROM ({src.sql}) s USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})",
                       list(src.params)).df()
