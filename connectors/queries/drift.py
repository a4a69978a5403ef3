"""SQL of drift: every row-level step (value counts, empirical CDFs, exact KS and Wasserstein) in DuckDB.

Python receives one summary row per (column, bucket) plus value counts of low-cardinality columns.

Exact KS statistic and Wasserstein-1 distance per (column, bucket) of numerical columns, for one window
or all buckets of a range in the same few queries (no query per bucket): a hash-aggregated pass over
equal-width bins settles every bin where the two CDFs cannot cross, and only the undecided bins are
resolved exactly against the reference's sorted values in them (see :func:`numeric_summary`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors.engines.base import engine_function
from connectors.queries.reference import Source
from connectors.schema import quote

_EPOCH = "TIMESTAMP '1970-01-01'"


def _cur(cur: Source, bucketed: bool) -> str:
    """The current relation with a ``bucket`` column (a constant when not bucketed)."""
    return cur.sql if bucketed else f"SELECT {_EPOCH} AS bucket, * FROM ({cur.sql})"


@engine_function
def row_count(con: duckdb.DuckDBPyConnection, src: Source) -> int:
    row = con.execute(f"SELECT count(*) FROM ({src.sql})", list(src.params)).fetchone()
    return int(row[0]) if row else 0


@engine_function
def bucket_counts(con: duckdb.DuckDBPyConnection, cur: Source) -> pd.DataFrame:
    """Rows per bucket of a bucketed current source."""
    return con.execute(f"SELECT bucket, count(*) AS n FROM ({cur.sql}) GROUP BY bucket ORDER BY bucket",
                       list(cur.params)).df()


@engine_function
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


@engine_function
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
        WITH x AS (SELECT bucket, {q}::DOUBLE AS v FROM ({sql}) WHERE isfinite({q}) AND {q} >= {_f(lo)}
                   AND {q} <= {_f(hi)}),
        e AS (SELECT ?::DOUBLE[] AS edges),
        i AS (SELECT bucket, v, least(floor((v - {_f(lo)}) * ({k} / ({_f(hi)} - {_f(lo)})))::BIGINT, {k - 1}) AS b0
              FROM x),
        j AS (SELECT bucket, v, CASE WHEN v < edges[b0 + 1] THEN b0 - 1 ELSE b0 END AS b1, edges FROM i, e),
        m AS (SELECT bucket, CASE WHEN b1 < {k - 1} AND v >= edges[b1 + 2] THEN b1 + 1 ELSE b1 END AS bin
              FROM j)
        SELECT bucket, bin, count(*)::BIGINT AS c FROM m GROUP BY bucket, bin ORDER BY bucket, bin""",
                       params).df()


@engine_function
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


@engine_function
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


# ----------------------------------------------------------------------------- numerical columns

GRID = 1 << 18  # most bins per column (and bucket) in the bounded pass of :func:`numeric_summary`
GRID_CELLS = 1 << 21  # bins per column over all buckets: bounds the merged bin table of many buckets
MIN_GRID = 1_024
_TIE = 1 << 22  # more than the rows of equal cumulative count in the sorted reference (one per bin + 1)
DISTINCT_EXACT_UPTO = 20  # distinct counts are exact up to this (the method rules look at 5 and 20)


def _f(x: float) -> str:
    """A float literal typed DOUBLE (DuckDB reads a bare 0.25 as DECIMAL)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _finite(q: str) -> str:
    return f"FILTER (WHERE isfinite({q}))"


def grid_for(n_buckets: int, bucket_rows: int) -> int:
    """Bins per column and bucket (a power of two): about an eighth of the window's rows for one window,
    a quarter of the largest bucket's rows for many, at most :data:`GRID`, and few enough that the
    merged bin table of all buckets stays within :data:`GRID_CELLS` rows per column. Why: finer bins
    leave fewer rows to resolve exactly, but every bucket carries every reference bin (measured on 1M
    reference rows: one window of 1M rows is fastest at 65,536 bins, of 10M at 262,144; 30 daily
    buckets of 2M rows at 16,384, of 10M at 65,536)."""
    per_bin = 8 if n_buckets <= 1 else 4
    g = GRID
    while g > MIN_GRID and (g * max(n_buckets, 1) > GRID_CELLS or g > bucket_rows // per_bin):
        g //= 2
    return g


@engine_function
def numeric_summary(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, columns: list[str],
                    bucketed: bool = False, grid: int | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Exact drift aggregates of numerical ``columns`` (finite values only, as Evidently cleans them), for
    one current window or for every bucket of a bucketed one at once.

    Returns ``(ref_summary, bucket_summary, ref_counts, cur_counts)``:
    ref_summary per column with reference values: n_ref, u_ref (distinct values; exact up to 20, else a
    lower bound above 20), std_ref (population), vmin_ref, vmax_ref;
    bucket_summary per (column, bucket) with values on both sides: n_cur, new_values (distinct current
    values not in the reference; exact when the union has at most 20, else at least enough to exceed 20),
    ks_num (max |cr·n_b − cb·n_r|), w1 (unnormalised Wasserstein-1), vmin_cur, vmax_cur;
    value counts of the (column, bucket) pairs with at most 5 distinct values in the union (where the
    default test becomes chi-square, Z or Jensen-Shannon over values).

    Why: sorting millions of rows per column (and bucket) dominates the cost. Values are first counted
    into ``grid`` equal-width bins over the column's pooled range, with ``sum(right edge - x)`` per bin; on
    a bin where ``F_ref - F_cur`` cannot change sign (known from the cumulative counts at its left edge
    and its masses) ``∫|F_ref - F_cur|`` equals the absolute value of the signed integral, which those
    sums give exactly. Only the bins where the sign may change, and the bins whose bound on
    ``sup|F_ref - F_cur|`` exceeds the best value seen at a bin edge, are resolved exactly
    (:func:`_refine_exactly`); a bin holding a single distinct value (discrete columns) has a closed form and is
    never resolved. The result is exact (the value of a full sort, up to floating-point rounding; KS
    numerators are integers), and the row-level work is hash aggregations plus sorts of the values in
    undecided bins; the reference's are sorted once, whatever the number of buckets.
    """
    empty = pd.DataFrame()
    if not columns:
        return empty, empty, empty, empty
    csql = _cur(cur, bucketed)
    rp, cp = list(ref.params), list(cur.params)
    con.execute("CREATE OR REPLACE TEMP TABLE drift_rst AS " + " UNION ALL ".join(
        f"SELECT '{c}' AS col, count({quote(c)}) {_finite(quote(c))} AS n, min({quote(c)}) {_finite(quote(c))} AS lo, "
        f"max({quote(c)}) {_finite(quote(c))} AS hi, stddev_pop({quote(c)}) {_finite(quote(c))} AS sd FROM ({ref.sql})"
        for c in columns), rp * len(columns))
    con.execute("CREATE OR REPLACE TEMP TABLE drift_cst AS SELECT * FROM (" + " UNION ALL ".join(
        f"SELECT '{c}' AS col, bucket, count({quote(c)}) {_finite(quote(c))} AS n, min({quote(c)}) {_finite(quote(c))} "
        f"AS lo, max({quote(c)}) {_finite(quote(c))} AS hi FROM ({csql}) GROUP BY bucket" for c in columns)
        + ") WHERE n > 0", cp * len(columns))
    spans = con.execute("""
        SELECT r.col, least(min(r.lo), min(c.lo)) AS lo, greatest(max(r.hi), max(c.hi)) AS hi,
               max(count(*)) OVER () AS n_buckets, max(max(c.n)) OVER () AS bucket_rows
        FROM drift_rst r JOIN drift_cst c USING (col) WHERE r.n > 0 GROUP BY r.col""").fetchall()
    grid = grid or (grid_for(int(spans[0][3]), int(spans[0][4])) if spans else GRID)
    span: dict[str, tuple[float, float]] = {str(c): (float(lo), (float(hi) - float(lo)) / grid)
                                            for c, lo, hi, _, _ in spans}
    binned = [c for c in columns if c in span and span[c][1] > 0]
    hvals = ", ".join(f"('{c}', {_f(span[c][1])})" for c in binned) or "(NULL, NULL)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_n AS
        SELECT c.col, c.bucket, r.n AS nr, c.n AS nc, h.h FROM drift_cst c JOIN drift_rst r USING (col)
        JOIN (VALUES {hvals}) h(col, h) USING (col) WHERE r.n > 0""")

    def rows(src_sql: str, c: str, with_bucket: bool) -> str:
        lo, h = span[c]
        b = "bucket, " if with_bucket else ""
        return (f"SELECT {b}{quote(c)} - {_f(lo)} AS d, least(floor(({quote(c)} - {_f(lo)}) / {_f(h)}), "
                f"{grid - 1})::INTEGER AS k FROM ({src_sql}) WHERE isfinite({quote(c)})")

    def bins(src_sql: str, c: str, with_bucket: bool) -> str:
        b = "bucket, " if with_bucket else ""
        return (f"SELECT '{c}' AS col, {b}k, count(*)::BIGINT AS cnt, sum((k + 1) * {_f(span[c][1])} - d) AS s, "
                f"min(d) AS mn, max(d) AS mx FROM ({rows(src_sql, c, with_bucket)}) GROUP BY {b}k")

    for name, src_sql, with_bucket, params in (("drift_rb", ref.sql, False, rp), ("drift_cb", csql, True, cp)):
        sql = " UNION ALL ".join(bins(src_sql, c, with_bucket) for c in binned)
        empty_sql = f"SELECT NULL::VARCHAR AS col, {'NULL::TIMESTAMP AS bucket, ' if with_bucket else ''}0 AS k, " \
                    "0::BIGINT AS cnt, 0.0 AS s, 0.0 AS mn, 0.0 AS mx WHERE false"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql or empty_sql}", params * len(binned))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_m AS
        WITH r AS (SELECT n.col, n.bucket, b.k, b.cnt, b.s, b.mn, b.mx FROM drift_n n JOIN drift_rb b USING (col)),
        j AS (
            SELECT coalesce(r.col, c.col) AS col, coalesce(r.bucket, c.bucket) AS bucket, coalesce(r.k, c.k) AS k,
                   coalesce(r.cnt, 0) AS cr, coalesce(c.cnt, 0) AS cc, coalesce(r.s, 0) AS sr,
                   coalesce(c.s, 0) AS sc, least(r.mn, c.mn) AS mn, greatest(r.mx, c.mx) AS mx
            FROM r FULL JOIN drift_cb c ON r.col = c.col AND r.bucket = c.bucket AND r.k = c.k),
        w AS (
            SELECT j.*, n.nr, n.nc, n.h,
                   sum(cr) OVER o - cr AS cra, sum(cc) OVER o - cc AS cca,
                   coalesce(j.k - lag(j.k) OVER o - 1, 0) AS empty_before
            FROM j JOIN drift_n n USING (col, bucket)
            WINDOW o AS (PARTITION BY j.col, j.bucket ORDER BY j.k ROWS UNBOUNDED PRECEDING))
        SELECT *, cra * nc - cca * nr AS da, mx = mn AS single,
               (cra * nc - cca * nr) - cc * nr < 0 AND (cra * nc - cca * nr) + cr * nc > 0 AS mixed,
               greatest((cra * nc - cca * nr) + cr * nc, cc * nr - (cra * nc - cca * nr)) AS ub
        FROM w""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_refine AS
        WITH l AS (SELECT col, bucket, max(abs(da)) AS lb FROM drift_m GROUP BY col, bucket)
        SELECT m.col, m.bucket, m.k, m.cra, m.cca, m.nr, m.nc, m.h, least(m.k * m.h, m.mn) AS lo_edge,
               greatest((m.k + 1) * m.h, m.mx) AS hi_edge
        FROM drift_m m JOIN l USING (col, bucket)
        WHERE NOT m.single AND (m.mixed OR m.ub > l.lb)""")
    undecided = [str(c) for c, in con.execute("SELECT DISTINCT col FROM drift_refine ORDER BY col").fetchall()]
    if not undecided:
        con.execute("CREATE OR REPLACE TEMP TABLE drift_ex (col VARCHAR, bucket TIMESTAMP, ks_num HUGEINT, "
                    "w1 DOUBLE)")
    elif int(spans[0][3]) == 1:
        _refine_by_merge(con, ref, csql, undecided, rows, rp, cp)
    else:
        _refine_exactly(con, ref, csql, undecided, rows, rp, cp)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_bsum AS
        WITH z AS (
            SELECT m.col, m.bucket, max(abs(m.da)) AS lb,
                   sum(CASE WHEN f.k IS NOT NULL THEN 0
                            WHEN m.single THEN (abs(m.da::DOUBLE) * (m.mn - m.k * m.h)
                                                + abs((m.da + m.cr * m.nc - m.cc * m.nr)::DOUBLE) * ((m.k + 1) * m.h - m.mn))
                                               / m.nr / m.nc
                            ELSE abs(m.da::DOUBLE / m.nr / m.nc * m.h + m.sr / m.nr - m.sc / m.nc)
                       END + abs(m.da::DOUBLE) / m.nr / m.nc * m.h * m.empty_before) AS w1,
                   sum(1 + (m.mx > m.mn)::INTEGER) AS u_lb
            FROM drift_m m LEFT JOIN drift_refine f ON m.col = f.col AND m.bucket = f.bucket AND m.k = f.k
            GROUP BY m.col, m.bucket)
        SELECT s.col, s.bucket, s.n AS n_cur, s.lo AS vmin_cur, s.hi AS vmax_cur,
               coalesce(greatest(z.lb, e.ks_num), 0)::BIGINT AS ks_num, coalesce(z.w1, 0) + coalesce(e.w1, 0) AS w1,
               coalesce(z.u_lb, 1) AS u_lb
        FROM drift_cst s JOIN drift_rst r ON s.col = r.col AND r.n > 0
        LEFT JOIN z ON s.col = z.col AND s.bucket = z.bucket LEFT JOIN drift_ex e ON s.col = e.col AND s.bucket = e.bucket""")
    return _distinct_and_counts(con, ref, cur, bucketed)


def _refine_by_merge(con: duckdb.DuckDBPyConnection, ref: Source, csql: str, cols: list[str],
                     rows: Callable[[str, str, bool], str], rp: list[Any], cp: list[Any]) -> None:
    """The same result as :func:`_refine_exactly` for a single bucket, cheaper there: both sides' values
    in the undecided bins are merged in one sort per bin (the reference would be copied per bucket if
    there were many)."""
    parts, params = [], []
    for c in cols:
        parts.append(f"SELECT '{c}' AS col, f.bucket, x.k, x.d, 1 AS isref FROM ({rows(ref.sql, c, False)}) x "
                     f"JOIN (SELECT bucket, k FROM drift_refine WHERE col = '{c}') f ON x.k = f.k")
        parts.append(f"SELECT '{c}' AS col, x.bucket, x.k, x.d, 0 AS isref FROM ({rows(csql, c, True)}) x "
                     f"SEMI JOIN (SELECT bucket, k FROM drift_refine WHERE col = '{c}') f "
                     "ON x.bucket = f.bucket AND x.k = f.k")
        params += rp + cp
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_ex AS
        WITH x AS ({' UNION ALL '.join(parts)}),
        g AS (SELECT col, bucket, k, d, sum(isref)::BIGINT AS r, (count(*) - sum(isref))::BIGINT AS c
              FROM x GROUP BY col, bucket, k, d),
        w AS (SELECT g.col, g.bucket, g.k, g.d, f.nr, f.nc,
                     f.cra + sum(g.r) OVER o AS cr, f.cca + sum(g.c) OVER o AS cc,
                     coalesce(lead(g.d) OVER o, f.hi_edge) AS nd,
                     CASE WHEN row_number() OVER o = 1 THEN g.d - f.lo_edge ELSE 0 END AS first_gap,
                     f.cra * f.nc - f.cca * f.nr AS da
              FROM g JOIN drift_refine f ON g.col = f.col AND g.bucket = f.bucket AND g.k = f.k
              WINDOW o AS (PARTITION BY g.col, g.bucket, g.k ORDER BY g.d ROWS UNBOUNDED PRECEDING))
        SELECT col, bucket, max(abs(cr * nc - cc * nr)) AS ks_num,
               sum(abs(cr::DOUBLE / nr - cc::DOUBLE / nc) * (nd - d) + abs(da::DOUBLE) / nr / nc * first_gap) AS w1
        FROM w GROUP BY col, bucket""", params)


def _refine_exactly(con: duckdb.DuckDBPyConnection, ref: Source, csql: str, cols: list[str],
                    rows: Callable[[str, str, bool], str], rp: list[Any], cp: list[Any]) -> None:
    """Exact KS numerator and ∫|F_ref - F_cur| over the undecided bins of ``drift_refine`` (into
    ``drift_ex``) of ``cols`` (the columns that have some), without copying reference rows per bucket.

    The reference's distinct values ``v`` are sorted once per column with their cumulative count ``cr``
    (``F(v) = cr / n``) and the prefix integral ``I(v) = ∫ F`` up to ``v``; ``I(x) = I(v) + F(v)(x - v)``
    for the largest ``v <= x``. An undecided bin's current values and its two edges split it into
    intervals ``[a, b)`` on which the current CDF is a constant ``g``; there ``∫|F - g|`` has a closed
    form from ``I`` and the point ``x*`` where ``F`` first reaches ``g`` (``F`` is monotone), and
    ``sup|F - g|`` is reached at the ends. Two ASOF joins find ``I(a)`` with ``F(a)`` and ``F(a⁻)``, and
    ``x*``, for every interval of every bucket at once. KS uses integer numerators ``|cr·n_c - cb·n_r|``, and ``x*`` is
    found on the integer key ``cr·_TIE + bin (+1 for an opening row)`` (``F(v) >= g`` is ``cr >= ⌈cb·n_r/n_c⌉``),
    so rows of equal ``cr`` (bins' opening rows and the value before them) resolve to the smallest ``v``.
    """
    ref_vals = " UNION ALL ".join(
        f"SELECT '{c}' AS col, x.k, x.d AS v, count(*)::BIGINT AS c FROM ({rows(ref.sql, c, False)}) x "
        f"SEMI JOIN (SELECT k FROM drift_kb WHERE col = '{c}') f ON x.k = f.k GROUP BY x.k, x.d" for c in cols)
    # ∫F up to a bin's left edge e_k from the reference bins before it: each value y there adds e_k - y.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_kb AS
        WITH rc AS (
            SELECT col, k, sum(s) OVER w AS cs, sum(k * cnt) OVER w AS ckc, sum(cnt) OVER w AS cc FROM drift_rb
            WINDOW w AS (PARTITION BY col ORDER BY k ROWS UNBOUNDED PRECEDING)),
        kb AS (SELECT col, k, any_value(nr) AS nr, any_value(h) AS h, min(lo_edge) AS lo_edge
               FROM drift_refine GROUP BY col, k)
        SELECT kb.col, kb.k, kb.nr, kb.lo_edge, coalesce(rc.cc, 0) AS cra,
               (coalesce(rc.cs, 0) + kb.h * ((kb.k - 1) * coalesce(rc.cc, 0) - coalesce(rc.ckc, 0))) / kb.nr AS i_edge
        FROM kb ASOF LEFT JOIN rc ON kb.col = rc.col AND kb.k > rc.k""")
    # The reference's values in the undecided bins only, each bin opened by a row just below its left
    # edge that carries the state there (count and integral of everything before the bin).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_rs AS
        WITH x AS ({ref_vals} UNION ALL SELECT col, k, lo_edge, 0 FROM drift_kb),
        a AS (
            SELECT x.col, x.k, x.v, x.c, b.cra + sum(x.c) OVER w AS cr, b.nr, b.i_edge,
                   sum(x.c * (x.v - b.lo_edge)) OVER w AS cv, x.v - b.lo_edge AS dv
            FROM x JOIN drift_kb b ON x.col = b.col AND x.k = b.k
            WINDOW w AS (PARTITION BY x.col, x.k ORDER BY x.v, x.c ROWS UNBOUNDED PRECEDING))
        -- ∫F from the bin's opening edge to v = (cr·dv - Σ c_j·dv_j) / n by summation by parts; dv = v - edge
        -- keeps the terms small (no cancellation of large products).
        SELECT col, CASE WHEN c = 0 THEN nextafter(v, '-inf'::DOUBLE) ELSE v END AS v, c, cr, cr::DOUBLE / nr AS f,
               i_edge + (cr * dv - cv) / nr AS i, cr * {_TIE} + k + (c = 0)::INTEGER AS key
        FROM a""", rp * len(cols))
    cur_vals = " UNION ALL ".join(
        f"SELECT '{c}' AS col, x.bucket, x.k, x.d, count(*)::BIGINT AS c, 0 AS edge FROM ({rows(csql, c, True)}) x "
        f"SEMI JOIN (SELECT bucket, k FROM drift_refine WHERE col = '{c}') f ON x.bucket = f.bucket AND x.k = f.k "
        "GROUP BY x.bucket, x.k, x.d" for c in cols)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_ex AS
        WITH p AS (
            {cur_vals}
            UNION ALL SELECT col, bucket, k, lo_edge, 0, 1 FROM drift_refine
            UNION ALL SELECT col, bucket, k, hi_edge, 0, 2 FROM drift_refine),
        s AS (
            SELECT p.col, p.bucket, p.k, p.d AS a, lead(p.d) OVER o AS b, f.nr, f.nc,
                   f.cca + sum(p.c) OVER (o ROWS UNBOUNDED PRECEDING) AS cb, row_number() OVER o AS seq
            FROM p JOIN drift_refine f ON p.col = f.col AND p.bucket = f.bucket AND p.k = f.k
            WINDOW o AS (PARTITION BY p.col, p.bucket, p.k ORDER BY p.d, p.edge)),
        j1 AS (
            SELECT s.*, coalesce(r.cr, 0) AS cra, coalesce(r.i + r.f * (s.a - r.v), 0) AS ia,
                   coalesce(r.cr - CASE WHEN r.v = s.a THEN r.c ELSE 0 END, 0) AS cram, s.cb::DOUBLE / s.nc AS g
            FROM s ASOF LEFT JOIN drift_rs r ON s.col = r.col AND s.a >= r.v),
        j3 AS (SELECT j1.*, r.v AS xs, r.i AS ixs FROM j1 ASOF LEFT JOIN drift_rs r
               ON j1.col = r.col AND (j1.cb * j1.nr + j1.nc - 1) // j1.nc * {_TIE} <= r.key),
        k AS (
            SELECT j3.*, lead(ia) OVER w AS ib, lead(cram) OVER w AS cram_b
            FROM j3 WINDOW w AS (PARTITION BY j3.col, j3.bucket, j3.k ORDER BY j3.seq)),
        t AS (
            SELECT *, CASE WHEN xs IS NULL OR xs > b THEN b WHEN xs < a THEN a ELSE xs END AS x_s,
                      CASE WHEN xs IS NULL OR xs > b THEN ib WHEN xs < a THEN ia ELSE ixs END AS i_s
            FROM k WHERE b IS NOT NULL)
        SELECT col, bucket, max(greatest(abs(cra * nc - cb * nr), abs(cram_b * nc - cb * nr))) AS ks_num,
               sum(g * (x_s - a) - (i_s - ia) + (ib - i_s) - g * (b - x_s)) AS w1
        FROM t GROUP BY col, bucket""", cp * len(cols))


def _distinct_and_counts(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, bucketed: bool
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Finish :func:`numeric_summary`: exact distinct counts where a bound says they may be small (where
    Evidently's method rules look), and value counts where the union has at most 5 values."""
    csql = _cur(cur, bucketed)
    rp, cp = list(ref.params), list(cur.params)
    ref_lb = dict(con.execute("""
        SELECT r.col, coalesce(sum(1 + (b.mx > b.mn)::INTEGER), 1) FROM drift_rst r
        LEFT JOIN drift_rb b USING (col) WHERE r.n > 0 GROUP BY r.col""").fetchall())
    small = sorted({str(c) for c, in con.execute(
        f"SELECT DISTINCT col FROM drift_bsum WHERE u_lb <= {DISTINCT_EXACT_UPTO}").fetchall()}
        | {str(c) for c, lb in ref_lb.items() if lb <= DISTINCT_EXACT_UPTO})
    con.execute("CREATE OR REPLACE TEMP TABLE drift_new (col VARCHAR, bucket TIMESTAMP, new_values BIGINT, "
                "u_all BIGINT)")
    u_ref = {str(c): int(lb) for c, lb in ref_lb.items()}
    if small:  # the reference's distinct values of these columns, read once
        con.execute("CREATE OR REPLACE TEMP TABLE drift_rv AS " + " UNION ALL ".join(
            f"SELECT DISTINCT '{c}' AS col, {quote(c)}::DOUBLE AS v FROM ({ref.sql}) WHERE isfinite({quote(c)})"
            for c in small), rp * len(small))
        u_ref.update({str(c): int(n) for c, n in con.execute("SELECT col, count(*) FROM drift_rv GROUP BY col")
                      .fetchall()})
    for c in small:
        q = quote(c)
        con.execute(f"""
            INSERT INTO drift_new
            WITH x AS (SELECT DISTINCT s.bucket, {q}::DOUBLE AS v FROM ({csql}) s
                       SEMI JOIN (SELECT bucket FROM drift_bsum WHERE col = '{c}' AND u_lb <= {DISTINCT_EXACT_UPTO}) b
                       ON s.bucket = b.bucket WHERE isfinite({q}))
            SELECT '{c}', x.bucket, count(*) FILTER (WHERE r.v IS NULL), {u_ref[c]} + count(*) FILTER (WHERE r.v IS NULL)
            FROM x LEFT JOIN (SELECT v FROM drift_rv WHERE col = '{c}') r ON x.v = r.v GROUP BY x.bucket""", cp)
    uvals = ", ".join(f"('{c}', {u})" for c, u in u_ref.items()) or "(NULL, NULL)"
    ref_summary = con.execute(f"""
        SELECT r.col, r.n AS n_ref, u.u AS u_ref, coalesce(r.sd, 0) AS std_ref, r.lo AS vmin_ref, r.hi AS vmax_ref
        FROM drift_rst r JOIN (VALUES {uvals}) u(col, u) USING (col) WHERE r.n > 0 ORDER BY r.col""").df()
    bucket_summary = con.execute(f"""
        SELECT b.col, b.bucket, b.n_cur, coalesce(x.new_values, greatest(b.u_lb - u.u, 0)) AS new_values,
               b.vmin_cur, b.vmax_cur, b.ks_num, b.w1
        FROM drift_bsum b JOIN (VALUES {uvals}) u(col, u) USING (col) LEFT JOIN drift_new x USING (col, bucket)
        ORDER BY b.col, b.bucket""").df()
    con.execute("CREATE OR REPLACE TEMP TABLE drift_few AS SELECT col, bucket FROM drift_new WHERE u_all <= 5")
    few = [str(c) for c, in con.execute("SELECT DISTINCT col FROM drift_few ORDER BY col").fetchall()]
    ref_counts, cur_counts = numeric_counts(con, ref, cur, few, bucketed, buckets_of="drift_few")
    return ref_summary, bucket_summary, ref_counts, cur_counts


@engine_function
def numeric_counts(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, columns: list[str],
                   bucketed: bool = False, buckets_of: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value counts (finite values) of numerical ``columns``: reference (col, v, c), current (col, bucket, v, c);
    with ``buckets_of`` (a table of (col, bucket)), only the current buckets it lists per column."""
    if not columns:
        return pd.DataFrame(columns=["col", "v", "c"]), pd.DataFrame(columns=["col", "bucket", "v", "c"])
    rparts, cparts, rp, cp = [], [], [], []
    csql = _cur(cur, bucketed)
    for c in columns:
        q = quote(c)
        only = (f" SEMI JOIN (SELECT bucket FROM {buckets_of} WHERE col = '{c}') f ON s.bucket = f.bucket"
                if buckets_of else "")
        rparts.append(f"SELECT '{c}' AS col, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({ref.sql}) "
                      f"WHERE isfinite({q}) GROUP BY {q}")
        rp += list(ref.params)
        cparts.append(f"SELECT '{c}' AS col, s.bucket, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({csql}) s"
                      f"{only} WHERE isfinite({q}) GROUP BY s.bucket, {q}")
        cp += list(cur.params)
    return (con.execute(" UNION ALL ".join(rparts) + " ORDER BY col, v", rp).df(),
            con.execute(" UNION ALL ".join(cparts) + " ORDER BY col, bucket, v", cp).df())


@engine_function
def sample_frame(con: duckdb.DuckDBPyConnection, src: Source, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows of ``src`` as a DataFrame: all of them when there are at most ``n``, else a reservoir sample of
    exactly ``n`` rows (repeatable for a given seed)."""
    return con.execute(f"SELECT * FROM ({src.sql}) s USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})",
                       list(src.params)).df()
