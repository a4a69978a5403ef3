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


# ----------------------------------------------------------------------------- one window, large data

GRID = 65_536  # bins per column for the bounded pass of :func:`numeric_summary_window`


def _f(x: float) -> str:
    """A float literal typed DOUBLE (DuckDB reads a bare 0.25 as DECIMAL)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def numeric_summary_window(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source, columns: list[str],
                           grid: int = GRID) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The same exact aggregates as :func:`numeric_summary` for one current window, without sorting rows.

    Why: sorting millions of rows per column dominates the cost. Values are first counted into ``grid``
    equal-width bins over the pooled range, with ``sum(right edge - x)`` per bin; on a bin where
    ``F_ref - F_cur`` cannot change sign (known from the cumulative counts at its left edge and its
    masses) ``∫|F_ref - F_cur|`` equals the absolute value of the signed integral, which those sums give
    exactly. Only the bins where the sign may change, and the bins whose bound on ``sup|F_ref - F_cur|``
    exceeds the best value seen at a bin edge, are resolved row by row (sorted within the bin); a bin
    holding a single distinct value (discrete columns) has a closed form and is never resolved. The
    result is exact (same value as the full sort, up to floating-point rounding), and the row-level work
    is one hash aggregation plus a sort of the few undecided bins.
    """
    empty = pd.DataFrame()
    if not columns:
        return empty, empty, empty, empty
    stats_parts, params = [], []
    for side, src in (("r", ref), ("c", cur)):
        for c in columns:
            q = quote(c)
            f = f"FILTER (WHERE isfinite({q}))"
            stats_parts.append(f"SELECT '{c}' AS col, '{side}' AS side, count({q}) {f} AS n, min({q}) {f} AS lo, "
                               f"max({q}) {f} AS hi, stddev_pop({q}) {f} AS sd FROM ({src.sql})")
            params += list(src.params)
    st = con.execute(" UNION ALL ".join(stats_parts), params).df()
    info: dict[str, dict[str, Any]] = {}
    for c in columns:
        r = st[(st["col"] == c) & (st["side"] == "r")].iloc[0]
        k = st[(st["col"] == c) & (st["side"] == "c")].iloc[0]
        info[c] = {"nr": int(r["n"]), "nc": int(k["n"]), "lo_r": r["lo"], "hi_r": r["hi"], "lo_c": k["lo"],
                   "hi_c": k["hi"], "sd": r["sd"]}
    live = [c for c in columns if info[c]["nr"] > 0 and info[c]["nc"] > 0]
    spans: dict[str, tuple[float, float]] = {}
    for c in live:
        lo = min(float(info[c]["lo_r"]), float(info[c]["lo_c"]))
        hi = max(float(info[c]["hi_r"]), float(info[c]["hi_c"]))
        spans[c] = (lo, (hi - lo) / grid)
    binned = [c for c in live if spans[c][1] > 0]

    def bin_expr(c: str) -> str:
        lo, h = spans[c]
        return f"least(floor(({quote(c)} - {_f(lo)}) / {_f(h)}), {grid - 1})::INTEGER"

    result: dict[str, dict[str, Any]] = {c: {"ks_num": 0, "w1": 0.0} for c in live}
    if binned:
        parts, params = [], []
        for side, src in (("r", ref), ("c", cur)):
            for c in binned:
                lo, h = spans[c]
                parts.append(
                    f"SELECT '{c}' AS col, '{side}' AS side, k, count(*)::BIGINT AS cnt, sum((k + 1) * {_f(h)} - d) AS s, "
                    f"min(d) AS mn, max(d) AS mx FROM (SELECT {quote(c)} - {_f(lo)} AS d, {bin_expr(c)} AS k "
                    f"FROM ({src.sql}) WHERE isfinite({quote(c)})) GROUP BY k")
                params += list(src.params)
        con.execute("CREATE OR REPLACE TEMP TABLE drift_bins AS " + " UNION ALL ".join(parts), params)
        nvals = ", ".join(f"('{c}', {info[c]['nr']}, {info[c]['nc']}, {_f(spans[c][1])})" for c in binned)
        con.execute(f"CREATE OR REPLACE TEMP TABLE drift_n AS SELECT * FROM (VALUES {nvals}) t(col, nr, nc, h)")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE drift_m AS
            WITH j AS (
                SELECT coalesce(r.col, c.col) AS col, coalesce(r.k, c.k) AS k,
                       coalesce(r.cnt, 0) AS cr, coalesce(c.cnt, 0) AS cc, coalesce(r.s, 0) AS sr,
                       coalesce(c.s, 0) AS sc, least(r.mn, c.mn) AS mn, greatest(r.mx, c.mx) AS mx
                FROM (SELECT * FROM drift_bins WHERE side = 'r') r
                FULL JOIN (SELECT * FROM drift_bins WHERE side = 'c') c ON r.col = c.col AND r.k = c.k),
            w AS (
                SELECT j.*, n.nr, n.nc, n.h,
                       sum(cr) OVER o - cr AS cra, sum(cc) OVER o - cc AS cca,
                       coalesce(j.k - lag(j.k) OVER o - 1, 0) AS empty_before
                FROM j JOIN drift_n n USING (col)
                WINDOW o AS (PARTITION BY j.col ORDER BY j.k ROWS UNBOUNDED PRECEDING))
            SELECT *, cra * nc - cca * nr AS da, mx = mn AS single,
                   (cra * nc - cca * nr) - cc * nr < 0 AND (cra * nc - cca * nr) + cr * nc > 0 AS mixed,
                   greatest((cra * nc - cca * nr) + cr * nc, cc * nr - (cra * nc - cca * nr)) AS ub
            FROM w""")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE drift_refine AS
            WITH l AS (SELECT col, max(abs(da)) AS lb FROM drift_m GROUP BY col)
            SELECT m.col, m.k, m.cra, m.cca, m.nr, m.nc, m.h FROM drift_m m JOIN l USING (col)
            WHERE NOT m.single AND (m.mixed OR m.ub > l.lb)""")
        parts, params = [], []
        for side, src in (("r", ref), ("c", cur)):
            for c in binned:
                lo, h = spans[c]
                parts.append(
                    f"SELECT '{c}' AS col, x.k, x.d, {1 if side == 'r' else 0} AS isref FROM (SELECT {quote(c)} - {_f(lo)} AS d, "
                    f"{bin_expr(c)} AS k FROM ({src.sql}) WHERE isfinite({quote(c)})) x "
                    f"SEMI JOIN (SELECT k FROM drift_refine WHERE col = '{c}') f ON x.k = f.k")
                params += list(src.params)
        exact = con.execute(f"""
            WITH x AS ({' UNION ALL '.join(parts)}),
            g AS (SELECT col, k, d, sum(isref)::BIGINT AS r, (count(*) - sum(isref))::BIGINT AS c FROM x GROUP BY col, k, d),
            w AS (SELECT g.col, g.k, g.d, f.nr, f.nc, f.h,
                         f.cra + sum(g.r) OVER o AS cr, f.cca + sum(g.c) OVER o AS cc,
                         coalesce(lead(g.d) OVER o, (g.k + 1) * f.h) AS nd,
                         CASE WHEN row_number() OVER o = 1 THEN g.d - g.k * f.h ELSE 0 END AS first_gap,
                         f.cra * f.nc - f.cca * f.nr AS da
                  FROM g JOIN drift_refine f ON g.col = f.col AND g.k = f.k
                  WINDOW o AS (PARTITION BY g.col, g.k ORDER BY g.d ROWS UNBOUNDED PRECEDING))
            SELECT col, max(abs(cr * nc - cc * nr)) AS ks_num,
                   sum(abs(cr::DOUBLE / nr - cc::DOUBLE / nc) * (nd - d) + abs(da::DOUBLE) / nr / nc * first_gap) AS w1
            FROM w GROUP BY col""", params).df()
        coarse = con.execute("""
            SELECT m.col, max(abs(m.da)) AS lb,
                   sum(CASE WHEN f.k IS NOT NULL THEN 0
                            WHEN m.single THEN (abs(m.da::DOUBLE) * (m.mn - m.k * m.h)
                                                + abs((m.da + m.cr * m.nc - m.cc * m.nr)::DOUBLE) * ((m.k + 1) * m.h - m.mn))
                                               / m.nr / m.nc
                            ELSE abs(m.da::DOUBLE / m.nr / m.nc * m.h + m.sr / m.nr - m.sc / m.nc)
                       END + abs(m.da::DOUBLE) / m.nr / m.nc * m.h * m.empty_before) AS w1,
                   sum(1 + (m.mx > m.mn)::INTEGER) AS u_lb
            FROM drift_m m LEFT JOIN drift_refine f ON m.col = f.col AND m.k = f.k GROUP BY m.col""").df()
        ex: dict[str, tuple[int, float]] = {str(c): (int(k), float(w)) for c, k, w in
                                             zip(exact["col"], exact["ks_num"], exact["w1"], strict=True)}
        for c, lb, w1, u_lb in zip(coarse["col"], coarse["lb"], coarse["w1"], coarse["u_lb"], strict=True):
            ek, ew = ex.get(str(c), (0, 0.0))
            result[str(c)] = {"ks_num": max(int(lb), ek), "w1": float(w1) + ew, "u_lb": int(u_lb)}
    # Distinct values: exact where the bound says the count may be small (where the method rule looks).
    small = [c for c in live if result[c].get("u_lb", 1) <= 20]
    distinct: dict[str, tuple[int, int]] = {}
    for c in small:
        q = quote(c)
        row = con.execute(
            f"SELECT count(DISTINCT v) FILTER (WHERE s = 'r'), count(DISTINCT v) FROM ("
            f"SELECT {q}::DOUBLE AS v, 'r' AS s FROM ({ref.sql}) WHERE isfinite({q}) UNION ALL "
            f"SELECT {q}::DOUBLE, 'c' FROM ({cur.sql}) WHERE isfinite({q}))",
            [*ref.params, *cur.params]).fetchone()
        assert row is not None
        distinct[c] = (int(row[0]), int(row[1]))
    ref_rows, cur_rows = [], []
    for c in live:
        u_ref, u_all = distinct.get(c, (21, 21 + 1))
        i = info[c]
        ref_rows.append({"col": c, "n_ref": i["nr"], "u_ref": u_ref, "vmin_ref": float(i["lo_r"]),
                         "vmax_ref": float(i["hi_r"]), "std_ref": 0.0 if i["sd"] is None else float(i["sd"])})
        cur_rows.append({"col": c, "bucket": pd.Timestamp("1970-01-01"), "n_cur": i["nc"], "u_cur": None,
                         "new_values": u_all - u_ref, "vmin_cur": float(i["lo_c"]), "vmax_cur": float(i["hi_c"]),
                         "ks_num": result[c]["ks_num"], "w1": result[c]["w1"]})
    few = [c for c in live if c in distinct and distinct[c][1] <= 5]
    ref_counts, cur_counts = numeric_counts(con, ref, cur, few)
    return pd.DataFrame(ref_rows), pd.DataFrame(cur_rows), ref_counts, cur_counts


def numeric_counts(con: duckdb.DuckDBPyConnection, ref: Source, cur: Source,
                   columns: list[str], bucketed: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value counts (finite values) of numerical ``columns``: reference (col, v, c), current (col, bucket, v, c)."""
    if not columns:
        return pd.DataFrame(columns=["col", "v", "c"]), pd.DataFrame(columns=["col", "bucket", "v", "c"])
    rparts, cparts, rp, cp = [], [], [], []
    csql = _cur(cur, bucketed)
    for c in columns:
        q = quote(c)
        rparts.append(f"SELECT '{c}' AS col, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({ref.sql}) "
                      f"WHERE isfinite({q}) GROUP BY {q}")
        rp += list(ref.params)
        cparts.append(f"SELECT '{c}' AS col, bucket, {q}::DOUBLE AS v, count(*)::BIGINT AS c FROM ({csql}) "
                      f"WHERE isfinite({q}) GROUP BY bucket, {q}")
        cp += list(cur.params)
    return (con.execute(" UNION ALL ".join(rparts) + " ORDER BY col, v", rp).df(),
            con.execute(" UNION ALL ".join(cparts) + " ORDER BY col, bucket, v", cp).df())


def sample_frame(con: duckdb.DuckDBPyConnection, src: Source, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows of ``src`` as a DataFrame: all of them when there are at most ``n``, else a reservoir sample of
    exactly ``n`` rows (repeatable for a given seed)."""
    return con.execute(f"SELECT * FROM ({src.sql}) s USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})",
                       list(src.params)).df()
