"""``vigil ops``: latency, errors, throughput, the latency SLO and quality of one model over a window."""

from __future__ import annotations

import click

from dashboard.charts.text import PROSE_LIMIT, clip
from dashboard.charts.text import window_text as typed_window  # (`window_text` is the option)
from dashboard.commands.common import WINDOW_HELP, analysis_window, echo_json, get_context
from dashboard.monitoring.operations import SloStatus, compute_operations
from dashboard.monitoring.quality import compute_quality


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} ms"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _slo_lines(slo: SloStatus, bucket: str) -> list[str]:
    """One objective's verdict and its breach ranges, the same way for latency and errors."""
    o = slo.objective
    verdict = "n/a" if slo.met is None else ("met" if slo.met else "breached")
    lines = [f"  SLO      {o.text} per {bucket} ({clip(slo.source)}): {verdict}, "
             f"{slo.buckets_in_breach}/{slo.buckets_scored} {bucket}s in breach ({_pct(slo.breach_share)})"]
    worst = o.spec.worst
    for b in slo.breaches.to_dict(orient="records"):
        lines.append(f"    breach {b['start']:%Y-%m-%d %H:%M}..{b['end']:%Y-%m-%d %H:%M} UTC  "
                     f"worst {o.spec.label} {o.shown(b[worst])}  "
                     f"{b['requests']} requests, {b['errors']} errors")
    return lines


@click.command("ops")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--window", "-w", "window_text", default="30d", show_default=True, help=WINDOW_HELP)
@click.option("--version", "version", default=None, help="Only this model version.")
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="hour", show_default=True,
              help="Time bucket of the SLO and the breach ranges.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.pass_context
def command(ctx: click.Context, model: str, window_text: str, version: str | None, bucket: str,
            as_json: bool) -> None:
    """Operations and quality of MODEL: latency p50/p95/p99, error rate, throughput, SLO breaches,
    per-version comparison, realised and estimated accuracy."""
    context = get_context(ctx)
    window = analysis_window(context, model, window_text, version)
    ops = compute_operations(context, model, window, bucket=bucket, version=version)
    quality = compute_quality(context, model, window, version=version, bucket="day")
    if as_json:
        echo_json({"operations": ops.summary(), "breaches": ops.slo.breaches, "error_breaches": ops.error_slo.breaches,
                   "versions": ops.versions, "quality": quality.summary(), "notes": [*ops.notes, *quality.notes]})
        return
    s = ops.summary()
    click.echo(f"{model}{' v' + version if version else ''}  {typed_window(window)}  ({ops.requests} predictions)")
    click.echo(f"  latency  p50 {_ms(s['latency_p50_ms'])}  p95 {_ms(s['latency_p95_ms'])}  "
               f"p99 {_ms(s['latency_p99_ms'])}  max {_ms(s['latency_max_ms'])}")
    click.echo(f"  errors   {ops.errors} ({_pct(ops.error_rate)}, threshold {_pct(ops.error_rate_threshold)})")
    click.echo(f"  volume   {ops.throughput_per_hour:.1f} predictions/hour")
    for slo in ops.slos:
        for line in _slo_lines(slo, bucket):
            click.echo(line)
    if len(ops.versions) > 1 or version is None:
        click.echo("  versions")
        for v in ops.versions.to_dict(orient="records"):
            click.echo(f"    v{clip(v['version'])}: {v['n']} predictions, p95 {_ms(v['p95_ms'])}, "
                       f"errors {_pct(v['error_rate'])}")
    a = quality.actual
    click.echo(f"  quality  labelled {quality.n_labelled}/{quality.n_rows} successful predictions "
               f"({_pct(quality.label_coverage)} label coverage)")
    if a.accuracy is None:
        click.echo(f"    realised: n/a: {clip(a.reason, PROSE_LIMIT)}")
    else:
        click.echo(f"    realised: accuracy {_num(a.accuracy)}  precision {_num(a.precision)}  "
                   f"recall {_num(a.recall)}  F1 {_num(a.f1)}  ROC AUC {_num(a.roc_auc)}  ECE {_num(a.ece)}")
    click.echo(f"    estimated (CBPE): unlabelled {_num(quality.estimated_accuracy)}  "
               f"all {_num(quality.estimated_accuracy_all)}  gap on labelled {_num(quality.estimation_gap)}")
    for note in (*ops.notes, *quality.notes):  # notes can name values from the logs (unknown labels)
        click.echo(f"  note: {clip(note, PROSE_LIMIT)}")
