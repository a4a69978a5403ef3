"""Spark counterparts of :mod:`connectors.queries.reference`: the persisted reference as Parquet beside
the lake views (the manifest stays in DuckDB, Vigil's own state)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from connectors.engines.spark.same import same_sql
from connectors.engines.spark.session import SparkHandle
from connectors.logstore import utcnow
from connectors.queries import reference as q
from connectors.schema import LogSchema, quote

has_labels = same_sql(q.has_labels)


def materialised_columns(con: SparkHandle, model: str, version: str) -> tuple[str, ...] | None:
    table = q.reference_table(model, version)
    with con.duckdb_state() as duck:
        q._ensure_manifest(duck)
        row = duck.execute(f"SELECT table_name FROM {q.MANIFEST_TABLE} WHERE model = ? AND version = ?",
                           [model, version]).fetchone()
    if row is None or not con.engine.has_reference(table):
        return None
    return tuple(con.spark.table(table).columns)


def materialise(con: SparkHandle, model: str, version: str, frame: pd.DataFrame,
                column_types: Mapping[str, str]) -> tuple[str, ...]:
    keep = [c for c in column_types if c in frame.columns]
    if not keep:
        raise q.ReferenceError(f"the training data of '{model}' version {version} has none of the columns "
                               f"{', '.join(column_types)}; log the training frame with the feature columns")
    sub = frame[keep].copy()
    for c in keep:  # the types the log view has, as DuckDB's TRY_CAST gives them
        if column_types[c] == "numerical":
            sub[c] = pd.to_numeric(sub[c], errors="coerce").astype("float64")
        else:
            sub[c] = sub[c].astype(object).where(sub[c].notna(), None).map(lambda v: None if v is None else str(v))
    table = q.reference_table(model, version)
    con.engine.write_reference(table, con.spark.createDataFrame(sub) if len(sub) else
                               con.spark.sql("SELECT " + ", ".join(
                                   f"CAST(NULL AS {'DOUBLE' if column_types[c] == 'numerical' else 'STRING'}) "
                                   f"AS {quote(c)}" for c in keep) + " WHERE FALSE"))
    with con.duckdb_state() as duck:
        q._ensure_manifest(duck)
        duck.execute(f"DELETE FROM {q.MANIFEST_TABLE} WHERE model = ? AND version = ?", [model, version])
        duck.execute(f"INSERT INTO {q.MANIFEST_TABLE} VALUES (?, ?, ?, ?, ?)",
                     [model, version, table, len(sub), utcnow()])
    return tuple(keep)


def log_columns(con: SparkHandle, schema: LogSchema) -> tuple[str, ...]:
    return tuple(con.spark.table(schema.table).columns)
