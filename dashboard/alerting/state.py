"""Alert state in the log store: one alert per dedup key while it keeps failing, with its history.

Why in the store: the app, the CLI and every ``vigil serve`` process share one DuckDB file, so the
store is the one place two processes can agree on "this failure already has an alert". The open alert
of a dedup key is held in ``alert_open`` (primary key = dedup key); opening inserts there in the same
transaction as the alert, so a second process observing the same failure at the same moment hits the
key, rolls back and retries as a refresh of the alert the first one opened.

Every change appends to ``alert_events`` and, when people must hear of it (opened, resolved), queues a
notification for :mod:`dashboard.alerting.delivery` in the same transaction: nothing is lost between
the change and its notification.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from dashboard.alerting.signals import EVENT_KINDS, Signal
from dashboard.audit import trail
from dashboard.context import Context

OPEN, ACKNOWLEDGED, SILENCED, RESOLVED = "open", "acknowledged", "silenced", "resolved"
STATES: tuple[str, ...] = (OPEN, ACKNOWLEDGED, SILENCED, RESOLVED)

_DDL = """
CREATE SEQUENCE IF NOT EXISTS alert_ids START 1;
CREATE TABLE IF NOT EXISTS alerts (
    id BIGINT PRIMARY KEY, dedup_key VARCHAR NOT NULL, model VARCHAR NOT NULL, version VARCHAR,
    kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, severity VARCHAR NOT NULL, summary VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL, page VARCHAR NOT NULL, state VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL, last_seen TIMESTAMP NOT NULL, count BIGINT NOT NULL,
    acked_by VARCHAR, acked_at TIMESTAMP, silenced_until TIMESTAMP, note VARCHAR,
    resolved_at TIMESTAMP, resolved_by VARCHAR);
CREATE TABLE IF NOT EXISTS alert_open (dedup_key VARCHAR PRIMARY KEY, alert_id BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id BIGINT NOT NULL, ts TIMESTAMP NOT NULL, event VARCHAR NOT NULL, actor VARCHAR NOT NULL,
    note VARCHAR NOT NULL, evidence VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS alert_notifications (
    id VARCHAR PRIMARY KEY, alert_id BIGINT NOT NULL, kind VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
    alert VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS alert_targets (
    notification_id VARCHAR NOT NULL, route VARCHAR NOT NULL, status VARCHAR NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at TIMESTAMP NOT NULL, last_error VARCHAR NOT NULL,
    sent_at TIMESTAMP, PRIMARY KEY (notification_id, route));
CREATE TABLE IF NOT EXISTS alert_deliveries (
    notification_id VARCHAR NOT NULL, route VARCHAR NOT NULL, attempt INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, status VARCHAR NOT NULL, response VARCHAR NOT NULL,
    error VARCHAR NOT NULL, next_attempt_at TIMESTAMP, PRIMARY KEY (notification_id, route, attempt));
"""
_RETRIES = 20
_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # log stores whose alert tables exist
ALERT_COLUMNS: tuple[str, ...] = (
    "id", "dedup_key", "model", "version", "kind", "subject", "severity", "summary", "evidence", "page", "state",
    "first_seen", "last_seen", "count", "acked_by", "acked_at", "silenced_until", "note", "resolved_at",
    "resolved_by")


@dataclass(frozen=True)
class AlertChange:
    """What one observation did to one alert: ``opened``, ``refreshed`` or ``resolved``."""

    alert_id: int
    dedup_key: str
    change: str
    state: str
    model: str
    kind: str
    subject: str
    severity: str


def utc_naive(t: datetime) -> datetime:
    """Stored times are naive UTC."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def connect(ctx: Context) -> Any:
    """A store connection with the alert tables created (once per store object: every connection costs)."""
    store = ctx.store
    if store not in _READY:
        with store.connect() as con:
            ensure_tables(con)
        _READY.add(store)
    return store.connect()


def as_json(value: dict[str, Any]) -> str:
    """Evidence and snapshots as the audit trail writes details: canonical JSON, NaN and inf as null."""
    return trail.canonical_details(value)


def in_transaction(ctx: Context, work: Any) -> Any:
    """Run ``work(con)`` in one transaction; retry when a concurrent writer won a conflict."""
    for attempt in range(_RETRIES):
        try:
            with connect(ctx) as con:
                con.execute("BEGIN TRANSACTION")
                try:
                    result = work(con)
                    con.execute("COMMIT")
                    return result
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except (duckdb.TransactionException, duckdb.ConstraintException):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def add_event(con: duckdb.DuckDBPyConnection, alert_id: int, ts: datetime, event: str, actor: str = "vigil",
              note: str = "", evidence: dict[str, Any] | None = None) -> None:
    con.execute("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?)",
                [alert_id, ts, event, actor, note, as_json(evidence or {})])


def alert_row(con: duckdb.DuckDBPyConnection, alert_id: int) -> dict[str, Any]:
    """One alert's columns (evidence parsed), read inside the caller's connection."""
    row = con.execute(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE id = ?", [alert_id]).fetchone()
    if row is None:
        raise KeyError(alert_id)
    alert = dict(zip(ALERT_COLUMNS, row, strict=True))
    alert["evidence"] = json.loads(alert["evidence"])
    return alert


def queue_notification(con: duckdb.DuckDBPyConnection, ctx: Context, alert_id: int, kind: str,
                       ts: datetime) -> str:
    """Queue one notification of ``alert_id`` (with the alert as it is now) for every route that takes it.

    The id (alert, kind, sequence) is stable, so a receiver can drop a copy it already has; a concurrent
    writer queueing the same notification collides on it and retries.
    """
    n = con.execute("SELECT count(*) FROM alert_notifications WHERE alert_id = ? AND kind = ?",
                    [alert_id, kind]).fetchone()
    note_id = f"vigil-alert-{alert_id}-{kind}-{int(n[0]) + 1 if n else 1}"
    alert = alert_row(con, alert_id)
    con.execute("INSERT INTO alert_notifications VALUES (?, ?, ?, ?, ?)",
                [note_id, alert_id, kind, ts, as_json(alert)])
    for route in ctx.settings.alerts.routes:
        if route.accepts(str(alert["model"]), str(alert["severity"])):
            con.execute("INSERT INTO alert_targets VALUES (?, ?, 'pending', 0, ?, '', NULL)",
                        [note_id, route.name, ts])
    return note_id


def _open_or_refresh(con: duckdb.DuckDBPyConnection, ctx: Context, signal: Signal, ts: datetime) -> AlertChange:
    key = signal.dedup_key
    evidence = as_json(signal.evidence)
    row = con.execute("SELECT a.id, a.state FROM alert_open o JOIN alerts a ON a.id = o.alert_id "
                      "WHERE o.dedup_key = ?", [key]).fetchone()
    if row is not None:
        alert_id, state = int(row[0]), str(row[1])
        con.execute("UPDATE alerts SET last_seen = greatest(last_seen, ?), count = count + 1, evidence = ?, "
                    "summary = ?, severity = ?, page = ? WHERE id = ?",
                    [ts, evidence, signal.summary, signal.severity, signal.page, alert_id])
        add_event(con, alert_id, ts, "observed", evidence=signal.evidence)
        return AlertChange(alert_id, key, "refreshed", state, signal.model, signal.kind, signal.subject,
                           signal.severity)
    new = con.execute("SELECT nextval('alert_ids')").fetchone()
    alert_id = int(new[0]) if new else 1
    con.execute("INSERT INTO alert_open VALUES (?, ?)", [key, alert_id])  # a concurrent opener conflicts here
    con.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, NULL, NULL, "
                "NULL, NULL)",
                [alert_id, key, signal.model, signal.version, signal.kind, signal.subject, signal.severity,
                 signal.summary, evidence, signal.page, OPEN, ts, ts])
    add_event(con, alert_id, ts, "opened", note=signal.summary, evidence=signal.evidence)
    queue_notification(con, ctx, alert_id, "opened", ts)
    return AlertChange(alert_id, key, "opened", OPEN, signal.model, signal.kind, signal.subject, signal.severity)


def resolve_in(con: duckdb.DuckDBPyConnection, ctx: Context, alert_id: int, ts: datetime, actor: str,
               note: str) -> AlertChange:
    """Resolve one unresolved alert inside the caller's transaction and queue its resolution notice."""
    row = con.execute("SELECT dedup_key, model, kind, subject, severity FROM alerts WHERE id = ?",
                      [alert_id]).fetchone()
    assert row is not None
    key, model, kind, subject, severity = (str(v) for v in row)
    con.execute("DELETE FROM alert_open WHERE alert_id = ?", [alert_id])
    con.execute("UPDATE alerts SET state = ?, resolved_at = ?, resolved_by = ? WHERE id = ?",
                [RESOLVED, ts, actor, alert_id])
    add_event(con, alert_id, ts, "resolved", actor=actor, note=note)
    queue_notification(con, ctx, alert_id, "resolved", ts)
    return AlertChange(alert_id, key, "resolved", RESOLVED, model, kind, subject, severity)


def observe(ctx: Context, model: str, kind: str, failing: Sequence[Signal], checked: Iterable[str],
            now: datetime, *, versions: Sequence[str | None] | None = None) -> list[AlertChange]:
    """Open/refresh one alert per failing signal; resolve open alerts of (model, kind) whose subject is in
    ``checked`` and not failing (only of ``versions`` when given: a version's evaluation resolves its own)."""
    for s in failing:
        if s.model != model or s.kind != kind:
            raise ValueError(f"signal {s.dedup_key} does not belong to observe({model!r}, {kind!r})")
    ts = utc_naive(now)
    failing_keys = {s.dedup_key for s in failing}
    checked_set = set(checked)

    def work(con: duckdb.DuckDBPyConnection) -> list[AlertChange]:
        changes = [_open_or_refresh(con, ctx, s, ts) for s in failing]
        rows = con.execute("SELECT a.id, a.version, a.subject, a.dedup_key FROM alert_open o "
                           "JOIN alerts a ON a.id = o.alert_id WHERE a.model = ? AND a.kind = ?",
                           [model, kind]).fetchall()
        for alert_id, version, subject, key in rows:
            if versions is not None and version not in versions:
                continue
            if subject in checked_set and key not in failing_keys:
                changes.append(resolve_in(con, ctx, int(alert_id), ts, "vigil", "the check passes again"))
        return changes

    result: list[AlertChange] = in_transaction(ctx, work)
    return result


def raise_event(ctx: Context, signal: Signal, now: datetime) -> AlertChange:
    """A one-off event (external alias change, failed job): opens (or refreshes) an alert that a person
    acknowledges/resolves; no check ever resolves it."""
    if signal.kind not in EVENT_KINDS:
        kinds = ", ".join(sorted(EVENT_KINDS))
        raise ValueError(f"raise_event takes one-off events ({kinds}); use observe() for '{signal.kind}'")
    ts = utc_naive(now)
    change: AlertChange = in_transaction(ctx, lambda con: _open_or_refresh(con, ctx, signal, ts))
    return change
