"""``vigil sync-labels``: bring Label Studio annotations back as labels (for cron and CI)."""

from __future__ import annotations

import click

from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.learning.annotation import client_for, queue_status, sync_labels


@click.command("sync-labels")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def command(ctx: click.Context, model: str, as_json: bool) -> None:
    """Pull submitted annotations, resolve several per task by majority, and record changed labels.

    Updated annotations replace the label; deleted ones retract it. Safe to run as often as you like:
    a sync with nothing new writes nothing.
    """
    context = get_context(ctx)
    report = sync_labels(context, cli_actor(), model, client_for(context))
    status = queue_status(context, model)
    if as_json:
        echo_json({"tasks": report.tasks, "labelled": report.labelled, "skipped": report.skipped,
                   "ties": report.ties, "written": report.written, "retracted": report.retracted,
                   "agreement": report.agreement, "annotators": report.annotators, "queue": status})
    else:
        click.echo(report.line())
        for rec in report.annotators.to_dict(orient="records"):
            share = rec["agreement_with_majority"]
            agree = "" if share is None or share != share else f", agrees with the majority {share:.0%}"
            click.echo(f"  {rec['annotator']}: {rec['labelled']} labelled, {rec['skipped']} skipped{agree}")
        click.echo("queue: " + ", ".join(f"{k} {v}" for k, v in status.items()))
