"""``vigil findings``: record a finding on a model version, list findings, resolve one (audited)."""

from __future__ import annotations

from datetime import date, datetime

import click

from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.governance import findings as fnd


@click.group("findings")
def command() -> None:
    """Findings on model versions: open high or critical ones block promotion (policy open_findings)."""


@command.command("add")
@click.option("--model", "-m", required=True)
@click.option("--version", "-v", "version", required=True)
@click.option("--title", required=True, help="What was found.")
@click.option("--severity", type=click.Choice(fnd.SEVERITIES), required=True)
@click.option("--owner", required=True, help="Who will resolve it.")
@click.option("--due", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Due date (YYYY-MM-DD).")
@click.option("--control", default="", help="The control it concerns, pack:control (e.g. eu-ai-act:art-10).")
@click.pass_context
def add_cmd(ctx: click.Context, model: str, version: str, title: str, severity: str, owner: str,
            due: datetime | None, control: str) -> None:
    """Record an open finding (a data scientist or manager; acts as the VIGIL_TOKEN user)."""
    due_date = due.date() if due is not None else None
    found = fnd.record_finding(get_context(ctx), cli_actor(ctx), model, version, title, severity, owner, due_date,
                               control)
    click.echo(f"finding #{found.id} recorded on {model} version {found.version} ({found.severity})")


@command.command("list")
@click.option("--model", "-m", default=None)
@click.option("--version", "-v", "version", default=None)
@click.option("--state", type=click.Choice([fnd.OPEN, fnd.RESOLVED]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, model: str | None, version: str | None, state: str | None, as_json: bool) -> None:
    """Findings, newest first."""
    found = fnd.findings(get_context(ctx), model, version, state)
    if as_json:
        echo_json(fnd.frame(found))
    elif not found:
        click.echo("No findings.")
    else:
        today = date.today()
        for f in found:
            late = " OVERDUE" if f.overdue(today) else ""
            click.echo(f"#{f.id} {f.state:<8} {f.severity:<8} {f.model} v{f.version}  {f.title}  (owner {f.owner}"
                       + (f", due {f.due}" if f.due else "") + (f", control {f.control}" if f.control else "")
                       + f"){late}")


@command.command("resolve")
@click.argument("finding_id", type=int)
@click.option("--resolution", required=True, help="What was done about it.")
@click.pass_context
def resolve_cmd(ctx: click.Context, finding_id: int, resolution: str) -> None:
    """Resolve finding FINDING_ID (a manager)."""
    done = fnd.resolve_finding(get_context(ctx), cli_actor(ctx), finding_id, resolution)
    click.echo(f"finding #{done.id} resolved by {done.resolved_by}")
