"""What people do with an alert: acknowledge it, silence it for a time, resolve a one-off event.

Each checks the actor's role in the core (:func:`dashboard.access.roles.require`), changes the alert and
its history in one transaction, and writes an audit entry. Acknowledging or silencing stops the repeats,
not the alert: it stays until its check passes (or, for a one-off event, until someone resolves it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from dashboard.access.roles import Actor, require
from dashboard.alerting.signals import EVENT_KINDS
from dashboard.alerting.state import (
    ACKNOWLEDGED,
    RESOLVED,
    SILENCED,
    add_event,
    alert_row,
    in_transaction,
    resolve_in,
    utc_naive,
)
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.errors import VigilError

MAX_SILENCE_S = 30 * 86400.0


def _unresolved(con: duckdb.DuckDBPyConnection, alert_id: int) -> dict[str, Any]:
    try:
        alert = alert_row(con, alert_id)
    except KeyError:
        raise VigilError(f"there is no alert #{alert_id}; `vigil alerts list` shows the alerts") from None
    if alert["state"] == RESOLVED:
        raise VigilError(f"alert #{alert_id} is already resolved; a new failure opens a new alert")
    return alert


def _audit(ctx: Context, actor: Actor, action: str, alert: dict[str, Any], details: dict[str, Any]) -> None:
    trail.record(ctx, actor, action, target=str(alert["model"]),
                 details={"alert": alert["id"], "dedup_key": alert["dedup_key"], **details})


def acknowledge(ctx: Context, actor: Actor, alert_id: int, note: str, now: datetime) -> dict[str, Any]:
    """Someone looks after it: no more repeats while it keeps failing."""
    require(actor, "alert.acknowledge")
    ts = utc_naive(now)

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        alert = _unresolved(con, alert_id)
        con.execute("UPDATE alerts SET state = ?, acked_by = ?, acked_at = ?, silenced_until = NULL, note = ? "
                    "WHERE id = ?", [ACKNOWLEDGED, actor.name, ts, note, alert_id])
        add_event(con, alert_id, ts, "acknowledged", actor=actor.name, note=note)
        return alert

    alert: dict[str, Any] = in_transaction(ctx, work)
    _audit(ctx, actor, "alert.acknowledge", alert, {"note": note})
    return alert


def silence(ctx: Context, actor: Actor, alert_id: int, duration_s: float, note: str,
            now: datetime) -> dict[str, Any]:
    """No repeats until ``now + duration``; then the alert reads as open again if it still fails."""
    require(actor, "alert.silence")
    if not 0 < duration_s <= MAX_SILENCE_S:
        raise VigilError("a silence lasts between a second and 30 days; give e.g. --for 2h")
    ts = utc_naive(now)
    until = ts + timedelta(seconds=duration_s)

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        alert = _unresolved(con, alert_id)
        con.execute("UPDATE alerts SET state = ?, acked_by = ?, acked_at = ?, silenced_until = ?, note = ? "
                    "WHERE id = ?", [SILENCED, actor.name, ts, until, note, alert_id])
        add_event(con, alert_id, ts, "silenced", actor=actor.name, note=f"until {until:%Y-%m-%d %H:%M} UTC: {note}")
        return alert

    alert: dict[str, Any] = in_transaction(ctx, work)
    _audit(ctx, actor, "alert.silence", alert, {"until": until.isoformat(), "note": note})
    return alert


def resolve(ctx: Context, actor: Actor, alert_id: int, note: str, now: datetime) -> dict[str, Any]:
    """Close a one-off event (a failed job, an external alias change) once someone has dealt with it."""
    require(actor, "alert.resolve")
    ts = utc_naive(now)

    def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        alert = _unresolved(con, alert_id)
        if alert["kind"] not in EVENT_KINDS:
            raise VigilError(f"alert #{alert_id} resolves itself when its {alert['kind']} check passes again; "
                             "acknowledge or silence it instead")
        resolve_in(con, ctx, alert_id, ts, actor.name, note)
        return alert

    alert: dict[str, Any] = in_transaction(ctx, work)
    _audit(ctx, actor, "alert.resolve", alert, {"note": note})
    return alert
