"""``vigil queue``: choose low-confidence predictions and send them to Label Studio (for cron and CI)."""

from __future__ import annotations

import click

from dashboard.charts.text import clip
from dashboard.commands.common import WINDOW_HELP, analysis_window, cli_actor, echo_json, get_context
from dashboard.learning.annotation import client_for, queue_and_send, queue_status
from dashboard.learning.selection import (
    BUCKETS,
    DEFAULT_BUDGET,
    DEFAULT_THRESHOLD,
    STRATEGIES,
    SelectionRequest,
    select_candidates,
)


@click.command("queue")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="least-confidence", show_default=True,
              help="How uncertainty is measured.")
@click.option("--budget", type=click.IntRange(1, 5000), default=DEFAULT_BUDGET, show_default=True,
              help="Most candidates to queue in this batch.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_THRESHOLD,
              show_default=True, help="Only predictions whose confidence is below this.")
@click.option("--window", "window_text", default="30d", show_default=True, help=WINDOW_HELP)
@click.option("--bucket", type=click.Choice(BUCKETS), default="day", show_default=True,
              help="Time bucket for stratification.")
@click.option("--segment", default="model_version", show_default=True,
              help="Column to stratify by (model_version, prediction or a categorical column; 'none' for none).")
@click.option("--dry-run", is_flag=True, help="Show the candidates; queue and send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def command(ctx: click.Context, model: str, strategy: str, budget: int, threshold: float, window_text: str,
            bucket: str, segment: str, dry_run: bool, as_json: bool) -> None:
    """Queue the predictions the model was least sure about and send them to Label Studio.

    Each prediction becomes one Label Studio task, ever: re-running after a failure finishes the batch
    without duplicates. Needs VIGIL_LABEL_STUDIO_URL and VIGIL_LABEL_STUDIO_TOKEN.
    """
    context = get_context(ctx)
    window = analysis_window(context, model, window_text)
    request = SelectionRequest(window=window, strategy=strategy, threshold=threshold, budget=budget,
                               bucket=bucket, segment=None if segment.lower() == "none" else segment)
    selection = select_candidates(context, model, request)
    if dry_run:
        if as_json:
            echo_json({"summary": selection.summary, "counts": selection.counts,
                       "candidates": selection.candidates})
        else:
            click.echo(selection.summary)
            for row in selection.candidates.itertuples():
                click.echo(f"  {clip(row.prediction_id)}  {clip(row.prediction)}  {row.confidence:.2f}  "
                           f"{clip(row.reason)}")
        return
    client = client_for(context)

    def progress(done: int, total: int) -> None:
        if not as_json:
            click.echo(f"  sent {done}/{total}", err=True)

    report = queue_and_send(context, cli_actor(), model, selection, client, progress=progress)
    status = queue_status(context, model)
    if as_json:
        echo_json({"summary": selection.summary, "queued": report.queued, "imported": report.imported,
                   "adopted": report.adopted, "duplicates_removed": report.duplicates_removed,
                   "remaining": report.remaining, "project_url": report.project_url, "queue": status})
    else:
        click.echo(selection.summary)
        click.echo(f"{report.queued} queued; {report.line()}")
        click.echo("queue: " + ", ".join(f"{k} {v}" for k, v in status.items()))
        click.echo(f"Label Studio project: {report.project_url}")
