"""Delivery of alert notifications to the configured routes, with a log, retries and back-off.

Why this shape: a route that is down or slow must never lose a notification, and a notification that
reached a route must never reach it twice. Each (notification, route) pair is a *target* in the store.
:func:`deliver_due` claims a due target in a transaction (attempt number + a lease as its next attempt
time) and logs the attempt *before* sending, sends outside the transaction, then records the reply: sent,
or failed with the next attempt after an exponential back-off (capped, never given up). Two processes
cannot claim the same attempt (the attempt row's key collides); a process killed between send and record
leaves a claimed attempt whose lease runs out, so it is sent again with the same notification id, which
receivers use to drop the copy.

Repeats: an alert still open (not acknowledged, not silenced) gets a ``repeat`` notification once the
last one is ``[alerts] repeat_interval`` old.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from connectors.routes import EmailRoute, Message, Route, RouteError, SlackRoute, WebhookRoute, host_only
from dashboard.alerting.messages import message_for
from dashboard.alerting.state import (
    OPEN,
    SILENCED,
    in_transaction,
    queue_notification,
    utc_naive,
)
from dashboard.context import Context
from dashboard.settings import AlertRoute, AlertSettings

SENT, FAILED, SENDING, INTERRUPTED = "sent", "failed", "sending", "interrupted"


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_due` call did."""

    repeats_queued: int = 0
    sent: int = 0
    failed: int = 0
    waiting: int = 0  # targets not yet sent that wait for a later call (back-off or a claim by another process)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.sent} sent, {self.failed} failed, {self.waiting} waiting for a retry, "
                f"{self.repeats_queued} repeat(s) queued")


@dataclass(frozen=True)
class _Claim:
    notification_id: str
    route: str
    attempt: int
    message: Message


def backoff_s(settings: AlertSettings, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failures: base doubling, capped."""
    return float(min(settings.retry_max_s, settings.retry_base_s * 2 ** max(attempts - 1, 0)))


def lease_s(settings: AlertSettings) -> float:
    """How long a claimed attempt may take before another call may take it over (a killed sender)."""
    return settings.timeout_s * 3 + 30.0


def build_route(route: AlertRoute, timeout_s: float, env: Mapping[str, str]) -> Route:
    """The connector for one configured route, with its secrets read from the environment now."""
    if route.type == "webhook":
        secret = env.get(route.secret_env or "", "")
        if not secret:
            raise RouteError(f"route '{route.name}': the environment variable {route.secret_env} holding its "
                             "signing secret is not set; export it for the process that delivers alerts",
                             "not configured")
        return WebhookRoute(route.name, str(route.url), secret, timeout_s)
    if route.type == "slack":
        url = env.get(route.url_env, "") if route.url_env else route.url
        if not url:
            raise RouteError(f"route '{route.name}': the environment variable {route.url_env} holding the Slack "
                             "webhook URL is not set; export it for the process that delivers alerts",
                             "not configured")
        return SlackRoute(route.name, url, timeout_s)
    password = env.get(route.password_env) if route.password_env else None
    return EmailRoute(route.name, str(route.smtp_host), route.smtp_port, str(route.sender), route.to,
                      starttls=route.starttls, username=route.username, password=password,
                      ca_file=route.ca_file, timeout_s=timeout_s)


def _queue_repeats(con: duckdb.DuckDBPyConnection, ctx: Context, ts: datetime) -> int:
    """Queue a ``repeat`` of every alert still open whose last notification is a repeat interval old."""
    cutoff = ts - timedelta(seconds=ctx.settings.alerts.repeat_interval_s)
    rows = con.execute(
        "SELECT a.id FROM alerts a JOIN alert_notifications n ON n.alert_id = a.id "
        "WHERE (a.state = ? OR (a.state = ? AND a.silenced_until <= ?)) AND n.kind IN ('opened', 'repeat') "
        "GROUP BY a.id HAVING max(n.created_at) <= ? ORDER BY a.id",
        [OPEN, SILENCED, ts, cutoff]).fetchall()
    for (alert_id,) in rows:
        queue_notification(con, ctx, int(alert_id), "repeat", ts)
    return len(rows)


def _prepare(ctx: Context, ts: datetime) -> tuple[int, list[tuple[str, str]], int]:
    """Queue the due repeats, then list the due targets: (repeats queued, due targets, targets not yet due)."""

    def work(con: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]], int]:
        repeats = _queue_repeats(con, ctx, ts)
        rows = con.execute("SELECT notification_id, route, next_attempt_at <= ? FROM alert_targets WHERE status <> ? "
                           "ORDER BY next_attempt_at, notification_id, route", [ts, SENT]).fetchall()
        due = [(str(r[0]), str(r[1])) for r in rows if r[2]]
        return repeats, due, len(rows) - len(due)

    prepared: tuple[int, list[tuple[str, str]], int] = in_transaction(ctx, work)
    return prepared


def _claim(ctx: Context, notification_id: str, route: str, ts: datetime) -> _Claim | None:
    """Take the next attempt of one target if it is still due; log it as ``sending`` before anything is sent."""
    lease = timedelta(seconds=lease_s(ctx.settings.alerts))

    def work(con: duckdb.DuckDBPyConnection) -> _Claim | None:
        row = con.execute("SELECT status, attempts, next_attempt_at FROM alert_targets "
                          "WHERE notification_id = ? AND route = ?", [notification_id, route]).fetchone()
        if row is None or row[0] == SENT or row[2] > ts:
            return None
        attempt = int(row[1]) + 1
        con.execute("UPDATE alert_deliveries SET status = ?, finished_at = ?, error = ? WHERE notification_id = ? "
                    "AND route = ? AND status = ?",
                    [INTERRUPTED, ts, "no reply was recorded (the sender stopped); sent again",
                     notification_id, route, SENDING])
        con.execute("INSERT INTO alert_deliveries VALUES (?, ?, ?, ?, NULL, ?, '', '', NULL)",
                    [notification_id, route, attempt, ts, SENDING])
        con.execute("UPDATE alert_targets SET status = ?, attempts = ?, next_attempt_at = ? "
                    "WHERE notification_id = ? AND route = ?", [SENDING, attempt, ts + lease, notification_id, route])
        note = con.execute("SELECT n.kind, n.alert FROM alert_notifications n WHERE n.id = ?",
                           [notification_id]).fetchone()
        assert note is not None
        return _Claim(notification_id, route, attempt, message_for(notification_id, str(note[0]), str(note[1])))

    claim: _Claim | None = in_transaction(ctx, work)
    return claim


def _record(ctx: Context, claim: _Claim, ts: datetime, response: str, error: str | None) -> None:
    """Write the reply of one attempt: the target is sent, or waits for its next attempt after a back-off."""
    nxt = None if error is None else ts + timedelta(seconds=backoff_s(ctx.settings.alerts, claim.attempt))

    def work(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("UPDATE alert_deliveries SET finished_at = ?, status = ?, response = ?, error = ?, "
                    "next_attempt_at = ? WHERE notification_id = ? AND route = ? AND attempt = ?",
                    [ts, SENT if error is None else FAILED, response, error or "", nxt, claim.notification_id,
                     claim.route, claim.attempt])
        if error is None:
            con.execute("UPDATE alert_targets SET status = ?, sent_at = ?, last_error = '' "
                        "WHERE notification_id = ? AND route = ?", [SENT, ts, claim.notification_id, claim.route])
        else:
            con.execute("UPDATE alert_targets SET status = ?, next_attempt_at = ?, last_error = ? "
                        "WHERE notification_id = ? AND route = ?",
                        [FAILED, nxt, error, claim.notification_id, claim.route])

    in_transaction(ctx, work)


def deliver_due(ctx: Context, now: datetime, *, env: Mapping[str, str] | None = None) -> DeliveryReport:
    """Send every pending notification (opened, repeat after repeat_interval while still failing and not
    acknowledged/silenced, resolved) on every configured route; failures are logged per delivery and
    retried with exponential back-off on later calls; nothing is lost.

    ``env`` holds the routes' secrets (default: this process's environment).
    """
    env = os.environ if env is None else env
    settings = ctx.settings.alerts
    ts = utc_naive(now)
    repeats, due, waiting = _prepare(ctx, ts)
    routes = {r.name: r for r in settings.routes}
    sent = failed = 0
    errors: list[str] = []
    for notification_id, route_name in due:
        claim = _claim(ctx, notification_id, route_name, ts)
        if claim is None:  # another process holds its claim, or sent it meanwhile
            waiting += 1
            continue
        try:
            if route_name not in routes:
                raise RouteError(f"route '{route_name}' is no longer in [[alerts.routes]]; add it back to deliver "
                                 "what it still owes", "not configured")
            response, error = build_route(routes[route_name], settings.timeout_s, env).send(claim.message), None
        except RouteError as exc:
            response, error = exc.response, str(exc)
        except Exception as exc:  # a surprise of one route must not hold back the others: it is logged
            response, error = "error", f"route '{route_name}': {type(exc).__name__}: {exc}"
        _record(ctx, claim, ts, response, error)
        if error is None:
            sent += 1
        else:
            failed += 1
            errors.append(error)
    return DeliveryReport(repeats_queued=repeats, sent=sent, failed=failed, waiting=waiting + failed, errors=errors)


def describe(settings: AlertSettings) -> list[dict[str, Any]]:
    """The configured routes as rows for display (no secrets: variable names, hosts without paths)."""
    rows = []
    for r in settings.routes:
        if r.url_env:
            target = f"${r.url_env}"
        elif r.url:  # the host only: a Slack URL's path is its secret
            target = host_only(r.url)
        else:
            target = f"{r.smtp_host}:{r.smtp_port} -> {', '.join(r.to)}"
        rows.append({"route": r.name, "type": r.type, "target": target, "models": ", ".join(r.models) or "all",
                     "min_severity": r.min_severity})
    return rows
