"""``vigil ingest``: load prediction logs (or delayed labels) into the DuckDB log store."""

from __future__ import annotations

import click

from connectors.logstore import FileResult
from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.monitoring.ingestion import ingest_files


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--labels", is_flag=True, help="The files hold labels (prediction_id, label[, ts, annotator, source]).")
@click.option("--source", default="ground_truth", show_default=True, help="Label source recorded with --labels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def command(ctx: click.Context, paths: tuple[str, ...], model: str, labels: bool, source: str,
            as_json: bool) -> None:
    """Ingest Parquet, CSV or JSONL files, globs or folders.

    Each file is checked against the model's configuration and loaded whole or not at all; a file
    ingested before (same content) is skipped. Exits 1 when any file was rejected.
    """
    context = get_context(ctx)

    def show(result: FileResult) -> None:
        if as_json:
            return
        if result.status == "ingested":
            click.echo(f"ingested  {result.path}: {result.rows:,} rows in {result.seconds:.2f} s")
        elif result.status == "skipped":
            click.echo(f"skipped   {result.path}: {result.detail}")
        else:
            click.echo(f"rejected  {result.path}", err=True)
            for problem in result.problems:
                click.echo(f"  {problem.line()}", err=True)

    report = ingest_files(context, cli_actor(), model, paths, labels=labels, source=source, progress=show)
    if as_json:
        echo_json({"rows_added": report.rows_added, "files": report.files})
    else:
        for result in report.files:  # path problems (missing files, bad patterns) were not streamed
            if result.status == "rejected" and not result.sha256:
                show(result)
        click.echo(f"{report.rows_added:,} rows added; {len(report.rejected)} file(s) rejected.")
    if report.rejected:
        ctx.exit(1)
