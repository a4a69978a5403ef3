"""``vigil alerts``: list and show alerts, acknowledge or silence them, deliver due notifications now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
import pandas as pd

from dashboard.alerting import actions, queries
from dashboard.alerting.delivery import deliver_due
from dashboard.charts.text import PROSE_LIMIT, clip
from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.settings import parse_duration

STATE_CHOICES = [*queries.STATE_GROUPS, "silenced"]
_LIST_SHOWN = ["id", "state", "severity", "model", "version", "kind", "subject", "last_seen", "count"]


def _now() -> datetime:
    return datetime.now(UTC)


def _when(t: Any) -> str:
    """A stored (naive UTC) time for the text output, to the second."""
    return "n/a" if t is None or pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d %H:%M:%S} UTC"


def _act(ctx: click.Context, action: Callable[..., Any], alert_id: int, *args: Any, done: str) -> None:
    """Run one person's action on an alert as the user of VIGIL_TOKEN (the core checks the role, audits)."""
    action(get_context(ctx), cli_actor(ctx), alert_id, *args, _now())
    click.echo(f"alert #{alert_id} {done}")


@click.group("alerts")
def command() -> None:
    """Alerts opened by failing policies, SLO breaches, retrain rules, failed jobs and external changes."""


@command.command("list")
@click.option("--model", default=None, help="Only this model's alerts.")
@click.option("--state", type=click.Choice(STATE_CHOICES), default=None,
              help="open, acknowledged (includes silenced), silenced or resolved (default: all).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, model: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """Alerts, the most recently seen first."""
    context = get_context(ctx)
    if model:
        context.model(model)  # an unknown model is a config error naming the configured ones
    frame = queries.alerts(context, _now(), model=model, state=state, limit=limit)
    if as_json:
        echo_json(frame)
        return
    if frame.empty:
        click.echo("no alerts" + (f" in state {state}" if state else ""))
        return
    shown = frame[_LIST_SHOWN].assign(last_seen=[_when(t) for t in frame["last_seen"]], version=frame["version"].fillna(""))
    click.echo(shown.to_string(index=False))


@command.command("show")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the alert, its history and deliveries as JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, alert_id: int, as_json: bool) -> None:
    """One alert: its evidence, its history and every delivery attempt."""
    found = queries.detail(get_context(ctx), alert_id, _now())
    if as_json:
        echo_json({"alert": found.alert, "history": found.history, "deliveries": found.deliveries})
        return
    a = found.alert
    # values from logs and people may be huge: the text output clips them (--json has them whole)
    click.echo(f"alert #{a['id']} [{a['state']}] {a['severity']} {a['kind']} {clip(a['subject'])}: "
               f"{clip(a['summary'], PROSE_LIMIT)}")
    click.echo(f"  model {a['model']}" + (f" v{a['version']}" if a["version"] else "")
               + f", seen {a['count']} time(s) from {_when(a['first_seen'])} to {_when(a['last_seen'])}")
    if a["acked_by"]:
        until = f" until {_when(a['silenced_until'])}" if a["silenced_until"] else ""
        click.echo(f"  {a['state']} by {a['acked_by']}{until}: {clip(a['note'], PROSE_LIMIT) or '(no note)'}")
    click.echo("evidence:")
    for key, value in sorted(a["evidence"].items()):
        click.echo(f"  {clip(key)}: {clip(value, PROSE_LIMIT)}")
    click.echo("history:")
    for e in found.history.to_dict("records"):
        click.echo(f"  {_when(e['ts'])} {e['event']} by {e['actor']}" + (f": {clip(e['note'], PROSE_LIMIT)}" if e["note"] else ""))
    click.echo("deliveries:" if len(found.deliveries) else "deliveries: none")
    for d in found.deliveries.to_dict("records"):
        click.echo(f"  {_when(d['started_at'])} {d['route']} {d['notification']} attempt {d['attempt']}: {d['status']} "
                   f"{clip(d['response'])}" + (f" ({clip(d['error'], PROSE_LIMIT)})" if d["error"] else ""))


@command.command("ack")
@click.argument("alert_id", type=int)
@click.option("--note", default="", help="Why, or what is being done (kept in the history and the audit trail).")
@click.pass_context
def ack_cmd(ctx: click.Context, alert_id: int, note: str) -> None:
    """Acknowledge an alert: no more repeats while it keeps failing (data scientist, manager or admin)."""
    _act(ctx, actions.acknowledge, alert_id, note, done="acknowledged")


@command.command("silence")
@click.argument("alert_id", type=int)
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long, e.g. 30m, 2h, 1d.")
@click.option("--note", default="", help="Why (kept in the history and the audit trail).")
@click.pass_context
def silence_cmd(ctx: click.Context, alert_id: int, duration: str, note: str) -> None:
    """Silence an alert's repeats for a time (data scientist, manager or admin)."""
    seconds = parse_duration(duration)
    if seconds is None:
        raise click.BadParameter(f"'{duration}' is not a duration; use e.g. 30m, 2h or 1d", param_hint="--for")
    _act(ctx, actions.silence, alert_id, seconds, note, done=f"silenced for {duration}")


@command.command("resolve")
@click.argument("alert_id", type=int)
@click.option("--note", default="", help="What was done (kept in the history and the audit trail).")
@click.pass_context
def resolve_cmd(ctx: click.Context, alert_id: int, note: str) -> None:
    """Resolve a one-off event (a failed job, an external alias change); checks resolve their own alerts."""
    _act(ctx, actions.resolve, alert_id, note, done="resolved")


@command.command("deliver")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery report as JSON.")
@click.pass_context
def deliver_cmd(ctx: click.Context, as_json: bool) -> None:
    """Send the notifications that are due now (new, repeated, resolved; retries whose back-off ran out).
    Exit 1 when a route failed (the notification stays queued and is retried)."""
    report = deliver_due(get_context(ctx), _now())
    if as_json:
        echo_json(report)
    else:
        click.echo(report.line())
        for error in report.errors:
            click.echo(f"  failed: {error}")
    ctx.exit(1 if report.failed else 0)
