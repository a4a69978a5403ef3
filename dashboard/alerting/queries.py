"""Reading alerts: lists by state, one alert with its history and delivery log, open counts per model.

A silence runs out by itself: an alert whose ``silenced_until`` has passed reads as ``open`` again (and
gets repeats again), without anyone writing to the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from dashboard.alerting.state import (
    ACKNOWLEDGED,
    ALERT_COLUMNS,
    OPEN,
    RESOLVED,
    SILENCED,
    connect,
    utc_naive,
)
from dashboard.context import Context
from dashboard.errors import VigilError

#: The Alerts page's tabs and ``vigil alerts list --state``: which effective states each shows.
STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "open": (OPEN,), "acknowledged": (ACKNOWLEDGED, SILENCED), "resolved": (RESOLVED,),
}
LIST_COLUMNS: list[str] = ["id", "state", "severity", "model", "version", "kind", "subject", "summary",
                           "first_seen", "last_seen", "count", "acked_by", "silenced_until", "note", "resolved_at",
                           "page"]


@dataclass(frozen=True)
class AlertDetail:
    """One alert, its events (oldest first) and its delivery attempts (newest first)."""

    alert: dict[str, Any]
    history: pd.DataFrame
    deliveries: pd.DataFrame


def _effective_state_sql(now: datetime) -> tuple[str, list[Any]]:
    return (f"CASE WHEN state = '{SILENCED}' AND silenced_until <= ? THEN '{OPEN}' ELSE state END",
            [utc_naive(now)])


def alerts(ctx: Context, now: datetime, *, model: str | None = None, state: str | None = None,
           limit: int | None = None) -> pd.DataFrame:
    """Alerts newest first; ``state`` is a group of :data:`STATE_GROUPS` or one state."""
    if state is not None and state not in STATE_GROUPS and state != SILENCED:
        raise VigilError(f"unknown alert state '{state}'; choose one of {', '.join([*STATE_GROUPS, SILENCED])}")
    expr, params = _effective_state_sql(now)
    cols = [c if c != "state" else f"{expr} AS state" for c in ALERT_COLUMNS]
    where: list[str] = []
    if model:
        where.append("model = ?")
        params.append(model)
    if state:
        states = STATE_GROUPS.get(state, (state,))
        where.append(f"({expr}) IN ({', '.join('?' * len(states))})")
        params += [utc_naive(now), *states]
    sql = (f"SELECT {', '.join(cols)} FROM alerts" + (f" WHERE {' AND '.join(where)}" if where else "")
           + " ORDER BY last_seen DESC, id DESC" + (f" LIMIT {int(limit)}" if limit else ""))
    with connect(ctx) as con:
        frame = con.execute(sql, params).df()
    return frame[[c for c in LIST_COLUMNS if c in frame.columns]]


def open_counts(ctx: Context, now: datetime) -> dict[str, int]:
    """Open (not acknowledged, not silenced) alerts per model, for the Overview."""
    frame = alerts(ctx, now, state="open")
    return {str(k): int(v) for k, v in frame.groupby("model").size().items()} if len(frame) else {}


def details(ctx: Context, alert_ids: Sequence[int], now: datetime) -> dict[int, AlertDetail]:
    """Several alerts with their history and delivery logs, read in one connection (the page shows many)."""
    ids = [int(i) for i in alert_ids]
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    expr, params = _effective_state_sql(now)
    cols = [c if c != "state" else f"{expr} AS state" for c in ALERT_COLUMNS]
    with connect(ctx) as con:
        rows = con.execute(f"SELECT {', '.join(cols)} FROM alerts WHERE id IN ({marks})", [*params, *ids]).fetchall()
        history = con.execute(f"SELECT alert_id, ts, event, actor, note, evidence FROM alert_events "
                              f"WHERE alert_id IN ({marks}) ORDER BY ts, rowid", ids).df()
        deliveries = con.execute(
            "SELECT n.alert_id, d.notification_id, n.kind AS notification, d.route, d.attempt, d.status, "
            "d.started_at, d.finished_at, d.response, d.error, d.next_attempt_at FROM alert_deliveries d "
            f"JOIN alert_notifications n ON n.id = d.notification_id WHERE n.alert_id IN ({marks}) "
            "ORDER BY d.started_at DESC, d.attempt DESC", ids).df()
    out: dict[int, AlertDetail] = {}
    for row in rows:
        alert = dict(zip(ALERT_COLUMNS, row, strict=True))
        alert["evidence"] = json.loads(alert["evidence"])
        alert_id = int(alert["id"])
        out[alert_id] = AlertDetail(
            alert, history[history["alert_id"] == alert_id].drop(columns=["alert_id"]).reset_index(drop=True),
            deliveries[deliveries["alert_id"] == alert_id].drop(columns=["alert_id"]).reset_index(drop=True))
    return out


def detail(ctx: Context, alert_id: int, now: datetime) -> AlertDetail:
    """One alert with its full history and delivery log; a clear error for an unknown id."""
    found = details(ctx, [alert_id], now).get(int(alert_id))
    if found is None:
        raise VigilError(f"there is no alert #{alert_id}; `vigil alerts list` shows the alerts")
    return found


def pending_targets(ctx: Context) -> pd.DataFrame:
    """Every (notification, route) not yet delivered: the routes that are failing and what they owe."""
    with connect(ctx) as con:
        return con.execute("SELECT t.route, t.notification_id, n.alert_id, t.status, t.attempts, t.next_attempt_at, "
                           "t.last_error FROM alert_targets t JOIN alert_notifications n ON n.id = t.notification_id "
                           "WHERE t.status <> 'sent' ORDER BY t.route, t.next_attempt_at").df()


def evidence_frame(alert: dict[str, Any]) -> pd.DataFrame:
    """An alert's evidence as a two-column table of text (what was measured, against what)."""
    evidence = alert.get("evidence") or {}
    return pd.DataFrame({"field": [str(k) for k in evidence],
                         "value": ["" if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v)
                                   for v in evidence.values()]})


def explained_by(alert: dict[str, Any]) -> tuple[str | None, str]:
    """(metric, page file) that explain an alert: a policy's metric picks its page; else the signal's page."""
    metric = (alert.get("evidence") or {}).get("metric")
    return (str(metric) if metric else None), str(alert.get("page") or "")

