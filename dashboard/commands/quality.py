"""``vigil quality``: data-quality monitors and expectations of a model's logs; import or run Great
Expectations validations as evidence."""

from __future__ import annotations

import click

from dashboard.charts.text import clip
from dashboard.commands.common import WINDOW_HELP, analysis_window, cli_actor, echo_json, get_context
from dashboard.monitoring.data_quality import DataQualityResult, compute_data_quality


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


@click.group("quality", invoke_without_command=True)
@click.option("--model", "-m", default=None, help="Model name as configured in vigil.toml.")
@click.option("--window", "window_text", default="7d", show_default=True, help=WINDOW_HELP)
@click.option("--version", default=None, help="Only this model version's logs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--fail-on-error", is_flag=True, help="Exit 1 when a monitor or expectation fails (for CI).")
@click.pass_context
def command(ctx: click.Context, model: str | None, window_text: str, version: str | None, as_json: bool,
            fail_on_error: bool) -> None:
    """Missing, unseen, out-of-range and non-finite values per column against the reference, and the
    configured expectations (Great Expectations' vocabulary, evaluated in DuckDB), as on the Data quality page.

    Sub-commands import a GX validation result or run a GX suite on a sample of the logs.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise click.UsageError("give --model M (or a sub-command: import, run)")
    context = get_context(ctx)
    window = analysis_window(context, model, window_text, version)
    result = compute_data_quality(context, model, window, version=version)
    if as_json:
        from dashboard.governance import gx_results

        echo_json({"model": model, "version": version, "window": result.window_label,
                   "reference": result.reference_label, "rows": result.n_rows, "min_rows": result.min_rows,
                   "failures": result.failures, "monitors": result.monitors, "expectations": result.expectations,
                   "gx_runs": gx_results.runs(context, model, version)})
    else:
        _print(result)
    if fail_on_error and result.failures:
        ctx.exit(1)


def _print(result: DataQualityResult) -> None:
    click.echo(f"{result.model}: window {result.window_label} ({result.n_rows:,} rows) against "
               f"{clip(result.reference_label)}")
    width = max([len("column"), *(len(m.column) for m in result.monitors)])
    click.echo(f"{'column':<{width}}  {'monitor':<16}  {'status':<15}  {'value':>8}  {'limit':>8}  detail")
    for m in result.monitors:
        detail = "; ".join(x for x in (m.note, _examples(m.examples)) if x)
        click.echo(f"{m.column:<{width}}  {m.monitor:<16}  {m.status:<15}  {_pct(m.value):>8}  {_pct(m.threshold):>8}  "
                   f"{clip(detail)}")
    if result.expectations:
        click.echo("\nexpectations:")
        for e in result.expectations:
            counts = (f"{e.unexpected_count:,} unexpected of {e.considered:,}" if e.unexpected_count is not None
                      else f"observed {e.observed_value}" if e.observed_value is not None else "")
            detail = "; ".join(x for x in (counts, e.note, _examples(e.examples)) if x)
            click.echo(f"  {e.status.upper():<15} {e.severity:<8} {clip(e.name):<40} {clip(detail)}")
    click.echo(f"\n{len(result.failures)} failing check(s)" + (f": {clip(', '.join(result.failures))}"
                                                                 if result.failures else ""))


def _examples(examples: list[tuple[str, int]]) -> str:
    return ("e.g. " + ", ".join(f"{clip(v, 40)} ({c:,})" for v, c in examples)) if examples else ""


@command.command("import")
@click.argument("result_file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Model the validated data feeds.")
@click.option("--version", default=None, help="Model version the evidence is about (default: the model).")
@click.pass_context
def import_command(ctx: click.Context, result_file: str, model: str, version: str | None) -> None:
    """Store a Great Expectations (GX Core 1.x) validation result JSON as evidence on the model; audited.

    A policy with metric = "gx_suite:<suite name>" passes when the latest result of that suite succeeded
    within the policy's window.
    """
    from dashboard.governance import gx_results

    context = get_context(ctx)
    payload = gx_results.load_result_file(result_file)
    gx_results.parse_result(payload)  # a malformed file is refused before anyone signs in
    actor = cli_actor(ctx)
    rid, new = gx_results.import_result(context, actor, model, payload, version=version, source=result_file)
    run = gx_results.parse_result(payload)
    state = "imported" if new else "already imported (nothing added)"
    click.echo(f"{state}: suite {clip(run.suite)} {'succeeded' if run.success else 'FAILED'} "
               f"({run.statistics.get('successful_expectations')} of {run.statistics.get('evaluated_expectations')} "
               f"expectations), run {run.run_time:%Y-%m-%d %H:%M} UTC; id {rid}")


@command.command("run")
@click.argument("suite_file", type=click.Path(dir_okay=False))
@click.option("--model", "-m", required=True, help="Model whose logs are validated.")
@click.option("--window", "window_text", default="7d", show_default=True, help=WINDOW_HELP)
@click.option("--version", default=None, help="Only this model version's logs.")
@click.option("--sample", default=10_000, show_default=True, type=int,
              help="Rows GX validates: a uniform sample of the window drawn in DuckDB.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the sample (repeatable).")
@click.pass_context
def run_command(ctx: click.Context, suite_file: str, model: str, window_text: str, version: str | None, sample: int,
                seed: int) -> None:
    """Run a Great Expectations suite (GX Core 1.x JSON) with GX itself on a sample of a window of logs and
    store the result as evidence (needs the optional extra: pip install 'vigil[gx]')."""
    from dashboard.governance.gx_run import run_suite

    context = get_context(ctx)
    actor = cli_actor(ctx)
    window = analysis_window(context, model, window_text, version)
    done = run_suite(context, actor, model, suite_file, window, version=version, sample=sample, seed=seed)
    stats = done.payload.get("statistics", {})
    click.echo(f"suite {clip(done.payload.get('suite_name'))} {'succeeded' if done.payload.get('success') else 'FAILED'}"
               f" on a sample of {done.rows:,} of {done.window_rows:,} rows in {window.label} "
               f"({stats.get('successful_expectations')} of {stats.get('evaluated_expectations')} expectations); "
               f"stored as {done.result_id}")
    for note in done.skipped:
        click.echo(f"Note: {clip(note)}", err=True)
