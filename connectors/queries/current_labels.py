"""The latest ground truth of each prediction, kept as a table beside the append-only ``labels`` table.

Why: every quality, fairness-with-labels, selection and gate query joins the logs to each prediction's
latest label. As a view this meant a window over the whole label history on every join (about 45% of the
cost of a 10M x 3.3M log-label join); labels only change through ingestion and label sync, so each of
those writes refreshes the rows of the predictions it touched, inside its own transaction (a failed write
leaves both tables as they were). A retraction (a NULL label) removes the prediction from the table.
"""

from __future__ import annotations

import duckdb

from connectors.engines.base import state_function

TABLE = "current_labels"
COLUMNS = "model_name, prediction_id, label, source, annotator, ts"


def latest_sql(where: str = "") -> str:
    """The latest label per (model, prediction) among ``labels`` rows matching ``where`` (NULL = retracted)."""
    return (f"SELECT {COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY model_name, prediction_id "
            f"ORDER BY recorded_at DESC, ingest_id DESC) AS rn FROM labels {where}) "
            "WHERE rn = 1 AND label IS NOT NULL")


@state_function
def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create the table (from the whole history), replacing the view earlier versions of Vigil kept."""
    is_view = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND schema_name = 'main' "
                          "AND NOT temporary", [TABLE]).fetchone()
    if is_view and is_view[0]:
        con.execute(f"DROP VIEW {TABLE}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} AS {latest_sql()}")


@state_function
def refresh(con: duckdb.DuckDBPyConnection, ingest_id: int) -> None:
    """Recompute the rows of the predictions whose labels batch ``ingest_id`` wrote (call inside its
    transaction)."""
    con.execute("CREATE OR REPLACE TEMP TABLE __label_keys AS SELECT DISTINCT model_name, prediction_id "
                "FROM labels WHERE ingest_id = ?", [ingest_id])
    keys = "(SELECT model_name, prediction_id FROM __label_keys)"
    con.execute(f"DELETE FROM {TABLE} WHERE (model_name, prediction_id) IN {keys}")
    con.execute(f"INSERT INTO {TABLE} {latest_sql(f'WHERE (model_name, prediction_id) IN {keys}')}")
    con.execute("DROP TABLE __label_keys")
