"""SQL of model quality: confusion counts, exact ROC AUC, calibration bins, CBPE sums, label delay.

Every query runs over one relation: the model's successful predictions (``status = 'ok'``) in a window,
left-joined with their current label (``label`` NULL = not labelled yet). Per row it derives:

* ``p_pos``: probability of the positive class (binary models only): the ``proba_<positive>`` column, or,
  when that is NULL, ``score`` turned around when the prediction is the other class;
* ``conf``: probability of the predicted class (``proba_<prediction>``, else ``score``): the chance the
  prediction is right if the scores are calibrated, which is what confidence-based performance estimation
  (CBPE) averages.

A NaN score or probability counts as missing (as NULL), so it falls back like one and never turns a sum
or an AUC into NaN.

Label coverage has one definition, here, for every caller (the Overview's store summary, the Operations
page, ``vigil ops``, policies, the exporter, reports): labelled successful predictions / successful
predictions, both counted over this relation by :data:`COVERAGE_COUNTS` and divided by
:func:`label_coverage`. A failed request carries no usable prediction, so neither it nor a label sent for
it counts.

The label queries (confusion, ROC AUC, calibration, label delay) read only labelled rows: a caller that
needs several of them keeps those rows once with :func:`labelled_rows` and points each query at them,
so the logs are joined with the labels once instead of once per query (on 10M rows: 1.8 s once, then
about 0.1-0.5 s per query, against 1.3-3 s per query re-joining).

ROC AUC is the Mann-Whitney statistic with ties counted one half, computed over the distinct score values
with a running sum: exact (equal to scikit-learn's trapezoidal ROC AUC), whatever the number of rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors.engines.base import engine_function
from connectors.schema import LogSchema, nan_as_null, quote

BUCKETS: dict[str, str] = {"hour": "hour", "day": "day", "week": "week"}
CALIBRATION_BINS = 10
#: The counts label coverage is made of, over :func:`relation`: successful predictions and labelled ones.
COVERAGE_COUNTS = "count(*) AS n, count(label) AS n_labelled"
#: The columns of :func:`relation` the label queries read, which :func:`labelled_rows` keeps.
LABELLED_COLUMNS = "ts, prediction, label, label_ts, p_pos"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def relation(schema: LogSchema, positive: str | None, start: datetime, end: datetime,
             version: str | None = None) -> tuple[str, list[Any]]:
    """The per-row relation (SQL text and its parameters) every quality query reads."""
    proba = {c: nan_as_null(f"t.{quote(col)}") for c, col in schema.probability_columns.items()}
    score = nan_as_null("t.score")
    conf_arms = " ".join(f"WHEN {_literal(c)} THEN {col}" for c, col in proba.items())
    conf = f"coalesce(CASE t.prediction {conf_arms} ELSE NULL END, {score})"
    if positive is not None:
        pos = _literal(positive)
        p_pos = (f"coalesce({proba[positive]}, "
                 f"CASE WHEN t.prediction = {pos} THEN {score} ELSE 1 - {score} END)")
    else:
        p_pos = "CAST(NULL AS DOUBLE)"
    where = "t.ts >= ? AND t.ts < ? AND t.status = 'ok' AND t.prediction IS NOT NULL"
    params: list[Any] = [start, end]
    if version is not None:
        where += " AND t.model_version = ?"
        params.append(version)
    sql = (f"(SELECT t.ts, t.model_version AS version, t.prediction, l.label, l.ts AS label_ts, "
           f"CAST({p_pos} AS DOUBLE) AS p_pos, CAST({conf} AS DOUBLE) AS conf "
           f"FROM {schema.table} t LEFT JOIN current_labels l "
           f"ON l.model_name = {_literal(schema.model)} AND l.prediction_id = t.prediction_id "
           f"WHERE {where})")
    return sql, params


def label_coverage(n_labelled: int, n_rows: int) -> float | None:
    """Share of the successful predictions that have a label (None without any)."""
    return n_labelled / n_rows if n_rows else None


@engine_function
def label_counts(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: datetime = datetime.min,
                 end: datetime = datetime.max, version: str | None = None) -> tuple[int, int]:
    """Successful predictions in ``[start, end)`` and how many of them have a label (default: every row)."""
    rel, params = relation(schema, None, start, end, version)
    row = con.execute(f"SELECT {COVERAGE_COUNTS} FROM {rel}", params).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def labelled_rows_sql(rel: str) -> str:
    """The labelled rows of ``rel``, with the columns the label queries read."""
    return f"SELECT {LABELLED_COLUMNS} FROM {rel} WHERE label IS NOT NULL"


@engine_function
def labelled_rows(con: duckdb.DuckDBPyConnection, rel: str,
                  params: Sequence[Any]) -> AbstractContextManager[tuple[str, list[Any]]]:
    """Keep the labelled rows of ``rel`` for the block: yields the relation and parameters that the label
    queries take instead of ``(rel, params)``. On DuckDB a temporary table of this connection (its own
    name, dropped at the end, also when the block fails)."""
    return _temp_table(con, labelled_rows_sql(rel), params)


@contextmanager
def _temp_table(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
    name = f"vigil_kept_{uuid.uuid4().hex}"
    con.execute(f"CREATE TEMP TABLE {name} AS {sql}", list(params))
    try:
        yield f"(SELECT * FROM {name})", []
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")


@engine_function
def confusion(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any]) -> pd.DataFrame:
    """Labelled rows counted per (label, prediction)."""
    return con.execute(f"SELECT label, prediction, count(*) AS n FROM {rel} WHERE label IS NOT NULL "
                       "GROUP BY ALL ORDER BY ALL", list(params)).df()


@engine_function
def roc_auc(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any],
            positive: str) -> tuple[float | None, int, int]:
    """Exact ROC AUC of ``p_pos`` on labelled rows, with the positive and negative counts.

    AUC = (sum over score values v of pos(v) * (neg below v + neg(v) / 2)) / (pos * neg).
    """
    row = con.execute(f"""
        WITH g AS (
            SELECT p_pos AS v, count(*) FILTER (WHERE label = ?) AS pos,
                   count(*) FILTER (WHERE label <> ?) AS neg
            FROM {rel} WHERE label IS NOT NULL AND p_pos IS NOT NULL GROUP BY 1),
        c AS (
            SELECT pos, neg, coalesce(sum(neg) OVER (ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING
                                                     AND 1 PRECEDING), 0) AS neg_below FROM g)
        SELECT sum(CAST(pos AS DOUBLE) * (neg_below + neg / 2.0)), sum(pos), sum(neg) FROM c
    """, [positive, positive, *params]).fetchone()
    assert row is not None
    n_pos, n_neg = int(row[1] or 0), int(row[2] or 0)
    if n_pos == 0 or n_neg == 0:
        return None, n_pos, n_neg
    return float(row[0]) / (n_pos * n_neg), n_pos, n_neg


@engine_function
def calibration_bins(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any], positive: str,
                     bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Labelled rows in ``bins`` equal-width bins of ``p_pos``: count, mean probability, share positive.

    Edges are numpy's ``linspace(0, 1, bins + 1)`` and a value on an edge falls in the lower bin, as in
    scikit-learn's ``calibration_curve(strategy="uniform")``, so the curves are identical.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    arms = " ".join(f"WHEN p_pos <= {float(e)!r} THEN {i}" for i, e in enumerate(edges[1:-1]))
    return con.execute(f"""
        SELECT CASE {arms} ELSE {bins - 1} END AS bin, count(*) AS n, avg(p_pos) AS mean_proba,
               avg(CASE WHEN label = ? THEN 1.0 ELSE 0.0 END) AS frac_positive
        FROM {rel} WHERE label IS NOT NULL AND p_pos IS NOT NULL GROUP BY 1 ORDER BY 1
    """, [positive, *params]).df()


@engine_function
def bucket_sums(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any],
                bucket: str | None) -> pd.DataFrame:
    """Per time bucket (or overall): rows, labelled rows, correct ones, and CBPE confidence sums."""
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    key = f"date_trunc('{BUCKETS[bucket]}', ts) AS bucket, " if bucket else ""
    group = "GROUP BY ALL ORDER BY ALL" if bucket else ""
    df = con.execute(f"""
        SELECT {key}{COVERAGE_COUNTS},
               count(*) FILTER (WHERE label = prediction) AS n_correct,
               count(conf) AS n_conf,
               sum(conf) AS sum_conf,
               count(conf) FILTER (WHERE label IS NOT NULL) AS n_conf_labelled,
               sum(conf) FILTER (WHERE label IS NOT NULL) AS sum_conf_labelled,
               count(conf) FILTER (WHERE label IS NULL) AS n_conf_unlabelled,
               sum(conf) FILTER (WHERE label IS NULL) AS sum_conf_unlabelled
        FROM {rel} {group}
    """, list(params)).df()
    for col in ("n", "n_labelled", "n_correct", "n_conf", "n_conf_labelled", "n_conf_unlabelled"):
        df[col] = df[col].fillna(0).astype("int64")
    return df


@engine_function
def label_delay(con: duckdb.DuckDBPyConnection, rel: str, params: Sequence[Any],
                max_days: int = 30) -> tuple[dict[str, Any], pd.DataFrame]:
    """Delay from prediction to its current label (hours): summary statistics and a per-day histogram.

    Labels recorded without a time are left out; delays of ``max_days`` or more share the last bin.
    """
    delay = "(epoch(label_ts) - epoch(ts)) / 3600.0"
    row = con.execute(f"""
        SELECT count(*), quantile_cont(d, [0.5, 0.9, 0.99]), avg(d), min(d), max(d),
               count(*) FILTER (WHERE d < 0)
        FROM (SELECT {delay} AS d FROM {rel} WHERE label IS NOT NULL AND label_ts IS NOT NULL)
    """, list(params)).fetchone()
    assert row is not None
    q = row[1] or [None, None, None]
    summary = {"n": int(row[0]), "p50_hours": q[0], "p90_hours": q[1], "p99_hours": q[2],
               "mean_hours": row[2], "min_hours": row[3], "max_hours": row[4], "n_negative": int(row[5])}
    hist = con.execute(f"""
        SELECT least(greatest(floor(d / 24.0), 0), {max_days}) AS day, count(*) AS n
        FROM (SELECT {delay} AS d FROM {rel} WHERE label IS NOT NULL AND label_ts IS NOT NULL)
        GROUP BY 1 ORDER BY 1
    """, list(params)).df()
    hist["day"] = hist["day"].astype("int64")
    return summary, hist
