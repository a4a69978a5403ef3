"""SQL of table validation: the ingest checks as counts over a model's stored log table.

Why: a model whose logs are read in place (the Spark engine) has no ingest step to reject bad files, so
the same checks become findings on the table. On DuckDB, ingestion already refused such rows, so the
counts there are those of rows that reached the table some other way (usually zero).
"""

from __future__ import annotations

from typing import Any

import duckdb

from connectors.engines.base import engine_function
from connectors.schema import REQUIRED_COLUMNS, LogSchema, quote

#: Checks in output order: key -> what a non-zero count means.
CHECKS: dict[str, str] = {
    "missing_columns": "required or configured columns the table does not have",
    "wrong_types": "values that do not convert to the column's type (read as missing)",
    "missing_ids": "rows without a prediction_id or ts",
    "duplicate_ids": "rows whose prediction_id another row also has",
    "scores_out_of_range": "rows whose score or a class probability lies outside [0, 1]",
}


def _probability_columns(schema: LogSchema) -> list[str]:
    return ["score", *schema.probability_columns.values()]


def out_of_range_sql(schema: LogSchema) -> str:
    """Condition: a present, non-NaN score or probability outside [0, 1]."""
    return " OR ".join(f"({quote(c)} IS NOT NULL AND NOT isnan({quote(c)}) AND ({quote(c)} < 0 OR {quote(c)} > 1))"
                       for c in _probability_columns(schema))


@engine_function
def table_checks(con: duckdb.DuckDBPyConnection, schema: LogSchema) -> dict[str, Any]:
    """Rows of the model's table failing each check of :data:`CHECKS`, the names of missing columns and
    the columns with values of the wrong type, and ``n_rows``."""
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE prediction_id IS NULL OR ts IS NULL),
               count(*) FILTER (WHERE {out_of_range_sql(schema)})
        FROM {schema.table}""").fetchone()
    dup = con.execute(f"SELECT coalesce(sum(k), 0) FROM (SELECT count(*) AS k FROM {schema.table} "
                      "WHERE prediction_id IS NOT NULL GROUP BY prediction_id HAVING count(*) > 1)").fetchone()
    assert row is not None and dup is not None
    return {"n_rows": int(row[0]), "missing_columns": 0, "missing_column_names": [], "wrong_types": 0,
            "wrong_type_columns": [], "missing_ids": int(row[1]), "duplicate_ids": int(dup[0]),
            "scores_out_of_range": int(row[2])}


def required_columns(schema: LogSchema) -> list[str]:
    """Columns every log table of the model must have."""
    return [*REQUIRED_COLUMNS, *schema.columns]
