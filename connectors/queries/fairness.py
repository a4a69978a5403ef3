"""SQL of fairness: per-group (optionally per-time-bucket) weighted confusion counts in ONE GROUP BY.

Every AIF360 group metric for binary classification is a function of, per group: the number of rows and
of favourable predictions (all rows), and the four confusion counts over labelled rows; the entropy
indices need the same counts unweighted (AIF360 ignores instance weights there). So the database returns
a few rows per group, whatever the log size, and the formulas run in Python over those rows.

Numeric protected attributes are bucketed in SQL by the configured edges (``[e0, e1), [e1, e2), ...``);
values outside the edges and NULLs land in no bucket (group NULL), shown as "(missing)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectors.engines.base import engine_function
from connectors.schema import LogSchema, quote

BUCKETS: dict[str, str] = {"day": "day", "week": "week"}

#: Count columns returned by :func:`confusion_counts` (``w_`` = weighted, others are row counts).
COUNT_COLUMNS: tuple[str, ...] = (
    "n", "w_n", "w_pred_pos", "n_pred_pos", "n_labelled", "w_labelled",
    "w_tp", "w_fp", "w_tn", "w_fn", "tp", "fp", "tn", "fn",
)


def bucket_expr(column: str, bins: Sequence[float], labels: Sequence[str]) -> str:
    """A CASE expression mapping a numeric column to its bucket label (NULL outside the edges)."""
    if len(labels) != len(bins) - 1:
        raise ValueError(f"{len(bins)} bin edges need {len(bins) - 1} labels, got {len(labels)}")
    col = quote(column)
    arms = " ".join(
        f"WHEN {col} >= {float(lo)!r} AND {col} < {float(hi)!r} THEN {_literal(lab)}"
        for lo, hi, lab in zip(bins, bins[1:], labels, strict=False))
    return f"CASE {arms} ELSE NULL END"


def category_expr(column: str) -> str:
    """The text value of a categorical attribute (NULL stays NULL)."""
    return f"CAST({quote(column)} AS VARCHAR)"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def usable(alias: str = "") -> str:
    """The rows fairness counts: successful predictions (``status = 'ok'``) that carry a prediction. A
    failed request has no usable prediction, so it is neither a favourable nor an unfavourable outcome."""
    t = f"{alias}." if alias else ""
    return f"{t}status = 'ok' AND {t}prediction IS NOT NULL"


def log_relation(schema: LogSchema) -> str:
    """The model's :func:`usable` log rows joined with their current label (``label`` NULL when unlabelled)."""
    return (f"(SELECT t.*, l.label AS label FROM {schema.table} t "
            f"LEFT JOIN current_labels l ON l.model_name = {_literal(schema.model)} "
            f"AND l.prediction_id = t.prediction_id "
            f"WHERE {usable('t')})")


@engine_function
def left_out(con: duckdb.DuckDBPyConnection, schema: LogSchema, where: str = "TRUE",
             params: Sequence[Any] = ()) -> int:
    """Rows matching ``where`` (named params as :func:`window_filter`'s) that fairness leaves out: not
    :func:`usable` (a NULL status is not 'ok' either)."""
    sql = f"SELECT count(*) FROM {schema.table} WHERE ({where}) AND NOT coalesce({usable()}, FALSE)"
    row = con.execute(sql, {f"p{i}": v for i, v in enumerate(params)} or None).fetchone()
    assert row is not None
    return int(row[0])


@engine_function
def confusion_counts(con: duckdb.DuckDBPyConnection, relation: str, groups: Mapping[str, str],
                     favourable: str, *, prediction: str = "prediction", label: str = "label",
                     weight: str | None = None, where: str = "TRUE", params: Sequence[Any] = (),
                     bucket: str | None = None, ts: str = "ts") -> pd.DataFrame:
    """Counts per combination of ``groups`` (alias -> SQL expression), and per time bucket if asked.

    ``prediction``/``label`` are columns of ``relation`` holding class labels; a row is positive when
    the value equals ``favourable``; a NULL label means "not labelled". ``weight`` is an optional SQL
    expression of instance weights (1 when omitted). Returns one row per group combination with
    :data:`COUNT_COLUMNS`; ``bucket`` ("day"/"week") adds a ``bucket`` timestamp column.
    """
    keys = [f"{expr} AS {quote(alias)}" for alias, expr in groups.items()]
    names = [quote(a) for a in groups]
    if bucket is not None:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
        keys.append(f"date_trunc('{BUCKETS[bucket]}', {quote(ts)}) AS bucket")
        names.append("bucket")
    # One narrow GROUP BY over the raw class columns (groups x predicted class x label, a few dozen rows);
    # which of them is favourable is decided on that small result, so no per-row expression is evaluated.
    inner = ", ".join(keys + [f"{quote(prediction)} AS __pred", f"{quote(label)} AS __label"]
                      + ([f"CAST({weight} AS DOUBLE) AS __w"] if weight else []))
    aggs = ["count(*) AS c"] + (["sum(__w) AS sw"] if weight else [])
    sql = (f"SELECT {', '.join([*names, '__pred', '__label', *aggs])} "
           f"FROM (SELECT {inner} FROM {relation} WHERE {where}) GROUP BY ALL")
    long = con.execute(sql, {f"p{i}": v for i, v in enumerate(params)} or None).df()
    long["pp"] = long["__pred"].astype(object) == favourable
    long["ls"] = np.where(long["__label"].isna(), 0, np.where(long["__label"].astype(object) == favourable, 2, 1))
    return _pivot(long, [*groups, *(["bucket"] if bucket else [])], weighted=weight is not None)


def _pivot(long: pd.DataFrame, keys: list[str], weighted: bool) -> pd.DataFrame:
    """(keys, pp, ls, c[, sw]) rows -> one row per key combination with :data:`COUNT_COLUMNS`."""
    c = long["c"].astype("int64")
    w = long["sw"].astype("float64") if weighted else c.astype("float64")
    pp = long["pp"].astype(bool)
    ls = long["ls"].astype("int64")
    lab = ls > 0
    yp = ls == 2
    parts = {
        "n": c, "w_n": w,
        "n_pred_pos": c.where(pp, 0), "w_pred_pos": w.where(pp, 0.0),
        "n_labelled": c.where(lab, 0), "w_labelled": w.where(lab, 0.0),
        "tp": c.where(lab & pp & yp, 0), "w_tp": w.where(lab & pp & yp, 0.0),
        "fp": c.where(lab & pp & ~yp, 0), "w_fp": w.where(lab & pp & ~yp, 0.0),
        "tn": c.where(lab & ~pp & ~yp, 0), "w_tn": w.where(lab & ~pp & ~yp, 0.0),
        "fn": c.where(lab & ~pp & yp, 0), "w_fn": w.where(lab & ~pp & yp, 0.0),
    }
    frame = pd.DataFrame(parts)
    if keys:
        # NULL group values (missing attribute) must stay a group of their own
        key_frame = long[keys].astype(object).where(long[keys].notna(), None)
        frame = pd.concat([key_frame, frame], axis=1)
        out = frame.groupby(keys, dropna=False, sort=True)[list(COUNT_COLUMNS)].sum().reset_index()
    else:
        out = frame[list(COUNT_COLUMNS)].sum().to_frame().T
    for col in COUNT_COLUMNS:
        out[col] = out[col].astype("float64" if col.startswith("w_") else "int64")
    return out[[*keys, *COUNT_COLUMNS]]


def window_filter(start: Any, end: Any, version: str | None) -> tuple[str, list[Any]]:
    """WHERE clause (named params ``$p0..``) for a half-open time window and an optional version."""
    where = "ts >= $p0 AND ts < $p1"
    params: list[Any] = [start, end]
    if version is not None:
        where += " AND model_version = $p2"
        params.append(str(version))
    return where, params


@engine_function
def model_versions(con: duckdb.DuckDBPyConnection, schema: LogSchema) -> list[str]:
    """Versions present in the model's log, oldest name first."""
    rows = con.execute(f"SELECT DISTINCT model_version FROM {schema.table} "
                       "WHERE model_version IS NOT NULL ORDER BY 1").fetchall()
    return [str(r[0]) for r in rows]
