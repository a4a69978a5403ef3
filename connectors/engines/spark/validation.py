"""Spark counterpart of :mod:`connectors.queries.validation`: the ingest checks over the lake table as it
is (the raw view, before the contract's casts), so missing columns and wrong types show."""

from __future__ import annotations

from typing import Any

from connectors.engines.spark.session import SparkHandle
from connectors.queries.validation import out_of_range_sql, required_columns
from connectors.schema import LogSchema, quote


def table_checks(con: SparkHandle, schema: LogSchema) -> dict[str, Any]:
    raw = f"raw_{schema.table}"
    have = set(con.spark.table(raw).columns)
    missing = [c for c in required_columns(schema) if c not in have]
    typed = {c: ("DOUBLE" if t == "numerical" else "STRING") for c, t in schema.columns.items()}
    typed.update({c: "DOUBLE" for c in ("score", "latency_ms", *schema.probability_columns.values())})
    typed["ts"] = "TIMESTAMP"
    checked = [c for c in typed if c in have]
    bad = [f"count(*) FILTER (WHERE {quote(c)} IS NOT NULL AND try_cast({quote(c)} AS {typed[c]}) IS NULL)"
           for c in checked]
    row = con.rows(f"SELECT count(*), {', '.join(bad) or '0'} FROM {raw}")[0]
    wrong = {c: int(n) for c, n in zip(checked, row[1:], strict=False) if n}
    view = con.rows(f"SELECT count(*) FILTER (WHERE prediction_id IS NULL OR ts IS NULL), "
                    f"count(*) FILTER (WHERE {out_of_range_sql(schema)}) FROM {schema.table}")[0]
    dup = con.rows(f"SELECT coalesce(sum(k), 0) FROM (SELECT count(*) AS k FROM {schema.table} "
                   "WHERE prediction_id IS NOT NULL GROUP BY prediction_id HAVING count(*) > 1)")[0]
    return {"n_rows": int(row[0]), "missing_columns": len(missing), "missing_column_names": missing,
            "wrong_types": sum(wrong.values()), "wrong_type_columns": sorted(wrong), "missing_ids": int(view[0]),
            "duplicate_ids": int(dup[0]), "scores_out_of_range": int(view[1])}
