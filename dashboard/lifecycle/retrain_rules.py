"""The retrain rule: should ``model`` be retrained now, and why (or why not)?

Evaluated by ``vigil retrain --model M --if-needed`` from cron or CI. The rule reads the model's
``[models.<name>.retrain]`` table: retrain when the drift share exceeds ``drift_share_above`` (default
0.3), when actual accuracy on labelled rows falls below ``accuracy_below`` (default: the model's
``min_accuracy`` threshold), or when a disparate impact leaves its band (default: the model's
disparate-impact thresholds). The window (default 7 days) ends at the latest logged prediction, so a
replayed or delayed log is judged on its own time. Every decision, with its reasons, is kept in the
``retrain_decisions`` table and the audit trail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from connectors.windows import Window, parse_window
from dashboard.access.roles import Actor, require
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError

_DDL = """
CREATE TABLE IF NOT EXISTS retrain_decisions (
    ts TIMESTAMP NOT NULL, model VARCHAR NOT NULL, actor VARCHAR NOT NULL, retrain BOOLEAN NOT NULL,
    reasons VARCHAR NOT NULL, checks VARCHAR NOT NULL, job_id VARCHAR
)"""


@dataclass(frozen=True)
class Check:
    """One condition of the rule: the observed value, the limit, and whether it triggers a retrain."""

    name: str
    value: float | None
    limit: str
    triggered: bool
    note: str = ""

    def line(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.3f}"
        state = "TRIGGERS" if self.triggered else "ok"
        return f"{self.name} = {shown} (retrain when {self.limit}): {state}" + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class Decision:
    model: str
    window: str
    checks: list[Check] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return any(c.triggered for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.line() for c in self.checks if c.triggered] or ["no condition met: " + "; ".join(
            c.line() for c in self.checks)]


def rule_window(ctx: Context, model: str) -> Window | None:
    """The rule's window ending at the latest logged prediction (None when nothing is logged)."""
    schema = ctx.schema(model)
    if not ctx.store.has_model_table(schema):
        return None
    latest = ctx.store.query_df(f"SELECT max(ts) AS m FROM {schema.table}")["m"].iloc[0]
    if pd.isna(latest):
        return None
    return parse_window(ctx.model(model).retrain.window,
                        now=pd.Timestamp(latest).to_pydatetime() + timedelta(seconds=1))


def _accuracy(ctx: Context, model: str, win: Window) -> tuple[float | None, int]:
    schema = ctx.schema(model)
    df = ctx.store.query_df(
        f"SELECT count(*) AS n, avg(CASE WHEN t.prediction = l.label THEN 1.0 ELSE 0.0 END) AS acc "
        f"FROM {schema.table} t JOIN current_labels l ON l.prediction_id = t.prediction_id AND l.model_name = ? "
        "WHERE t.status = 'ok' AND t.ts >= ? AND t.ts < ?", [model, win.start, win.end])
    n = int(df["n"].iloc[0])
    return (None if n == 0 else float(df["acc"].iloc[0])), n


def _disparate_impacts(ctx: Context, model: str, win: Window) -> dict[str, tuple[float | None, str]]:
    """Disparate impact of predictions per protected attribute (the Fairness page's computation)."""
    from dashboard.monitoring.fairness import compute_fairness

    report = compute_fairness(ctx, model, win)
    out: dict[str, tuple[float | None, str]] = {}
    for attr in report.attributes:
        mv = attr.metrics.get("disparate_impact")
        value = getattr(mv, "value", None)
        out[attr.attribute] = (None if value is None or not math.isfinite(value) else float(value),
                               str(getattr(mv, "undefined_reason", "") or ""))
    return out


def evaluate_rule(ctx: Context, model: str) -> Decision:
    """Evaluate every configured condition of the rule (records nothing)."""
    cfg = ctx.model(model)
    spec, th = cfg.retrain, cfg.thresholds
    win = rule_window(ctx, model)
    if win is None:
        return Decision(model, spec.window, [Check("logged predictions", 0, "there are any", False,
                                                   "nothing logged yet, so nothing to judge")])
    checks: list[Check] = []
    if spec.drift_share_above is not None:
        share: float | None = None
        try:
            from dashboard.monitoring.drift import compute_drift

            share = float(compute_drift(ctx, model, win, "training").share_drifted)
            note = "drift against the champion's training data"
        except ImportError:
            note = "not evaluated: the drift module is not installed"
        except VigilError as exc:
            note = f"not evaluated: {exc}"
        checks.append(Check("drift share", share, f"> {spec.drift_share_above:g}",
                            share is not None and share > spec.drift_share_above, note))
    limit = spec.accuracy_below if spec.accuracy_below is not None else th.min_accuracy
    acc, n = _accuracy(ctx, model, win)
    enough = n >= spec.min_labels
    checks.append(Check("actual accuracy", acc, f"< {limit:g}", enough and acc is not None and acc < limit,
                        f"{n:,} labelled rows" + ("" if enough else f" (fewer than {spec.min_labels}: not judged)")))
    low, high = spec.disparate_impact_outside or (th.disparate_impact_low, th.disparate_impact_high)
    for attr, (di, why) in _disparate_impacts(ctx, model, win).items():
        checks.append(Check(f"disparate impact ({attr})", di, f"outside [{low:g}, {high:g}]",
                            di is not None and not low <= di <= high, why))
    return Decision(model, f"{win.start:%Y-%m-%d %H:%M}..{win.end:%Y-%m-%d %H:%M} UTC", checks)


def record_decision(ctx: Context, actor: Actor, decision: Decision, job_id: str | None) -> None:
    """Keep the rule's decision and its reasons (whoever may start a retrain may record one)."""
    require(actor, "retrain.start")
    with ctx.store.connect() as con:
        con.execute(_DDL)
        con.execute("INSERT INTO retrain_decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [datetime.now(UTC).replace(tzinfo=None), decision.model, actor.name, decision.retrain,
                     json.dumps(decision.reasons), json.dumps([c.__dict__ for c in decision.checks]), job_id])
    trail.record(ctx.store, actor, "retrain.rule", decision.model,
                 {"retrain": decision.retrain, "reasons": decision.reasons, "window": decision.window,
                  "job_id": job_id})


def decisions(ctx: Context, model: str, limit: int = 20) -> pd.DataFrame:
    """The latest recorded decisions (newest first)."""
    with ctx.store.connect() as con:
        con.execute(_DDL)
        return con.execute(f"SELECT ts, actor, retrain, reasons, job_id FROM retrain_decisions WHERE model = ? "
                           f"ORDER BY ts DESC LIMIT {int(limit)}", [model]).df()


def retrain_if_needed(ctx: Context, actor: Actor, model: str, **options: Any) -> tuple[Decision, Any]:
    """Evaluate the rule; start a retrain when it says so. Returns the decision and the job (or None)."""
    require(actor, "retrain.start")
    from dashboard.lifecycle import jobs

    decision = evaluate_rule(ctx, model)
    job = None
    if decision.retrain:
        job = jobs.start_retrain(ctx, actor, model, reason="; ".join(decision.reasons), **options)
    record_decision(ctx, actor, decision, job.id if job else None)
    return decision, job

