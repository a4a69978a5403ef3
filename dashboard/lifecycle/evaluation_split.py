"""The out-of-time split of labelled production rows: what training may use, what the gate judges on.

Why by time: the gate must score a candidate on rows it never saw, and production rows are the only
ones that look like tomorrow's traffic. Labelled rows whose prediction was logged before
``labels_before`` may be trained on; rows from ``labels_before`` on are the evaluation set and never
enter training. The cut-off is the latest labelled prediction minus ``[retrain] evaluation_days`` (or
the time that leaves the latest ``evaluation_share`` of labelled rows for evaluation), fixed when a
retrain starts and recorded on the job and the candidate, so the gate judges exactly what training
left out. Training commands report the production rows they used by ``prediction_id``
(:data:`TRAINING_IDS_PATH`), which lets the gate prove the two sets disjoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from connectors.schema import quote
from dashboard.context import Context

#: The artifact (one column ``prediction_id``) in which a training run lists the production rows it used.
TRAINING_IDS_PATH = "training_data/prediction_ids.parquet"
LABEL = "label"


@dataclass(frozen=True)
class EvaluationSplit:
    """Rows logged at or after ``labels_before`` (up to ``evaluation_end``) are the evaluation set."""

    labels_before: datetime
    evaluation_end: datetime
    rule: str  # how the cut-off was chosen, for the evidence ("the last 7 days of labelled predictions")

    @property
    def label(self) -> str:
        return f"{self.labels_before:%Y-%m-%d %H:%M}..{self.evaluation_end:%Y-%m-%d %H:%M} UTC"

    def to_json(self) -> dict[str, str]:
        return {"labels_before": self.labels_before.isoformat(), "evaluation_end": self.evaluation_end.isoformat(),
                "rule": self.rule}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluationSplit:
        return cls(labels_before=datetime.fromisoformat(str(data["labels_before"])),
                   evaluation_end=datetime.fromisoformat(str(data["evaluation_end"])), rule=str(data.get("rule", "")))


def _labelled_sql(ctx: Context, model: str) -> str:
    schema = ctx.schema(model)
    return (f"FROM {schema.table} t JOIN current_labels l ON l.prediction_id = t.prediction_id "
            "AND l.model_name = ? WHERE t.status = 'ok'")


def plan(ctx: Context, model: str) -> EvaluationSplit | None:
    """The split as of now; None when no production row has a label yet (nothing to hold out)."""
    if not ctx.store.has_model_table(ctx.schema(model)):
        return None
    spec = ctx.model(model).retrain
    base = _labelled_sql(ctx, model)
    with ctx.store.connect() as con:
        if spec.evaluation_share is not None:
            row = con.execute(f"SELECT quantile_disc(t.ts, ?), max(t.ts) {base}",
                              [1.0 - spec.evaluation_share, model]).fetchone()
            rule = f"the latest {spec.evaluation_share:.0%} of labelled predictions"
        else:
            row = con.execute(f"SELECT max(t.ts) - to_microseconds(CAST(? AS BIGINT)), max(t.ts) {base}",
                              [int(spec.evaluation_days * 86_400_000_000), model]).fetchone()
            rule = f"the last {spec.evaluation_days:g} days of labelled predictions"
    if row is None or row[1] is None:
        return None
    return EvaluationSplit(labels_before=row[0], evaluation_end=row[1] + timedelta(microseconds=1), rule=rule)


def labelled_rows(ctx: Context, model: str, columns: Iterable[str], *, before: datetime | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  limit: int | None = None) -> pd.DataFrame:
    """Labelled production rows (``prediction_id``, ``ts``, ``columns``, ``label``) in a time range, in a
    stable pseudo-random order (so a limit takes the same sample every time)."""
    cols = ", ".join(f"t.{quote(c)}" for c in dict.fromkeys(columns) if c not in ("prediction_id", "ts"))
    sql = (f"SELECT t.prediction_id, t.ts{', ' + cols if cols else ''}, l.label AS {LABEL} "
           + _labelled_sql(ctx, model))
    params: list[Any] = [model]
    for op, value in (("<", before), (">=", since), ("<", until)):
        if value is not None:
            sql += f" AND t.ts {op} ?"
            params.append(value)
    sql += " ORDER BY hash(t.prediction_id), t.prediction_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    if not ctx.store.has_model_table(ctx.schema(model)):
        return pd.DataFrame(columns=["prediction_id", "ts", *columns, LABEL])
    return ctx.store.query_df(sql, params)


def ids_digest(ids: Iterable[Any]) -> str:
    """SHA-256 over the sorted, distinct prediction ids: the same set gives the same digest anywhere."""
    h = hashlib.sha256()
    for pid in sorted({str(i) for i in ids}):
        h.update(pid.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 over a frame's rows (order-independent), for sets without prediction ids (the holdout)."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).sort_values()
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()
