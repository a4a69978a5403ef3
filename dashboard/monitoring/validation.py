"""Validation where there is no ingest: the ingest checks as data-quality findings on a model's table.

A Spark-backed model's logs are read in place, so nothing rejected a file with a missing column, values
of the wrong type, duplicate ``prediction_id`` values or scores outside [0, 1]; these findings say so on
the Data quality page and feed the ``table_problems`` policy metric. On DuckDB they are the rows that
reached the table without ingestion (normally none).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.queries import validation as q
from dashboard.context import Context


@dataclass(frozen=True)
class TableFinding:
    """One check over the whole table: how many rows (or columns) fail it, and what to do."""

    check: str
    count: int
    meaning: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.count == 0


def _fix(check: str, names: list[str], model: str) -> str:
    if check == "missing_columns":
        return (f"missing: {', '.join(names)}; add them to the table or remove them from models.{model}.features")
    if check == "wrong_types":
        return f"in {', '.join(names)}; write numbers as doubles and categories as strings"
    if check == "duplicate_ids":
        return "prediction_id is the idempotency key: deduplicate the table (labels join on it)"
    if check == "scores_out_of_range":
        return "score and proba_<class> are probabilities: log values in [0, 1]"
    return "every row needs a prediction_id and a ts"


def table_findings(ctx: Context, model: str) -> tuple[int, list[TableFinding]]:
    """Rows of the table and one finding per check (count 0 = passes)."""
    with ctx.connect(model) as con:
        ctx.store.ensure_model(ctx.schema(model), con)
        found = q.table_checks(con, ctx.schema(model))
    names = {"missing_columns": found["missing_column_names"], "wrong_types": found["wrong_type_columns"]}
    return int(found["n_rows"]), [TableFinding(k, int(found[k]), meaning, _fix(k, names.get(k, []), model))
                                  for k, meaning in q.CHECKS.items()]
