"""SQL of active learning: uncertainty per prediction, stratified ranking, and the annotation queue table.

Everything row-level runs inside DuckDB; Python receives at most ``budget`` candidate rows plus a few
counts. The uncertainty formulas (all in [0, 1], higher = less sure):

* least confidence: ``(1 - p1) * k / (k - 1)``
* margin:           ``1 - (p1 - p2)``
* entropy:          ``-sum(p log p) / log k``

where ``p1 >= p2`` are the two largest class probabilities and ``k`` the number of classes. When a row has
no per-class probabilities, they are derived from ``score`` (the predicted class's probability), with the
rest spread evenly over the other classes (exact for two classes).
Lambdas use DuckDB 2 syntax (``lambda x: ...``).
"""

from __future__ import annotations

from typing import Any

import duckdb

from connectors.engines.base import engine_function, state_function
from connectors.schema import LogSchema, nan_as_null, quote

STRATEGIES: tuple[str, ...] = ("least-confidence", "margin", "entropy")
BUCKETS: dict[str, str] = {"hour": "1 hour", "day": "1 day", "week": "1 week"}

QUEUE_TABLE = "annotation_queue"

# States: pending (chosen, not in Label Studio yet) -> sending (claimed by one sender; the import may be in
# flight) -> sent (one task exists; task_id known) -> labelled | skipped. Failures put rows back to pending.
QUEUE_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUEUE_TABLE} (
    model_name VARCHAR NOT NULL,
    prediction_id VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    strategy VARCHAR,
    uncertainty DOUBLE,
    confidence DOUBLE,
    score DOUBLE,
    prediction VARCHAR,
    model_version VARCHAR,
    reason VARCHAR,
    queued_by VARCHAR,
    queued_at TIMESTAMP,
    claim VARCHAR,
    claimed_at TIMESTAMP,
    project_id BIGINT,
    task_id BIGINT,
    sent_at TIMESTAMP,
    label VARCHAR,
    annotator VARCHAR,
    annotations INTEGER,
    agreement DOUBLE,
    labelled_at TIMESTAMP,
    last_error VARCHAR,
    updated_at TIMESTAMP,
    PRIMARY KEY (model_name, prediction_id)
);
CREATE TABLE IF NOT EXISTS annotation_projects (
    model_name VARCHAR PRIMARY KEY,
    project_id BIGINT,
    url VARCHAR,
    created_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS annotation_annotators (
    model_name VARCHAR, annotator VARCHAR, labelled INTEGER, skipped INTEGER,
    agreement_with_majority DOUBLE, synced_at TIMESTAMP
);
"""


def first(rows: list[Any]) -> Any:
    """The first row or None. (Fetch whole results: DuckDB 2 refuses new work on a half-read result.)"""
    return rows[0] if rows else None


@state_function
def ensure_queue(con: duckdb.DuckDBPyConnection) -> None:
    """Create the queue tables (idempotent)."""
    con.execute(QUEUE_DDL)


def _probabilities(schema: LogSchema) -> tuple[str, str]:
    """SQL for the list of class probabilities (normalised) and its source ('classes' or 'score').

    NaN counts as missing: a row with a NaN probability falls back to ``score`` (NaN made its uncertainty
    NaN, so it was never chosen), and a NaN score is treated as an absent one.
    """
    cols = [nan_as_null(quote(c)) for c in schema.probability_columns.values()]
    score = nan_as_null("score")
    k = len(schema.classes)
    all_present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    total = " + ".join(cols)
    from_classes = f"list_value({', '.join(f'{c} / nullif({total}, 0)' for c in cols)})"
    rest = f"(1 - least(greatest({score}, 0), 1)) / {k - 1}"
    from_score = (f"list_concat([least(greatest({score}, 0), 1)], "
                  f"list_transform(range({k - 1}), lambda x: {rest}))")
    probs = f"CASE WHEN {all_present} AND ({total}) > 0 THEN {from_classes} ELSE {from_score} END"
    source = f"CASE WHEN {all_present} AND ({total}) > 0 THEN 'classes' ELSE 'score' END"
    return probs, source


def uncertainty_sql(strategy: str, k: int) -> str:
    """Uncertainty in [0, 1] from the sorted probability list ``ps`` (descending)."""
    if strategy == "least-confidence":
        return f"(1 - ps[1]) * {k} / {k - 1}"
    if strategy == "margin":
        return "1 - (ps[1] - ps[2])"
    if strategy == "entropy":
        return f"list_sum(list_transform(ps, lambda x: CASE WHEN x > 0 THEN -x * ln(x) ELSE 0 END)) / ln({k})"
    raise ValueError(f"unknown strategy '{strategy}'; use one of {', '.join(STRATEGIES)}")


@engine_function
def candidates(con: duckdb.DuckDBPyConnection, schema: LogSchema, start: Any, end: Any, *, strategy: str,
               threshold: float, budget: int, bucket: str, segment: str | None) -> tuple[list[dict[str, Any]],
                                                                                         dict[str, int]]:
    """Top ``budget`` uncertain rows of ``[start, end)``, spread over (time bucket, segment) strata.

    Rows already queued or labelled, and error rows, are excluded. Ranking: each stratum is ranked by
    uncertainty; candidates are taken round-robin by that rank (all strata's first, then their second, ...),
    ties broken by uncertainty, so one burst cannot fill a batch. Returns the rows and counts
    (``in_window``, ``excluded``, ``below_threshold``, ``strata``).
    """
    ensure_queue(con)
    if bucket not in BUCKETS:
        raise ValueError(f"unknown time bucket '{bucket}'; use one of {', '.join(BUCKETS)}")
    probs, source = _probabilities(schema)
    k = len(schema.classes)
    seg = "'all'" if not segment else f"coalesce(CAST({quote(segment)} AS VARCHAR), '(missing)')"
    classes = "[" + ", ".join("'" + c.replace("'", "''") + "'" for c in schema.classes) + "]"
    # Identifiers are quoted schema names, values are bound parameters.
    sql = f"""
    WITH win AS (
        SELECT * FROM {schema.table} WHERE ts >= $start AND ts < $end AND status = 'ok'
    ), open_rows AS (
        SELECT w.* FROM win w
        WHERE NOT EXISTS (SELECT 1 FROM {QUEUE_TABLE} q
                          WHERE q.model_name = $model AND q.prediction_id = w.prediction_id)
          AND NOT EXISTS (SELECT 1 FROM current_labels l
                          WHERE l.model_name = $model AND l.prediction_id = w.prediction_id)
    ), probs AS (
        SELECT prediction_id, ts, model_version, prediction, score, {seg} AS segment,
               time_bucket(INTERVAL '{BUCKETS[bucket]}', ts) AS bucket,
               {probs} AS p, {source} AS p_source
        FROM open_rows
    ), scored AS (
        SELECT *, list_sort(p, 'DESC') AS ps FROM probs
    ), measured AS (
        SELECT prediction_id, ts, model_version, prediction, score, segment, bucket, p_source,
               ps[1] AS confidence, ps[2] AS runner_up_p,
               CASE WHEN p_source = 'classes' THEN {classes}[list_position(p, ps[1])] END AS top_class,
               CASE WHEN p_source = 'classes' THEN {classes}[list_position(
                   list_transform(p, lambda x, i: CASE WHEN i = list_position(p, ps[1]) THEN -1 ELSE x END),
                   ps[2])] END AS runner_up,
               {uncertainty_sql(strategy, k)} AS uncertainty
        FROM scored
    ), eligible AS (
        SELECT *, row_number() OVER (PARTITION BY bucket, segment ORDER BY uncertainty DESC, prediction_id)
                  AS stratum_rank,
               count(*) OVER (PARTITION BY bucket, segment) AS stratum_size
        FROM measured WHERE confidence < $threshold
    )
    SELECT *, (SELECT count(*) FROM win) AS n_window, (SELECT count(*) FROM open_rows) AS n_open,
              (SELECT count(*) FROM eligible) AS n_eligible,
              (SELECT count(DISTINCT (bucket, segment)) FROM eligible) AS n_strata
    FROM eligible
    ORDER BY stratum_rank, uncertainty DESC, prediction_id
    LIMIT $budget
    """
    cur = con.execute(sql, {"start": start, "end": end, "model": schema.model, "threshold": threshold,
                            "budget": budget})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if rows:
        top = rows[0]
        counts = {"in_window": int(top["n_window"]), "open": int(top["n_open"]),
                  "below_threshold": int(top["n_eligible"]), "strata": int(top["n_strata"])}
    else:
        row = first(con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {QUEUE_TABLE} q WHERE "
            "q.model_name = $model AND q.prediction_id = w.prediction_id) AND NOT EXISTS (SELECT 1 FROM "
            "current_labels l WHERE l.model_name = $model AND l.prediction_id = w.prediction_id)) "
            f"FROM {schema.table} w WHERE ts >= $start AND ts < $end AND status = 'ok'",
            {"start": start, "end": end, "model": schema.model}).fetchall())
        assert row is not None
        counts = {"in_window": int(row[0]), "open": int(row[1]), "below_threshold": 0, "strata": 0}
    return rows, counts
