"""SQL of segment metrics: per value (or pair of values) of segment columns, the counts every segment
metric is made of, in one GROUP BY over the model's logs joined with their current labels.

Counts per segment: rows, failed rows (``status`` not 'ok'), successful rows with a prediction,
labelled ones and correct ones among them, the sum and count of the predicted class's probability
(CBPE's estimated accuracy), and successful predictions of the favourable class (selection rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from connectors.engines.base import duckdb_function
from connectors.queries.reference import RowFilter
from connectors.schema import LogSchema, nan_as_null, quote

MISSING = "(missing)"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _key(column: str) -> str:
    """A segment column's value as the segment's key (NULL read as '(missing)')."""
    return f"coalesce(CAST(t.{quote(column)} AS VARCHAR), {_literal(MISSING)})"


def segment_filter(columns: Sequence[str], values: Sequence[str]) -> RowFilter:
    """The rows of one segment (the values :func:`segment_counts` reports for ``columns``), for other
    queries over the same log table (drift within the segment)."""
    return RowFilter(" AND ".join(f"{_key(c)} = ?" for c in columns), tuple(str(v) for v in values))


@duckdb_function
def segment_counts(con: duckdb.DuckDBPyConnection, schema: LogSchema, columns: Sequence[str], start: datetime,
                   end: datetime, favourable: str | None, version: str | None = None) -> pd.DataFrame:
    """One row per combination of ``columns`` values in ``[start, end)`` (NULL shown as '(missing)')."""
    proba = {c: nan_as_null(f"t.{quote(col)}") for c, col in schema.probability_columns.items()}
    arms = " ".join(f"WHEN {_literal(c)} THEN {col}" for c, col in proba.items())
    conf = f"coalesce(CASE t.prediction {arms} ELSE NULL END, {nan_as_null('t.score')})"
    ok = "t.status = 'ok' AND t.prediction IS NOT NULL"
    keys = ", ".join(f"{_key(c)} AS s{i}" for i, c in enumerate(columns))
    fav = f"count(*) FILTER (WHERE {ok} AND t.prediction = {_literal(favourable)})" if favourable else "0"
    where = "t.ts >= ? AND t.ts < ?"
    params: list[Any] = [start, end]
    if version is not None:
        where += " AND t.model_version = ?"
        params.append(version)
    sql = f"""
        SELECT {keys}, count(*) AS n, count(*) FILTER (WHERE t.status <> 'ok') AS n_error,
               count(*) FILTER (WHERE {ok}) AS n_ok,
               count(l.label) FILTER (WHERE {ok}) AS n_labelled,
               count(*) FILTER (WHERE {ok} AND l.label = t.prediction) AS n_correct,
               count({conf}) FILTER (WHERE {ok}) AS n_conf, sum({conf}) FILTER (WHERE {ok}) AS sum_conf,
               {fav} AS n_favourable
        FROM {schema.table} t LEFT JOIN current_labels l
          ON l.model_name = {_literal(schema.model)} AND l.prediction_id = t.prediction_id
        WHERE {where} GROUP BY ALL ORDER BY ALL"""
    df = con.execute(sql, params).df()
    for col in ("n", "n_error", "n_ok", "n_labelled", "n_correct", "n_conf", "n_favourable"):
        df[col] = df[col].fillna(0).astype("int64")
    df["sum_conf"] = df["sum_conf"].fillna(0.0).astype(float)
    return df


__all__: Sequence[str] = ("MISSING", "segment_counts", "segment_filter")
