"""Active-learning selection: which production predictions should people label next?

Annotators' time is scarce, so Vigil proposes the rows the model was least sure about (least confidence,
margin or entropy over the per-class probabilities where they were logged), keeps only those whose
confidence is below a threshold, spreads the batch over time buckets and a segment column so one burst
cannot fill the queue, and skips rows already queued or labelled. Each candidate says why it was chosen.
The row-level work is SQL in :mod:`connectors.queries.selection`; this module validates the request and
words the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from connectors.queries import selection as q
from connectors.windows import Window
from dashboard.context import Context
from dashboard.errors import VigilError

STRATEGIES = q.STRATEGIES
BUCKETS = tuple(q.BUCKETS)
DEFAULT_THRESHOLD = 0.8
DEFAULT_BUDGET = 50
MAX_BUDGET = 5000

CANDIDATE_COLUMNS = ["prediction_id", "ts", "model_version", "prediction", "score", "confidence",
                     "uncertainty", "segment", "bucket", "stratum_rank", "stratum_size", "reason"]


@dataclass(frozen=True)
class SelectionRequest:
    """What to select: window, strategy, threshold on confidence, batch budget and stratification."""

    window: Window
    strategy: str = "least-confidence"
    threshold: float = DEFAULT_THRESHOLD
    budget: int = DEFAULT_BUDGET
    bucket: str = "day"
    segment: str | None = "model_version"

    def validate(self, segments: tuple[str, ...]) -> None:
        if self.strategy not in STRATEGIES:
            raise VigilError(f"unknown strategy '{self.strategy}'; choose one of {', '.join(STRATEGIES)}")
        if not 0 < self.threshold <= 1:
            raise VigilError(f"the confidence threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.budget <= MAX_BUDGET:
            raise VigilError(f"the budget must be between 1 and {MAX_BUDGET}, got {self.budget}")
        if self.bucket not in BUCKETS:
            raise VigilError(f"unknown time bucket '{self.bucket}'; choose one of {', '.join(BUCKETS)}")
        if self.segment is not None and self.segment not in segments:
            raise VigilError(f"cannot stratify by '{self.segment}'; choose one of {', '.join(segments)}")


@dataclass
class Selection:
    """The chosen candidates (a small DataFrame, ``CANDIDATE_COLUMNS``) and the counts behind them."""

    request: SelectionRequest
    candidates: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        c = self.counts
        return (f"{len(self.candidates)} candidate(s) from {c.get('below_threshold', 0)} prediction(s) with "
                f"confidence below {self.request.threshold:.2f} in {c.get('strata', 0)} stratum(s); "
                f"{c.get('in_window', 0)} in the window, {c.get('in_window', 0) - c.get('open', 0)} already "
                "queued or labelled")


def segment_choices(context: Context, model: str) -> tuple[str, ...]:
    """Columns a batch can be stratified by: the version, the prediction and every categorical column."""
    schema = context.schema(model)
    return ("model_version", "prediction", *(c for c, t in schema.columns.items() if t == "categorical"))


def select_candidates(context: Context, model: str, request: SelectionRequest) -> Selection:
    """Choose the next rows to label (read-only: nothing is queued until :func:`annotation.queue_and_send`)."""
    schema = context.schema(model)
    request.validate(segment_choices(context, model))
    with context.connect(model) as con:
        context.store.ensure_model(schema, con)
        rows, counts = q.candidates(con, schema, request.window.start, request.window.end,
                                    strategy=request.strategy, threshold=request.threshold,
                                    budget=request.budget, bucket=request.bucket, segment=request.segment)
    classes = schema.classes
    for r in rows:
        r["reason"] = reason(r, request, classes)
    frame = pd.DataFrame(rows, columns=[*CANDIDATE_COLUMNS, "top_class", "runner_up", "runner_up_p", "p_source"])
    return Selection(request, frame[CANDIDATE_COLUMNS].reset_index(drop=True), counts)


def reason(row: dict[str, Any], request: SelectionRequest, classes: tuple[str, ...]) -> str:
    """Why this row was chosen, in words an annotator or reviewer understands."""
    conf = float(row["confidence"])
    top = row.get("top_class") or row["prediction"]
    if row.get("p_source") == "classes":
        second = row.get("runner_up") or "another class"
    else:
        others = [c for c in classes if c != top]
        second = others[0] if len(others) == 1 else "the other classes"
    u = float(row["uncertainty"])
    if request.strategy == "least-confidence":
        why = f"least confidence: top class {top} at {conf:.2f}"
    elif request.strategy == "margin":
        why = f"margin {conf - float(row['runner_up_p']):.2f} between {top} ({conf:.2f}) and {second} " \
              f"({float(row['runner_up_p']):.2f})"
    else:
        why = f"entropy {u:.2f} of the class probabilities (top {top} at {conf:.2f})"
    if row.get("p_source") != "classes":
        why += " (from score; no per-class probabilities logged)"
    bucket = row["bucket"]
    when = bucket.strftime("%Y-%m-%d %H:00" if request.bucket == "hour" else "%Y-%m-%d") \
        if isinstance(bucket, datetime) else str(bucket)
    where = f"{request.bucket} {when}" + (f", {request.segment}={row['segment']}" if request.segment else "")
    return (f"{why}; confidence {conf:.2f} < {request.threshold:.2f}; #{int(row['stratum_rank'])} of "
            f"{int(row['stratum_size'])} most uncertain in {where}")
