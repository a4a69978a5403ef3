"""``vigil retrain``: start a retrain (or only when the retrain rule says so), list, follow, cancel jobs."""

from __future__ import annotations

import click

from dashboard.commands.common import cli_actor, echo_json, get_context
from dashboard.lifecycle import jobs


@click.command("retrain")
@click.option("--model", "model", help="Model to retrain (as in vigil.toml).")
@click.option("--if-needed", is_flag=True,
              help="Retrain only when the model's retrain rule triggers (drift share, accuracy, disparate "
                   "impact); the decision and its reasons are recorded either way.")
@click.option("--include-labels/--no-include-labels", default=None,
              help="Add labelled production rows to the training data (default: retrain.include_labels).")
@click.option("--reweighing/--no-reweighing", default=None, help="AIF360-style reweighing by sex and outcome.")
@click.option("--runner", type=click.Choice(["local", "webhook", "github"]), default=None,
              help="Where to train (default: retrain.runner, normally local).")
@click.option("--rows", type=int, default=None, help="Synthetic training rows (demo training command).")
@click.option("--seed", type=int, default=None, help="Training seed (demo training command).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the job until it ends (exit 1 when it fails or is cancelled).")
@click.option("--list", "list_jobs", is_flag=True, help="List recent jobs (of --model, or all) and exit.")
@click.option("--cancel", "cancel_id", metavar="JOB_ID", help="Cancel a queued or running job and exit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def command(ctx: click.Context, model: str | None, if_needed: bool, include_labels: bool | None,
            reweighing: bool | None, runner: str | None, rows: int | None, seed: int | None, wait: bool,
            list_jobs: bool, cancel_id: str | None, as_json: bool) -> None:
    """Retrain a model in the background: a new MLflow version with the challenger alias, judged
    against the champion by the gate (evidence stored on the version)."""
    context = get_context(ctx)
    if list_jobs:  # a read: no credentials needed
        found = jobs.list_jobs(context, model)
        frame = jobs.jobs_frame(found)
        if as_json:
            echo_json(frame)
        else:
            click.echo(frame.to_string(index=False) if len(frame) else "no jobs yet")
        return
    actor = cli_actor()
    if cancel_id:
        job = jobs.cancel(context, actor, cancel_id)
        click.echo(f"job {job.id}: {job.state}")
        return
    if not model:
        raise click.UsageError("--model is required (or use --list / --cancel)")
    extra = {k: v for k, v in (("rows", rows), ("seed", seed)) if v is not None}
    options = {"include_labels": include_labels, "reweighing": reweighing, "runner": runner, "extra": extra}
    if if_needed:
        from dashboard.lifecycle.retrain_rules import retrain_if_needed

        decision, job = retrain_if_needed(context, actor, model, **options)
        if as_json and job is None:
            echo_json({"retrain": False, "reasons": decision.reasons, "window": decision.window})
        elif not as_json:
            click.echo(f"{model}: {'retraining' if decision.retrain else 'no retrain needed'} "
                       f"(window {decision.window})")
            for check in decision.checks:
                click.echo(f"  - {check.line()}")
        if job is None:
            return
    else:
        job = jobs.start_retrain(context, actor, model, include_labels=include_labels, reweighing=reweighing,
                                 runner=runner, extra=extra)
    if not as_json:
        click.echo(f"job {job.id} started (log: {job.log_path})")
    if not wait:
        if as_json:
            echo_json(job)
        return
    seen = 0

    def follow(j: jobs.Job) -> None:
        nonlocal seen
        if as_json:
            return
        try:
            with j.log_path.open("r", encoding="utf-8", errors="replace") as fh:
                fh.seek(seen)
                chunk = fh.read()
                seen = fh.tell()
        except FileNotFoundError:
            return
        if chunk:
            click.echo(chunk, nl=False)

    done = jobs.wait(context, job.id, on_poll=follow)
    if as_json:
        echo_json(done)
    else:
        click.echo(f"job {done.id}: {done.state}: {done.message}")
    if done.state != "succeeded":
        ctx.exit(1)
