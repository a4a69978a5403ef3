"""SQL of confidence-based performance estimation (CBPE, as NannyML computes it) for binary models.

Every query reads :func:`scored_relation`: the successful predictions of a window that carry a
positive-class probability, with ``u`` = that probability as logged (uncalibrated), ``yp`` = 1 when the
prediction is the positive class, ``yt`` = 1/0 for a labelled row (NULL when unlabelled).

The calibration map (a piecewise-linear isotonic fit from the reference, see
:mod:`dashboard.monitoring.estimation`) reaches the engine as a small table of knots ``(x, y, x_next,
y_next)``; each row's calibrated probability ``c`` is found with an ASOF join and interpolated exactly as
``numpy.interp`` does (clipped to the first and last knot, as scikit-learn's ``IsotonicRegression`` with
``out_of_bounds="clip"``). Without knots ``c = u``.

Per bucket the engine returns sums (expected TP, FP, FN, TN) and NannyML's estimated ROC AUC: rows
sorted by ``u`` descending, cumulative sums of ``c`` and ``1 - c`` rounded to 5 decimals (NannyML's
``estimate_roc_auc`` rounds them too), trapezoidal area under that curve. Realised metrics come from
confusion counts and the exact Mann-Whitney ROC AUC of ``u`` on labelled rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from connectors.engines.base import duckdb_function
from connectors.queries import quality as qq
from connectors.schema import LogSchema

BUCKETS: dict[str, str] = {"hour": "hour", "day": "day", "week": "week"}
KNOTS_VIEW = "vigil_cbpe_knots"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _bucket_expr(bucket: str | None) -> str:
    if bucket is None:
        return "CAST(NULL AS TIMESTAMP)"
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    return f"date_trunc('{BUCKETS[bucket]}', ts)"


def scored_relation(schema: LogSchema, positive: str, start: datetime, end: datetime,
                    version: str | None = None, bucket: str | None = None) -> tuple[str, list[Any]]:
    """Successful predictions with a positive-class probability: bucket, ts, u, yp, yt (SQL, params)."""
    rel, params = qq.relation(schema, positive, start, end, version)
    pos = _literal(positive)
    sql = (f"(SELECT {_bucket_expr(bucket)} AS bucket, ts, p_pos AS u, "
           f"CAST(prediction = {pos} AS INTEGER) AS yp, "
           f"CASE WHEN label IS NULL THEN NULL ELSE CAST(label = {pos} AS INTEGER) END AS yt "
           f"FROM {rel} WHERE p_pos IS NOT NULL)")
    return sql, params


@duckdb_function
def score_counts(con: duckdb.DuckDBPyConnection, schema: LogSchema, positive: str, start: datetime,
                 end: datetime, version: str | None = None) -> tuple[int, int]:
    """Successful predictions of the window and how many of them carry no usable probability."""
    rel, params = qq.relation(schema, positive, start, end, version)
    # fetchall: a result left half-read (fetchone) makes the connection refuse register() until it is done
    row = next(iter(con.execute(f"SELECT count(*), count(*) FILTER (WHERE p_pos IS NULL) FROM {rel}",
                                params).fetchall()), None)
    assert row is not None
    return int(row[0]), int(row[1])


@duckdb_function
def reference_rows(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any]) -> pd.DataFrame:
    """The labelled rows of a reference relation in a fixed order: ts, bucket, u, yp, yt.

    Why rows: the calibration test, the isotonic fit and the ROC AUC sampling error need the reference
    itself; the reference is bounded (see ``estimation_max_reference_rows``), the current side never is.
    """
    return con.execute(f"SELECT ts, bucket, u, yp, yt FROM {rel} WHERE yt IS NOT NULL "
                       "ORDER BY ts, u, yp, yt", list(params)).df()


@duckdb_function
def labelled_fingerprint(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any]) -> str:
    """Count and order-free hash sum of the labelled rows (ts, bucket, u, yp, yt) of ``rel``: everything
    the reference's fit reads, so a fit kept under it is valid until one of those rows changes."""
    row = con.execute(f"SELECT count(*), sum(hash(ts, bucket, u, yp, yt)) FROM {rel} WHERE yt IS NOT NULL",
                      list(params)).fetchall()[0]
    return f"{int(row[0])}:{row[1]}"


def _calibrated(rel: str, with_knots: bool) -> str:
    if not with_knots:
        return f"(SELECT *, u AS c FROM {rel})"
    return (f"(SELECT r.*, CASE WHEN r.u <= b.x_min THEN b.y_min WHEN r.u >= b.x_max THEN b.y_max "
            f"ELSE (k.y_next - k.y) / (k.x_next - k.x) * (r.u - k.x) + k.y END AS c "
            f"FROM {rel} r ASOF LEFT JOIN {KNOTS_VIEW} k ON r.u >= k.x "
            f"CROSS JOIN (SELECT min(x) AS x_min, max(x) AS x_max, arg_min(y, x) AS y_min, "
            f"arg_max(y, x) AS y_max FROM {KNOTS_VIEW}) b)")


def _scopes(per_bucket: str, whole: str, overall: bool) -> str:
    """The per-bucket query, and with ``overall`` the same query over the whole relation appended (its
    ``bucket`` NULL, ``overall`` true): one read of the relation for both, as the page shows both."""
    first = f"SELECT FALSE AS overall, * FROM ({per_bucket})"
    return f"{first} UNION ALL SELECT TRUE AS overall, * FROM ({whole})" if overall else first


@duckdb_function
def estimated_sums(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any],
                   knots: pd.DataFrame | None, overall: bool = False) -> pd.DataFrame:
    """Per bucket: rows, expected confusion sums from calibrated probabilities, and the estimated ROC AUC;
    with ``overall`` also one row for the whole relation (``overall`` true, ``bucket`` NULL).

    ``knots`` (x, y sorted by x) is the calibration map, or None for uncalibrated scores. The calibrated
    rows are computed once (a materialised CTE) and sorted once per bucket and once overall.
    """
    if knots is not None:
        k = knots[["x", "y"]].sort_values("x").reset_index(drop=True)
        k["x_next"] = k["x"].shift(-1)
        k["y_next"] = k["y"].shift(-1)
        con.register(KNOTS_VIEW, k)

    def sums(key: str) -> str:
        return (f"SELECT {key} AS bucket, count(*) AS n, sum(yp * c) AS tp, sum(yp * (1 - c)) AS fp, "
                f"sum((1 - yp) * c) AS fn, sum((1 - yp) * (1 - c)) AS tn, sum(c) AS sum_c FROM cal"
                + (" GROUP BY bucket" if key == "bucket" else ""))

    def area(key: str, partition: str) -> str:
        # one sort: the previous point is this one less this row's c (and 1 - c); both coordinates only
        # grow along the curve, so the last point is the maximum
        return f"""
            SELECT bucket, sum((fps - fps0) * (tps + tps0) / 2.0) / (max(tps) * max(fps)) AS roc_auc
            FROM (SELECT bucket, round(cs, 5) AS tps, round(k - cs, 5) AS fps,
                         round(cs - c, 5) AS tps0, round(k - 1 - (cs - c), 5) AS fps0
                  FROM (SELECT {key} AS bucket, c, sum(c) OVER w AS cs, row_number() OVER w AS k FROM cal
                        WINDOW w AS ({partition}ORDER BY u DESC ROWS UNBOUNDED PRECEDING)))
            GROUP BY bucket"""

    null = "CAST(NULL AS TIMESTAMP)"
    try:
        cal = _calibrated(rel, knots is not None)
        df = con.execute(f"""
            WITH cal AS MATERIALIZED {cal},
            sums AS ({_scopes(sums("bucket"), sums(null), overall)}),
            area AS ({_scopes(area("bucket", "PARTITION BY bucket "), area(null, ""), overall)})
            SELECT s.*, a.roc_auc FROM sums s LEFT JOIN area a
                ON s.overall = a.overall AND s.bucket IS NOT DISTINCT FROM a.bucket
            ORDER BY s.overall, s.bucket
        """, list(params)).df()
    finally:
        if knots is not None:
            con.unregister(KNOTS_VIEW)
    df["n"] = df["n"].astype("int64")
    return df


@duckdb_function
def realised_counts(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any],
                    overall: bool = False) -> pd.DataFrame:
    """Per bucket, on labelled rows: confusion counts and the exact ROC AUC of the logged probability
    (Mann-Whitney with ties counted one half, equal to scikit-learn's); with ``overall`` also one row for
    the whole relation (``overall`` true, ``bucket`` NULL), from the same read of the labelled rows."""

    def counts(key: str) -> str:
        return (f"SELECT {key} AS bucket, count(*) AS n_labelled, "
                "count(*) FILTER (WHERE yp = 1 AND yt = 1) AS r_tp, count(*) FILTER (WHERE yp = 1 AND yt = 0) AS r_fp, "
                "count(*) FILTER (WHERE yp = 0 AND yt = 1) AS r_fn, count(*) FILTER (WHERE yp = 0 AND yt = 0) AS r_tn "
                "FROM lab" + (" GROUP BY bucket" if key == "bucket" else ""))

    def auc(key: str) -> str:
        part = "PARTITION BY bucket " if key == "bucket" else ""
        return f"""
            SELECT bucket, sum(CAST(pos AS DOUBLE) * (neg_below + neg / 2.0)) AS mw, sum(pos) AS n_pos,
                   sum(neg) AS n_neg
            FROM (SELECT bucket, pos, neg, coalesce(sum(neg) OVER (
                         {part}ORDER BY u ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS neg_below
                  FROM (SELECT {key} AS bucket, u, count(*) FILTER (WHERE yt = 1) AS pos,
                               count(*) FILTER (WHERE yt = 0) AS neg
                        FROM lab GROUP BY ALL))
            GROUP BY bucket"""

    null = "CAST(NULL AS TIMESTAMP)"
    df = con.execute(f"""
        WITH lab AS MATERIALIZED (SELECT bucket, u, yp, yt FROM {rel} WHERE yt IS NOT NULL),
        counts AS ({_scopes(counts("bucket"), counts(null), overall)}),
        auc AS ({_scopes(auc("bucket"), auc(null), overall)})
        SELECT counts.*, CASE WHEN auc.n_pos > 0 AND auc.n_neg > 0
                              THEN auc.mw / (CAST(auc.n_pos AS DOUBLE) * auc.n_neg) END AS r_roc_auc
        FROM counts LEFT JOIN auc ON counts.overall = auc.overall AND counts.bucket IS NOT DISTINCT FROM auc.bucket
        ORDER BY counts.overall, counts.bucket
    """, list(params)).df()
    for col in ("n_labelled", "r_tp", "r_fp", "r_fn", "r_tn"):
        df[col] = df[col].astype("int64")
    return df


__all__: Sequence[str] = ("BUCKETS", "estimated_sums", "labelled_fingerprint", "realised_counts",
                          "reference_rows", "score_counts", "scored_relation")
