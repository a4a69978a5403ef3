"""Spark counterpart of :mod:`connectors.queries.selection`: uncertainty per prediction and the stratified
ranking in Spark; the annotation queue stays in DuckDB and is shipped to Spark as the rows to exclude."""

from __future__ import annotations

from typing import Any

import pandas as pd

from connectors.engines.spark.session import SparkHandle
from connectors.queries.selection import QUEUE_TABLE, STRATEGIES, ensure_queue
from connectors.schema import LogSchema, nan_as_null, quote

BUCKETS: dict[str, str] = {"hour": "hour", "day": "day", "week": "week"}  # time_bucket's origin is a Monday


def _probabilities(schema: LogSchema) -> tuple[str, str]:
    cols = [nan_as_null(quote(c)) for c in schema.probability_columns.values()]
    score = nan_as_null("score")
    k = len(schema.classes)
    all_present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    total = " + ".join(cols)
    from_classes = f"array({', '.join(f'{c} / nullif({total}, 0)' for c in cols)})"
    rest = f"(1 - least(greatest({score}, 0), 1)) / {k - 1}"
    from_score = f"concat(array(least(greatest({score}, 0), 1)), array_repeat({rest}, {k - 1}))"
    probs = f"CASE WHEN {all_present} AND ({total}) > 0 THEN {from_classes} ELSE {from_score} END"
    source = f"CASE WHEN {all_present} AND ({total}) > 0 THEN 'classes' ELSE 'score' END"
    return probs, source


def _uncertainty(strategy: str, k: int) -> str:
    if strategy == "least-confidence":
        return f"(1 - ps[0]) * {k} / {k - 1}"
    if strategy == "margin":
        return "1 - (ps[0] - ps[1])"
    if strategy == "entropy":
        return (f"aggregate(ps, CAST(0 AS DOUBLE), (acc, x) -> acc + CASE WHEN x > 0 THEN -x * ln(x) ELSE 0 END)"
                f" / ln({k})")
    raise ValueError(f"unknown strategy '{strategy}'; use one of {', '.join(STRATEGIES)}")


def candidates(con: SparkHandle, schema: LogSchema, start: Any, end: Any, *, strategy: str, threshold: float,
               budget: int, bucket: str, segment: str | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    if bucket not in BUCKETS:
        raise ValueError(f"unknown time bucket '{bucket}'; use one of {', '.join(BUCKETS)}")
    uncertainty = _uncertainty(strategy, len(schema.classes))
    with con.duckdb_state() as duck:
        ensure_queue(duck)
        queued = [r[0] for r in duck.execute(f"SELECT prediction_id FROM {QUEUE_TABLE} WHERE model_name = ?",
                                             [schema.model]).fetchall()]
    con.spark.createDataFrame(pd.DataFrame({"prediction_id": pd.Series(queued, dtype=object)}),
                              schema="prediction_id STRING").createOrReplaceTempView("vigil_queued")
    probs, source = _probabilities(schema)
    seg = "'all'" if not segment else f"coalesce(CAST({quote(segment)} AS STRING), '(missing)')"
    classes = "array(" + ", ".join("'" + c.replace("'", "''") + "'" for c in schema.classes) + ")"
    base = f"""
    win AS (SELECT * FROM {schema.table} WHERE ts >= :start AND ts < :end AND status = 'ok'),
    open_rows AS (
        SELECT w.* FROM win w LEFT ANTI JOIN vigil_queued q ON q.prediction_id = w.prediction_id
        LEFT ANTI JOIN (SELECT prediction_id FROM current_labels WHERE model_name = :model) l
        ON l.prediction_id = w.prediction_id)"""
    sql = f"""
    WITH {base},
    probs AS (
        SELECT prediction_id, ts, model_version, prediction, score, {seg} AS segment,
               date_trunc('{BUCKETS[bucket]}', ts) AS bucket, {probs} AS p, {source} AS p_source
        FROM open_rows),
    scored AS (SELECT *, sort_array(p, false) AS ps FROM probs),
    measured AS (
        SELECT prediction_id, ts, model_version, prediction, score, segment, bucket, p_source,
               ps[0] AS confidence, ps[1] AS runner_up_p,
               CASE WHEN p_source = 'classes' THEN element_at({classes}, CAST(array_position(p, ps[0]) AS INT)) END
                   AS top_class,
               CASE WHEN p_source = 'classes' THEN element_at({classes}, CAST(array_position(
                   transform(p, (x, i) -> CASE WHEN i + 1 = array_position(p, ps[0]) THEN -1 ELSE x END),
                   ps[1]) AS INT)) END AS runner_up,
               {uncertainty} AS uncertainty
        FROM scored),
    eligible AS (
        SELECT *, row_number() OVER (PARTITION BY bucket, segment ORDER BY uncertainty DESC, prediction_id)
                  AS stratum_rank,
               count(*) OVER (PARTITION BY bucket, segment) AS stratum_size
        FROM measured WHERE confidence < :threshold)
    SELECT *, (SELECT count(*) FROM win) AS n_window, (SELECT count(*) FROM open_rows) AS n_open,
              (SELECT count(*) FROM eligible) AS n_eligible,
              (SELECT count(DISTINCT bucket, segment) FROM eligible) AS n_strata
    FROM eligible ORDER BY stratum_rank, uncertainty DESC, prediction_id LIMIT {int(budget)}"""
    params = {"start": start, "end": end, "model": schema.model, "threshold": float(threshold)}
    frame = con.df(sql, params)
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                  for r in frame.astype(object).where(frame.notna(), None).to_dict("records")]
    if rows:
        top: dict[str, Any] = rows[0]
        counts = {"in_window": int(top["n_window"]), "open": int(top["n_open"]),
                  "below_threshold": int(top["n_eligible"]), "strata": int(top["n_strata"])}
    else:
        n = con.rows(f"WITH {base} SELECT (SELECT count(*) FROM win), (SELECT count(*) FROM open_rows)",
                     {k: params[k] for k in ("start", "end", "model")})[0]
        counts = {"in_window": int(n[0]), "open": int(n[1]), "below_threshold": 0, "strata": 0}
    return rows, counts
