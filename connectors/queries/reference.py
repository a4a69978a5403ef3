"""Reference data inside the log store, so that every drift comparison is one query over one engine.

A reference is either a materialised table (the champion's training data, copied once per model version
into ``ref_<model>__v<version>``) or a time window of the model's own logs. :class:`Source` is the common
shape: a SELECT that yields the drift columns (plus ``bucket`` for the current side) and its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from connectors.engines.base import engine_function
from connectors.errors import ConnectorError
from connectors.logstore import utcnow
from connectors.schema import LogSchema, quote, sql_identifier

MANIFEST_TABLE = "reference_manifest"
LABEL_COLUMN = "label"
PREDICTION_COLUMN = "prediction"
BUCKET_UNITS: dict[str, str] = {"day": "day", "hour": "hour"}


class ReferenceError(ConnectorError):
    """Reference data could not be materialised or read; the message names the fix."""


@dataclass(frozen=True)
class Source:
    """A relation of drift columns: ``SELECT ... FROM ...`` (no trailing semicolon) and its parameters.

    ``columns`` lists the drift columns the relation really has (a feature missing from a training
    frame is absent here, and the caller reports it instead of failing the whole comparison).
    ``rebuild`` makes the same relation with fewer columns (see :meth:`narrow`).
    """

    sql: str
    params: tuple[Any, ...] = ()
    columns: tuple[str, ...] = field(default_factory=tuple)
    label: str = ""
    rebuild: Callable[[tuple[str, ...]], Source] | None = field(default=None, compare=False, repr=False)

    def narrow(self, columns: Iterable[str]) -> Source:
        """The same rows with only ``columns`` (those it has). Why: a query that reads no ``label`` must
        not pay the join that brings it (on 10M logs and 3M labels the join costs 0.7 s per scan, and a
        drift query scans the source once per column); an engine does not drop an unused LEFT JOIN."""
        keep = tuple(c for c in self.columns if c in set(columns))
        if self.rebuild is None or keep == self.columns:
            return self
        return self.rebuild(keep)


@dataclass(frozen=True)
class RowFilter:
    """A condition on the log table's rows (alias ``t``), e.g. one segment: SQL and its parameters."""

    sql: str
    params: tuple[Any, ...] = ()


def reference_table(model: str, version: str) -> str:
    """Name of the materialised training-data table of ``model`` version ``version``."""
    return f"ref_{sql_identifier(model)}__v{re.sub(r'[^A-Za-z0-9_]', '_', version)}"


def _ensure_manifest(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (
        model VARCHAR NOT NULL, version VARCHAR NOT NULL, table_name VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL, created TIMESTAMP NOT NULL, PRIMARY KEY (model, version))""")


@engine_function
def materialised_columns(con: duckdb.DuckDBPyConnection, model: str, version: str) -> tuple[str, ...] | None:
    """Columns of the materialised reference of ``model``/``version``, or None when not materialised yet."""
    _ensure_manifest(con)
    row = con.execute(f"SELECT table_name FROM {MANIFEST_TABLE} WHERE model = ? AND version = ?",
                      [model, version]).fetchone()
    if row is None:
        return None
    cols = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                       "ORDER BY ordinal_position", [row[0]]).fetchall()
    return tuple(str(c[0]) for c in cols)


@engine_function
def materialise(con: duckdb.DuckDBPyConnection, model: str, version: str, frame: pd.DataFrame,
                column_types: Mapping[str, str]) -> tuple[str, ...]:
    """Copy the drift columns of ``frame`` into the reference table of ``model``/``version``.

    Numerical columns become DOUBLE and categorical ones VARCHAR (as in the log table), so a reference
    and a window compare value for value. Idempotent: an existing table is replaced atomically.
    """
    _ensure_manifest(con)
    keep = [c for c in column_types if c in frame.columns]
    if not keep:
        raise ReferenceError(f"the training data of '{model}' version {version} has none of the columns "
                             f"{', '.join(column_types)}; log the training frame with the feature columns")
    exprs = []
    for c in keep:
        typ = "DOUBLE" if column_types[c] == "numerical" else "VARCHAR"
        exprs.append(f"TRY_CAST({quote(c)} AS {typ}) AS {quote(c)}")
    table = reference_table(model, version)
    sub = frame[keep]
    con.register("vigil_reference_frame", sub)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {', '.join(exprs)} FROM vigil_reference_frame")
        con.execute(f"DELETE FROM {MANIFEST_TABLE} WHERE model = ? AND version = ?", [model, version])
        con.execute(f"INSERT INTO {MANIFEST_TABLE} VALUES (?, ?, ?, ?, ?)",
                    [model, version, table, len(sub), utcnow()])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise ReferenceError(f"could not store the reference of '{model}' version {version}: {exc}") from None
    finally:
        con.unregister("vigil_reference_frame")
    return tuple(keep)


def table_source(model: str, version: str, columns: tuple[str, ...], label: str) -> Source:
    """The materialised reference of ``model``/``version`` as a :class:`Source`."""
    cols = ", ".join(quote(c) for c in columns) or "1 AS one"
    return Source(sql=f"SELECT {cols} FROM {reference_table(model, version)}", columns=columns, label=label,
                  rebuild=lambda keep: table_source(model, version, keep, label))


def window_source(schema: LogSchema, start: datetime, end: datetime, columns: tuple[str, ...],
                  version: str | None = None, bucket: str | None = None, label: str = "",
                  rows: RowFilter | None = None) -> Source:
    """Rows of the model's logs in ``[start, end)`` (optionally one model version, and only the ``rows``
    the filter keeps) as a :class:`Source`.

    ``label`` joins the latest ground truth of each prediction (``current_labels``); rows without a label
    carry NULL there and are dropped like any missing value. ``bucket`` adds a ``bucket`` column
    (``date_trunc`` of ``ts``) for drift over time.
    """
    exprs = []
    for c in columns:
        exprs.append("l.label AS label" if c == LABEL_COLUMN else f"t.{quote(c)}")
    if bucket is not None:
        if bucket not in BUCKET_UNITS:
            raise ReferenceError(f"bucket '{bucket}' is not one of {', '.join(BUCKET_UNITS)}")
        exprs.insert(0, f"date_trunc('{BUCKET_UNITS[bucket]}', t.ts) AS bucket")
    join = ""
    params: list[Any] = []
    if LABEL_COLUMN in columns:
        join = " LEFT JOIN current_labels l ON l.model_name = ? AND l.prediction_id = t.prediction_id"
        params.append(schema.model)
    where = "t.ts >= ? AND t.ts < ?"
    params += [start, end]
    if version is not None:
        where += " AND t.model_version = ?"
        params.append(version)
    if rows is not None:
        where += f" AND ({rows.sql})"
        params += rows.params
    sql = f"SELECT {', '.join(exprs) or '1 AS one'} FROM {schema.table} t{join} WHERE {where}"
    return Source(sql=sql, params=tuple(params), columns=columns, label=label,
                  rebuild=lambda keep: window_source(schema, start, end, keep, version, bucket, label, rows))


@engine_function
def log_columns(con: duckdb.DuckDBPyConnection, schema: LogSchema) -> tuple[str, ...]:
    """Columns the model's log table has (empty when nothing was ingested yet)."""
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                       [schema.table]).fetchall()
    return tuple(str(r[0]) for r in rows)


@engine_function
def has_labels(con: duckdb.DuckDBPyConnection, model: str) -> bool:
    """Whether any ground truth exists for ``model``."""
    row = con.execute("SELECT count(*) FROM labels WHERE model_name = ?", [model]).fetchone()
    return bool(row and row[0])
