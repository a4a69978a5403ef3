"""``vigil drift``: Evidently-compatible drift of one model between a reference and a current window."""

from __future__ import annotations

import click

from connectors.windows import Window
from dashboard.charts.text import clip
from dashboard.commands.common import WINDOW_HELP, analysis_window, echo_json, get_context
from dashboard.monitoring.drift import ColumnDrift, DriftResult, compute_drift, result_to_dict


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}"


@click.command("drift")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--reference", "reference_text", default=None,
              help="'training' (the champion's training data in MLflow), FROM..TO or a relative window "
                   "(ending at the latest logged prediction); default: the model's configured reference.")
@click.option("--current", "current_text", default="7d", show_default=True, help=WINDOW_HELP)
@click.option("--version", default=None, help="Only this model version's logs (and its training data).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when the dataset drifts (for CI).")
@click.option("--multivariate", is_flag=True,
              help="PCA reconstruction error per bucket (as NannyML's DataReconstructionDriftCalculator), "
                   "fitted on a reference window of the logs (default: the configured one, else the first "
                   "14 days); --fail-on-drift then fails on any alerting bucket.")
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="day", show_default=True,
              help="Time bucket of --multivariate.")
@click.pass_context
def command(ctx: click.Context, model: str, reference_text: str | None, current_text: str, version: str | None,
            as_json: bool, fail_on_drift: bool, multivariate: bool, bucket: str) -> None:
    """Per-column drift (method, score, threshold, verdict) and the dataset verdict, as on the Drift page.

    Methods and thresholds follow Evidently's DataDriftPreset defaults unless the model's [drift]
    table overrides them.
    """
    context = get_context(ctx)
    current = analysis_window(context, model, current_text, version)
    if multivariate:
        _multivariate(ctx, model, current, reference_text, version, bucket, as_json, fail_on_drift)
        return
    reference = "config" if reference_text is None else reference_text
    if reference not in ("training", "config"):
        ref_window = analysis_window(context, model, reference, version)
        result = compute_drift(context, model, current, ref_window, version=version)
    else:
        result = compute_drift(context, model, current, reference, version=version)
    if as_json:
        echo_json(result_to_dict(result))
    else:
        _print_table(model, result)
    if fail_on_drift and result.dataset_drift:
        ctx.exit(1)


def _multivariate(ctx: click.Context, model: str, current: Window, reference_text: str | None,
                  version: str | None, bucket: str, as_json: bool, fail_on_drift: bool) -> None:
    """Reconstruction error per bucket with its band and the reference thresholds."""
    from dashboard.monitoring.multivariate import compute_reconstruction

    context = get_context(ctx)
    reference = None
    if reference_text not in (None, "training", "config"):
        reference = analysis_window(context, model, str(reference_text), version)
    r = compute_reconstruction(context, model, current, reference=reference, bucket=bucket, version=version)
    if as_json:
        echo_json({"summary": r.summary(), "buckets": r.buckets, "reference_buckets": r.reference_buckets})
    else:
        s = r.summary()
        lo, hi = _fmt(r.lower_threshold), _fmt(r.upper_threshold)
        click.echo(f"{model}: PCA reconstruction error, reference {r.reference.label} ({r.n_reference} rows, "
                   f"{s['components']} of {len(r.fit.columns)} components keep {s['variance_kept']:.0%} of the "
                   f"variance), thresholds {lo}..{hi}")
        for b in r.buckets.to_dict(orient="records"):
            click.echo(f"  {b['bucket']:%Y-%m-%d %H:%M}  {b['n']:>7} rows  reconstruction error {_fmt(b['value'])} "
                       f"(band {_fmt(b['lower'])}..{_fmt(b['upper'])}){'  ALERT' if b['alert'] else ''}")
        first = "" if r.first_alert is None else f", first {r.first_alert:%Y-%m-%d %H:%M}"
        click.echo(f"alerting {bucket}s: {s['alerting_buckets']}/{s['buckets']}{first}")
    if fail_on_drift and r.first_alert is not None:
        ctx.exit(1)


def _print_table(model: str, result: DriftResult) -> None:
    """Per column: method, score, threshold, verdict (and Evidently's where it differs); then the dataset."""
    click.echo(f"{model}: reference {clip(result.reference_label)} ({result.n_reference} rows) vs current "
               f"{clip(result.current_label)} ({result.n_current} rows)")
    cols = sorted(result.columns, key=lambda c: (not c.drifted, not c.judged, -c.severity))
    width = max([len("column"), *(len(c.column) for c in cols)])
    click.echo(f"{'column':<{width}}  {'type':<11}  {'method':<29}  {'score':>10}  {'threshold':>9}  drift")
    for c in cols:
        line = (f"{c.column:<{width}}  {c.column_type:<11}  {c.method_label:<29}  {_fmt(c.score):>10}  "
                f"{_fmt(c.threshold):>9}  {_verdict(c)}")
        notes = [f"Evidently: {'drift' if c.evidently_drifted else 'ok'}"] if c.too_few_rows else []
        notes += [clip(c.note)] if c.note else []  # notes name category values, which may be huge
        click.echo(line + (f"  ({'; '.join(notes)})" if notes else ""))
    click.echo(_summary(result))


def _verdict(c: ColumnDrift) -> str:
    if c.too_few_rows:
        return f"too few rows ({c.n_current} < {c.min_rows})"
    return "DRIFT" if c.drifted else ("ok" if c.tested else "-")


def _summary(result: DriftResult) -> str:
    """The dataset line: the verdict over the columns with enough rows, or why there is none."""
    if result.n_judged:
        line = (f"drifted columns: {result.n_drifted}/{result.n_judged} = {result.share_drifted:.2f} "
                f"(dataset drift when >= {result.drift_share_threshold:g}): "
                + ("DATASET DRIFT" if result.dataset_drift else "no dataset drift"))
        if result.n_too_few:
            line += f"; {result.n_too_few} column(s) with too few rows (< {result.min_drift_rows}) not counted"
    elif result.n_too_few:
        line = (f"too few rows: no column has {result.min_drift_rows} current values "
                "(thresholds.min_drift_rows), so no drift verdict")
    else:
        return "no column could be tested: no drift verdict"
    if result.evidently_dataset_drift != result.dataset_drift:
        ev = sum(c.evidently_drifted for c in result.columns)
        would = "would flag this as dataset drift" if result.evidently_dataset_drift else "would not flag dataset drift"
        line += f"\nEvidently {would}: {ev}/{result.n_tested} columns drift by its verdicts on {result.n_current} rows"
    return line
