"""Spark counterparts of :mod:`connectors.queries.quality`: the same SQL over the same relation, except
the label delay (DuckDB's ``epoch`` and list quantiles are spelled differently in Spark)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pandas as pd

from connectors.engines.spark.same import same_sql
from connectors.engines.spark.session import SparkHandle
from connectors.queries import quality as q

label_counts = same_sql(q.label_counts)
confusion = same_sql(q.confusion)
roc_auc = same_sql(q.roc_auc)
calibration_bins = same_sql(q.calibration_bins)
bucket_sums = same_sql(q.bucket_sums)


def labelled_rows(con: SparkHandle, rel: str,
                  params: Sequence[Any]) -> AbstractContextManager[tuple[str, list[Any]]]:
    """The labelled rows cached in memory as a temporary view of the session (its own name; unpersisted
    and dropped at the end), so the label queries read the lake and join the labels once."""
    return _cached_view(con, q.labelled_rows_sql(rel), params)


@contextmanager
def _cached_view(con: SparkHandle, sql: str, params: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
    name = f"vigil_kept_{uuid.uuid4().hex}"
    frame = con.frame(sql, list(params)).cache()
    frame.createOrReplaceTempView(name)
    try:
        yield name, []
    finally:
        con.spark.catalog.dropTempView(name)
        frame.unpersist()


def label_delay(con: SparkHandle, rel: str, params: Sequence[Any],
                max_days: int = 30) -> tuple[dict[str, Any], pd.DataFrame]:
    delay = "(unix_micros(label_ts) - unix_micros(ts)) / 3600000000.0D"
    inner = f"SELECT {delay} AS d FROM {rel} WHERE label IS NOT NULL AND label_ts IS NOT NULL"
    row = con.rows(f"SELECT count(*), percentile(d, array(0.5, 0.9, 0.99)), avg(d), min(d), max(d), "
                   f"count(*) FILTER (WHERE d < 0) FROM ({inner})", list(params))[0]
    qs = row[1] or [None, None, None]
    summary = {"n": int(row[0]), "p50_hours": qs[0], "p90_hours": qs[1], "p99_hours": qs[2],
               "mean_hours": row[2], "min_hours": row[3], "max_hours": row[4], "n_negative": int(row[5])}
    hist = con.df(f"SELECT CAST(least(greatest(floor(d / 24.0D), 0), {int(max_days)}) AS BIGINT) AS day, "
                  f"count(*) AS n FROM ({inner}) GROUP BY 1 ORDER BY 1", list(params))
    hist["day"] = hist["day"].astype("int64")
    return summary, hist
